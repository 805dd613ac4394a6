# Login → unlock → logout with OUR module on Debian's kernel, with real PAM clients: pamtester,
# overlapping held sessions, su, passwd, chpasswd; the reference tools on the same files; a file
# still open at the last logout; the legacy mode without `unwrap` (the login password is the
# mount passphrase); `status` explaining a login that stayed locked; the syslog facility.
# Run as root inside the fast-mode VM by test/vm/login.vm.test.ts, which prepends
#   REPO=<repo root>  HOLD=<pam-hold binary>
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

use_our_module debug
CLI="$REPO/bin/ecryptfs-agent"

sig2() { sed -n 2p "$1/.ecryptfs/Private.sig"; }

# ---------------------------------------------------------------------------------------------
# a. A private directory set up by ecryptfs-setup-private (the reference peer, FNEK on) is
#    unlocked by our module through pamtester; plaintext above, ciphertext below; locked at logout.
A=eata; APW='A-pass 0815 é'; HA=/home/$A; PLAIN='eatvm-plaintext-marker-5b1c'
check a.useradd newuser $A "$APW"
check a.setup-private-reference as $A env HOME=$HA keyctl session - ecryptfs-setup-private --nopwcheck -l "$APW" -m "mount-pass-$A-31337"
check a.fnek-setup test "$(wc -l < $HA/.ecryptfs/Private.sig)" -eq 2
check a.login sh -c "echo '$APW' | pamtester eat-login $A authenticate open_session > /tmp/a.login 2>&1"
check a.mounted mounted $HA
check a.fek-key-in-user-keyring has_key $A "$(sig1 $HA)"
check a.fnek-key-in-user-keyring has_key $A "$(sig2 $HA)"
check a.session-counted test "$(sessions $A)" -le 1
check a.write-plaintext as $A sh -c "printf '%s\n' '$PLAIN' > $HA/Private/secret.txt"
check a.read-back as $A grep -qx "$PLAIN" $HA/Private/secret.txt
lower=$(find $HA/.Private -type f | head -n1)
check a.lower-name-encrypted sh -c "case '$lower' in */ECRYPTFS_FNEK_ENCRYPTED.*) true ;; *) false ;; esac"
check a.lower-no-plaintext sh -c "! grep -q '$PLAIN' '$lower'"
magic_ok() { local h; h=$(od -An -tx1 -j8 -N8 "$1" | tr -d ' \n'); [ $(( 0x${h:0:8} ^ 0x${h:8:8} )) -eq $(( 0x3c81b7f5 )) ]; }
check a.lower-ecryptfs-header magic_ok "$lower"
check a.logged-mounted grep -q "private directory mounted.*user=$A" /tmp/syslog
check a.logout pamtester eat-login $A close_session
check a.unmounted not_mounted $HA
check a.fek-key-gone no_key $A "$(sig1 $HA)"
check a.fnek-key-gone no_key $A "$(sig2 $HA)"
check a.logged-locked grep -q "private directory locked.*user=$A" /tmp/syslog
check a.no-secret-in-syslog sh -c "! grep -qF '$APW' /tmp/syslog && ! grep -qF 'mount-pass-$A' /tmp/syslog"

# b. The reference tools mount what ours wrote and the other way round (same ~/.Private).
#    (mount.ecryptfs_private's mount(2) finds the keys through the caller's session keyring,
#    which must link @u, as a login's pam_keyinit does; our agent links @u into its own
#    process keyring instead, so it does not depend on the session keyring.)
check b.reference-mount-reads-ours with_reference_private $A "$APW" \
  "grep -qx '$PLAIN' $HA/Private/secret.txt && echo from-reference > $HA/Private/ref.txt"
check b.reference-unmounted not_mounted $HA
check b.ours-reads-reference sh -c "echo '$APW' | pamtester eat-login $A authenticate open_session && grep -qx from-reference $HA/Private/ref.txt"
check b.logout pamtester eat-login $A close_session
check b.unmounted not_mounted $HA

# c. Overlapping sessions with live opener processes (pam-hold): the first logout keeps the
#    mount, the last one locks; a session whose process was killed is pruned, not counted forever.
hold_open() { # hold_open NAME USER PASSWORD: starts a held session on fd 3x
  mkfifo /tmp/$1.in
  # The holder must not inherit the write ends of the other holders' fifos (bash {fd}s are >= 10),
  # or closing one of them would never reach EOF.
  ( for f in /proc/self/fd/*; do n=${f##*/}; [ "$n" -ge 10 ] 2>/dev/null && eval "exec $n>&-"; done
    exec "$HOLD" eat-login "$2" ) < /tmp/$1.in > /tmp/$1.out 2>&1 &
  eval "exec {fd_$1}>/tmp/$1.in"; eval "echo '$3' >&\$fd_$1"; eval "pid_$1=\$!"
  for _ in $(seq 1 600); do grep -q '^OPEN ' /tmp/$1.out && return 0; sleep 0.2; done; return 1
}
hold_close() { eval "exec {fd_$1}>&-"; for _ in $(seq 1 600); do grep -q '^CLOSED ' /tmp/$1.out && return 0; sleep 0.2; done; return 1; }
check c.first-session hold_open s1 $A "$APW"
check c.second-session hold_open s2 $A "$APW"
check c.mounted-twice mounted $HA
check c.two-sessions-counted test "$(sessions $A)" -eq 2
check c.first-logout hold_close s1
check c.still-mounted-for-the-second mounted $HA
check c.one-session-left test "$(sessions $A)" -eq 1
check c.third-session hold_open s3 $A "$APW"
kill -9 "$pid_s3"; wait "$pid_s3" 2>/dev/null
check c.killed-session-pruned-at-last-logout hold_close s2
check c.locked-after-last-live-session not_mounted $HA
check c.no-session-left test "$(sessions $A)" -eq 0
check c.keys-gone no_key $A "$(sig1 $HA)"

# o. A file still open under ~/Private at the last logout: the mount is detached lazily (gone from
#    the mount table, as umount.ecryptfs_private's umount -l does), the keys are unlinked, the log
#    says so, and the process that holds the file still reads it to the end.
check o.login sh -c "echo '$APW' | pamtester eat-login $A authenticate open_session"
rm -f /tmp/o.go /tmp/o.read
hold_file() { # as $A, in the background: opens the file, waits for /tmp/o.go, then reads it
  ( exec setpriv --reuid=$A --regid=$A --init-groups --reset-env sh -c \
      "cd / && exec 3< $HA/Private/secret.txt && while [ ! -e /tmp/o.go ]; do sleep 0.2; done; cat <&3 > /tmp/o.read" ) &
  holder=$!
  for _ in $(seq 1 100); do [ -e /proc/$holder/fd/3 ] && return 0; sleep 0.1; done; return 1
}
check o.file-held-open hold_file
L_O=$(wc -l < /tmp/syslog)
check o.last-logout pamtester eat-login $A close_session
check o.detached not_mounted $HA
check o.fek-key-gone no_key $A "$(sig1 $HA)"
check o.fnek-key-gone no_key $A "$(sig2 $HA)"
check o.logged-lazy bash -c "tail -n +$((L_O + 1)) /tmp/syslog | grep -q 'private directory locked user=$A .*outcome=unmounted-lazy'"
touch /tmp/o.go; wait $holder
check o.holder-reads-to-the-end grep -qx "$PLAIN" /tmp/o.read

# d. su - with the password (a setuid PAM application, Debian's common-* stacks with our lines).
B=eatb; BPW='B-pw-4711'
check d.other-user newuser $B "$BPW"
check d.su-login-unlocks su_prints $B $A "$APW" "grep -qx '$PLAIN' $HA/Private/secret.txt && echo SU-SAW-PLAINTEXT" /tmp/d.su SU-SAW-PLAINTEXT
check d.su-logout-locks not_mounted $HA

# e. passwd as the user re-wraps; the new password unlocks, the reference tool agrees.
NEWPW='Fresh-Pw-2026-xy'
check e.passwd passwd_as $A "$APW" "$NEWPW" /tmp/e.passwd
check e.reference-unwraps-with-new as $A sh -c "printf '%s' '$NEWPW' | ecryptfs-unwrap-passphrase $HA/.ecryptfs/wrapped-passphrase - | grep -qx 'mount-pass-$A-31337'"
check e.new-password-login sh -c "echo '$NEWPW' | pamtester eat-login $A authenticate open_session && grep -qx '$PLAIN' $HA/Private/secret.txt"
check e.logout pamtester eat-login $A close_session
check e.old-password-refused sh -c "! (echo '$APW' | pamtester eat-login $A authenticate)"
check e.no-key-after-refused-login no_key $A "$(sig1 $HA)"

# f. root resets the password (no old one): the keyfile keeps the old wrapping; the next login
#    says so and how to fix it, and proceeds; the fix works.
ROOTPW='Root-Set-9911'
check f.root-reset sh -c "echo '$A:$ROOTPW' | chpasswd"
check f.login-proceeds sh -c "echo '$ROOTPW' | pamtester eat-login $A authenticate open_session > /tmp/f.login 2>&1"
check_output f.desync-explained 'rewrap-passphrase' /tmp/f.login
check f.not-mounted not_mounted $HA
check f.no-key-left no_key $A "$(sig1 $HA)"
# s. status (as root) says why the last login left ~/Private locked, from the agent's note
check s.status-says-wrong-password bash -c "runs_into /tmp/s.status '$CLI' status $A && file_has -E /tmp/s.status '^  last login: +wrong-password \(WRONG_PASSWORD\) via eat-login, [0-9]+ s ago\$'"
pamtester eat-login $A close_session >/dev/null 2>&1
# a login without a password (as after an ssh key): open_session only
check s.key-login-proceeds sh -c "pamtester eat-login $A open_session > /tmp/s.keylogin 2>&1"
check_output s.key-login-told 'is locked \(no password reached this login' /tmp/s.keylogin
check s.status-says-no-password bash -c "runs_into /tmp/s.status2 '$CLI' status $A && file_has -E /tmp/s.status2 '^  last login: +no-password via eat-login, [0-9]+ s ago\$'"
pamtester eat-login $A close_session >/dev/null 2>&1
check f.fix-with-reference-rewrap as $A sh -c "printf '%s\n%s' '$NEWPW' '$ROOTPW' | ecryptfs-rewrap-passphrase $HA/.ecryptfs/wrapped-passphrase -"
check f.login-after-fix sh -c "echo '$ROOTPW' | pamtester eat-login $A authenticate open_session"
check f.mounted-after-fix mounted $HA
check f.logout pamtester eat-login $A close_session

# g. A broken setup (wrong sig in Private.sig) fails loudly: the user is told, nothing is
#    mounted, no key stays — and the harness's own mounted-check reports it (it can fail).
G=eatg; GPW='G-pw-77'; HG=/home/$G
check g.useradd newuser $G "$GPW"
check g.setup as $G env HOME=$HG keyctl session - ecryptfs-setup-private --nopwcheck -n -l "$GPW" -m "gmount-pass-1"
check g.break-sig sh -c "echo 0123456789abcdef > $HG/.ecryptfs/Private.sig"
check g.login-proceeds sh -c "echo '$GPW' | pamtester eat-login $G authenticate open_session > /tmp/g.login 2>&1"
check_output g.user-told 'stays locked|could not be mounted' /tmp/g.login
check g.not-mounted not_mounted $HG
if mounted $HG > /dev/null 2>&1; then echo "CHECK g.harness-detects-missing-mount FAIL mounted-check passed on a broken setup"; failed=1
else echo "CHECK g.harness-detects-missing-mount ok"; fi
check g.no-key-left user_keyring_empty $G

# l. The legacy mode (pam_ecryptfs without `unwrap`): no auth-line `unwrap`, so the login password
#    itself is the mount passphrase. A setup of that kind by hand (Private.sig = the sig of the
#    login password, no wrapped-passphrase): our module mounts it at login and locks it at logout;
#    the same stack with `unwrap` does not mount it; the reference (pam_ecryptfs.so without
#    unwrap) reads what ours wrote.
L=eatl; LPW='L-legacy-pw 3'; HL=/home/$L
cat > /etc/pam.d/eat-legacy <<PAM
auth     required  pam_unix.so
auth     optional  $MOD $OPTS
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD $OPTS
PAM
cat > /etc/pam.d/eat-ref-legacy <<'PAM'
auth     required  pam_unix.so
auth     required  pam_ecryptfs.so
account  required  pam_unix.so
session  required  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  pam_ecryptfs.so
PAM
legacy_setup() { # the directories and flags; Private.sig: the sig ecryptfs-add-passphrase gives the login password
  as $L sh -c "umask 077 && mkdir $HL/.ecryptfs $HL/.Private $HL/Private && touch $HL/.ecryptfs/auto-mount $HL/.ecryptfs/auto-umount" &&
    reference_sigs $L "$LPW" | as $L sh -c "cat > $HL/.ecryptfs/Private.sig" &&
    grep -qxE '[0-9a-f]{16}' $HL/.ecryptfs/Private.sig && [ "$(wc -c < $HL/.ecryptfs/Private.sig)" -eq 17 ] && [ ! -e $HL/.ecryptfs/wrapped-passphrase ]
}
check l.useradd newuser $L "$LPW"
check l.setup legacy_setup
check l.login-mounts sh -c "echo '$LPW' | pamtester eat-legacy $L authenticate open_session > /tmp/l.login 2>&1"
check l.mounted mounted $HL
check l.key-in-user-keyring has_key $L "$(sig1 $HL)"
check l.write as $L sh -c "echo from-legacy > $HL/Private/legacy.txt"
check l.logout pamtester eat-legacy $L close_session
check l.locked not_mounted $HL
check l.key-gone no_key $L "$(sig1 $HL)"
unwrap_stack_does_not_mount() { echo "$LPW" | pamtester eat-login $L authenticate open_session > /tmp/l.unwrap 2>&1; not_mounted $HL; }
check l.unwrap-stack-does-not-mount unwrap_stack_does_not_mount
pamtester eat-login $L close_session > /dev/null 2>&1
check l.reference-login sh -c "echo '$LPW' | pamtester eat-ref-legacy $L authenticate open_session > /tmp/l.ref 2>&1"
check l.reference-reads-ours as $L grep -qx from-legacy $HL/Private/legacy.txt
check l.reference-logout pamtester eat-ref-legacy $L close_session
check l.reference-locked not_mounted $HL
as $L keyctl clear @u 2>/dev/null

# y. Every line of the agent and of the PAM module reached syslog with facility authpriv, as the
#    man page says (busybox syslogd writes "HOST FACILITY.LEVEL TAG[PID]: MESSAGE").
all_authpriv() { # all_authpriv PATTERN LEVEL: lines matching PATTERN exist, all authpriv, one at LEVEL
  local n; n=$(grep -c -- "$1" /tmp/syslog)
  [ "$n" -gt 0 ] || { echo "no line matches $1"; return 1; }
  grep -- "$1" /tmp/syslog | grep -v " authpriv\.[a-z]* " | head -n 5 | grep . && { echo "(not authpriv, of $n)"; return 1; }
  grep -- "$1" /tmp/syslog | grep -q " authpriv\.$2 " || { echo "no authpriv.$2 line of $n"; return 1; }
}
check y.agent-lines-authpriv all_authpriv ' ecryptfs-agent\[[0-9]*\]: ' notice
check y.agent-warning-authpriv bash -c "grep ' authpriv\.warn[a-z]* ecryptfs-agent\[' /tmp/syslog | grep -q 'login password does not unwrap'"
check y.module-lines-authpriv all_authpriv ' pam_ecryptfs_agent(eat-login:session): ' debug

echo "--- agent log lines: $(grep -c ecryptfs-agent /tmp/syslog)"
grep ecryptfs-agent /tmp/syslog | tail -n 40
exit $failed
