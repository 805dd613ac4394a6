# Gentoo's own PAM stack, end to end, without pam-auth-update and without systemd (fast mode:
# PID 1 is a plain init as under OpenRC, the module spawns its agent, the log goes through the
# busybox syslogd into /tmp/syslog, sessions are counted by the agent alone). /etc/pam.d gets
# system-auth, system-login, system-local-login, system-remote-login, login, su, passwd as
# sys-auth/pambase renders them, su-l as sys-apps/util-linux installs it and sshd as
# net-misc/openssh does, then our three lines where docs/install.md's Gentoo section puts them.
# Real clients: login(1) on a pty, su -, sshd started by hand on lo, passwd; pam_faillock and
# pam_passwdqc in the path. Run as root inside the fast-mode VM by test/vm/gentoo.vm.test.ts,
# which prepends REPO=<repo root>. Prints "CHECK <name> ok|FAIL <why>"; exits non-zero on failure.

busybox syslogd -n -O /tmp/syslog & sleep 0.5
modprobe ecryptfs
P=/etc/pam.d
SEC=/usr/lib/x86_64-linux-gnu/security # where Debian 12's pam_unix.so is (/lib is a link to usr/lib)
# Installed by the distro-neutral installer as a Gentoo ebuild uses it: gentoo.vm.test.ts ran
# `scripts/install.sh --prefix /usr --pam-dir $SEC --no-systemd --destdir $STAGE` on the host
# (run in the guest under TCG it took 111 s of the 3-minute budget, at a load of 10) and the guest
# merges that root into / as portage merges ${D}, keeping install.sh's MANIFEST (minus the
# directories the guest already has, which an install into / would not have created), so
# `install.sh --uninstall` below removes it from a real root. The module goes next to
# pam_unix.so, the agent under /usr/lib/ecryptfs-agent (the module's built-in agent path), no
# systemd units (OpenRC: the module spawns the agent).
merge_stage() {
  local k p
  while read -r k p; do [ "$k" = d ] && [ -d "$p" ] && continue; echo "$k $p"; done < $STAGE/usr/lib/ecryptfs-agent/MANIFEST > /tmp/MANIFEST
  tar -C $STAGE -cf - . | tar -C / --keep-directory-symlink --no-overwrite-dir -xpf - && cp /tmp/MANIFEST /usr/lib/ecryptfs-agent/MANIFEST
}
check g.install merge_stage
check g.installed-module-and-agent test -f $SEC/pam_ecryptfs_agent.so -a -x /usr/lib/ecryptfs-agent/dist/agent/main.js
check g.agent-root-owned equal_text '755 root' "$(stat -c '%a %U' /usr/lib/ecryptfs-agent/dist/agent/main.js)"
# Our lines are the documented ones, plus one option a TCG guest needs: the default timeout
# (5 s) is for real hardware, one agent start costs several seconds of emulated CPU here.
EAT=pam_ecryptfs_agent.so
TCG=timeout=120

# ---------------------------------------------------------------------------------------------
# The stacks, byte for byte as pambase (gentoo/pambase 22b5f7d, templates/*.tpl through
# pambase.py) writes them for the ebuild's USE="nullok passwdqc sha512 -systemd -elogind"
# (`pambase.py --nullok --passwdqc --encrypt=sha512 --openrc`). pam_faillock is unconditional
# in pambase. Nothing had to be dropped: every module exists on Debian 12 (libpam-modules,
# libpam-passwdqc) but pam_openrc.so, whose line pambase writes with "-" (skipped when absent).
cat > $P/system-auth <<'PAM'
auth		required	pam_env.so
auth		requisite	pam_faillock.so preauth
auth		[success=1 new_authtok_reqd=1 ignore=ignore default=bad]	pam_unix.so nullok  try_first_pass
auth		[default=die]	pam_faillock.so authfail
account		required	pam_unix.so
account		required	pam_faillock.so
password	required	pam_passwdqc.so config=/etc/security/passwdqc.conf
password	required	pam_unix.so try_first_pass shadow use_authtok nullok sha512
session		required	pam_limits.so
session		required	pam_env.so
session		required	pam_unix.so
PAM
cat > $P/system-login <<'PAM'
auth		required	pam_nologin.so
auth		include		system-auth
account		required	pam_access.so
account		required	pam_nologin.so
account		required	pam_time.so
account		include		system-auth
password	include		system-auth
session		optional	pam_loginuid.so
session		required	pam_env.so envfile=/etc/profile.env
session		include		system-auth
session		optional	pam_motd.so motd=/etc/motd
session		optional	pam_lastlog.so never showfailed
session		optional	pam_mail.so
-session	optional	pam_openrc.so
PAM
for f in system-local-login system-remote-login; do
  printf 'auth\t\tinclude\t\tsystem-login\naccount\t\tinclude\t\tsystem-login\npassword\tinclude\t\tsystem-login\nsession\t\tinclude\t\tsystem-login\n' > $P/$f
done
printf 'auth\t\tinclude\t\tsystem-local-login\naccount\t\tinclude\t\tsystem-local-login\npassword\tinclude\t\tsystem-local-login\nsession\t\tinclude\t\tsystem-local-login\n' > $P/login
cat > $P/su <<'PAM'
auth		sufficient	pam_rootok.so
auth		required	pam_wheel.so use_uid
auth		include		system-auth
account		include		system-auth
password	include		system-auth
session		include		system-auth
session		required	pam_env.so
session		optional	pam_xauth.so
PAM
printf 'auth\t\tsufficient\tpam_rootok.so\nauth\t\tinclude\t\tsystem-auth\naccount\t\tinclude\t\tsystem-auth\npassword\tinclude\t\tsystem-auth\n' > $P/passwd
# util-linux's files/su-l.pamd (`su -` asks for the service su-l) and openssh's sshd.pam_include.2
printf 'auth\t   include      su\naccount    include      su\npassword   include      su\nsession\t   optional pam_lastlog.so\nsession\t   include      su\n' > $P/su-l
printf '#%%PAM-1.0\n\nauth       include\tsystem-remote-login\naccount    include\tsystem-remote-login\n' > $P/sshd
printf 'password   include\tsystem-remote-login\nsession\t   include\tsystem-remote-login\n' >> $P/sshd
# What a Gentoo system has beside the stacks: passwdqc's config where sys-auth/passwdqc installs
# it (Debian's passwdqc package puts the same file at /etc/passwdqc.conf), the profile.env that
# env-update writes, and su allowed to the wheel group (pam_wheel, as on Gentoo).
cp /etc/passwdqc.conf /etc/security/passwdqc.conf
touch /etc/profile.env
groupadd -f wheel

modules_exist() { # every module a stack names is on the system, but the "-" lines'
  local m missing=
  for m in $(cat $P/system-* $P/login $P/su $P/su-l $P/passwd $P/sshd | grep -v '^-' | grep -o 'pam_[a-z_]*\.so' | sort -u); do
    [ -e $SEC/$m ] || missing="$missing $m"
  done
  [ -z "$missing" ] || { echo "missing:$missing"; return 1; }
}
check g.modules-exist modules_exist

# Our three lines where docs/install.md's Gentoo section says: auth after faillock's authfail line
# (pam_unix's success=1 jumps over that line only, so this is where a good password lands; a bad
# one dies at authfail first), password after pam_unix's, session after pam_unix's.
add_our_lines() {
  sed -i -e "/^auth.*pam_faillock.so authfail\$/a auth\t\toptional\t$EAT unwrap $TCG" \
    -e "/^password.*pam_unix.so/a password\toptional\t$EAT $TCG" \
    -e "/^session.*pam_unix.so\$/a session\t\toptional\t$EAT unwrap $TCG" $P/system-auth
}
check g.our-lines-added add_our_lines
# the line after each anchor is ours (3 lines, in the order the doc gives)
after() { grep -A1 -F "$1" $P/system-auth | tail -n1 | grep -q "^$2.*pam_ecryptfs_agent.so" || { cat $P/system-auth; return 1; }; }
check g.auth-after-authfail after 'pam_faillock.so authfail' auth
check g.password-after-unix after 'pam_unix.so try_first_pass shadow use_authtok' password
check g.session-after-unix after $'session\t\trequired\tpam_unix.so' session
check g.three-lines equal_text 3 "$(grep -c pam_ecryptfs_agent $P/system-auth)"

# ---------------------------------------------------------------------------------------------
# a. A user whose ~/Private ecryptfs-utils set up; a second user (wheel) who runs su.
A=eatgen; APW='Gentoo-pass 1984 x'; HA=/home/$A; PLAIN='eatvm-gentoo-plaintext-77'
B=eatwheel; BPW='Wheel-pw-3141'
check a.useradd newuser $A "$APW"
check a.setup-private-reference as $A env HOME=$HA keyctl session - ecryptfs-setup-private --nopwcheck -l "$APW" -m "gentoo-mount-pass-5"
check a.caller-useradd newuser $B "$BPW"
check a.caller-in-wheel usermod -aG wheel $B
gone() { until_ok 60 not_mounted $HA && no_key $A "$(sig1 $HA)" && no_key $A "$(sed -n 2p $HA/.ecryptfs/Private.sig)"; }
prints() { grep -q "$1" "$2" || { cat "$2"; return 1; }; }

# l. login(1) on a pty (system-local-login): unlocks, the plaintext written there is ciphertext
#    below; the logout locks (unmounted, both keys unlinked, no session counted).
check l.login-unlocks login_as $A "$APW" "mountpoint -q ~/Private && echo '$PLAIN' > ~/Private/secret.txt && echo LOGIN-WROTE-$OK42" /tmp/l.out
check l.login-wrote prints LOGIN-WROTE-42 /tmp/l.out
check l.logout-locks gone
check l.no-session-left equal_text 0 "$(sessions $A)"
check l.ciphertext-below sh -c "! grep -rq '$PLAIN' $HA/.Private && [ -n \"\$(ls $HA/.Private)\" ]"
check l.logged-mounted grep -q "private directory mounted.*user=$A" /tmp/syslog

# s. su - (su-l → su → system-auth), called by the wheel user
check s.su-unlocks su_as $B $A "$APW" "grep -qx '$PLAIN' ~/Private/secret.txt && echo SU-SAW-PLAINTEXT-$OK42" /tmp/s.out
check s.su-read-plaintext prints SU-SAW-PLAINTEXT-42 /tmp/s.out
check s.su-logout-locks gone

# h. sshd (system-remote-login), started by hand on lo with password authentication; a session
#    held open over ssh keeps ~/Private mounted across a su login's logout, its own end locks.
mkdir -p /run/sshd
SSHD="/usr/sbin/sshd -o ListenAddress=127.0.0.1 -o UsePAM=yes -o PasswordAuthentication=yes -o MaxStartups=50"
check h.sshd-starts $SSHD
SSH_OPTS="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
SSH_OPTS="$SSH_OPTS -o PreferredAuthentications=password -o PubkeyAuthentication=no"
ssh_as_a() { sshpass -p "$APW" ssh $SSH_OPTS $A@127.0.0.1 "$@"; }
check h.ssh-unlocks ssh_as_a "grep -qx '$PLAIN' ~/Private/secret.txt"
check h.ssh-logout-locks gone
# (the held session ends when the test creates /tmp/h.release, readable by everyone)
ssh_as_a "grep -qx '$PLAIN' ~/Private/secret.txt && while [ ! -e /tmp/h.release ]; do sleep 0.5; done" > /tmp/h.long 2>&1 & LONG=$!
check h.held-session-mounted until_ok 90 mounted $HA
check h.one-session-counted equal_text 1 "$(sessions $A)"
check h.su-while-held su_as $B $A "$APW" "grep -qx '$PLAIN' ~/Private/secret.txt && echo SU-SAW-PLAINTEXT-$OK42" /tmp/h.su
check h.still-mounted-after-su-logout mounted $HA
touch /tmp/h.release
check h.held-session-saw-plaintext wait $LONG
check h.last-logout-locks gone
check h.no-session-left equal_text 0 "$(sessions $A)"

# p. passwd through pam_passwdqc and pam_unix use_authtok: the new password re-wraps (the
#    reference tool unwraps with it; k. logs in with it); a weak one is refused by passwdqc and leaves
#    the wrapped passphrase and the password as they were.
qc_passwd() { # qc_passwd USER OLD NEW OUTFILE: passwd as USER, answering whatever passwdqc asks
  cat > /tmp/qc.exp <<EXP
set timeout 300
expect {
  -re "(C|c)urrent password:" { send {$2}; send "\r"; exp_continue }
  -re "(Enter new|New) password:" { send {$3}; send "\r"; exp_continue }
  -re "Re-?type (new )?password:" { send {$3}; send "\r"; exp_continue }
  timeout { puts "\nexpect: passwd asked nothing known within 300 s"; exit 124 }
  eof
}
catch wait result
exit [lindex \$result 3]
EXP
  as "$1" expect -c "spawn passwd" -f /tmp/qc.exp > "$4" 2>&1
}
NEWPW='Emerge-World-2026!'
check p.passwd qc_passwd $A "$APW" "$NEWPW" /tmp/p.out
check p.passwdqc-asked prints 'Enter new password' /tmp/p.out
unwraps() { as $A sh -c "printf '%s' '$1' | ecryptfs-unwrap-passphrase $HA/.ecryptfs/wrapped-passphrase - | grep -qx 'gentoo-mount-pass-5'"; }
check p.reference-unwraps-with-new unwraps "$NEWPW"
WRAPPED=$(sha256sum < $HA/.ecryptfs/wrapped-passphrase); SHADOW=$(grep "^$A:" /etc/shadow)
check p.weak-password-refused fails_into /tmp/p.weak qc_passwd $A "$NEWPW" 'abc12' /tmp/p.weak.out
check p.passwdqc-said-weak prints 'Weak password' /tmp/p.weak.out
check p.wrapping-untouched equal_text "$WRAPPED" "$(sha256sum < $HA/.ecryptfs/wrapped-passphrase)"
check p.password-untouched equal_text "$SHADOW" "$(grep "^$A:" /etc/shadow)"
check p.still-unwraps-with-new unwraps "$NEWPW"

# f. A wrong password: refused, counted by pam_faillock, nothing unlocked and no key loaded.
MOUNTS=$(grep -c "private directory mounted.*user=$A" /tmp/syslog)
check f.wrong-password-refused fails_into /tmp/f.x su_as $B $A 'not-the-password' true /tmp/f.su
check f.su-said-so prints 'Authentication failure' /tmp/f.su
# faillock_count USER N: faillock lists N valid failures of USER
faillock_count() { local n; n=$(faillock --user "$1" | grep -c ' V$'); [ "$n" = "$2" ] || { faillock --user "$1"; return 1; }; }
check f.counted-by-faillock faillock_count $A 1
check f.nothing-unlocked gone
# k. Two more wrong ones reach faillock's deny=3: su is refused now whatever the password
#    (preauth denies before pam_unix asks, so our line is never reached) and nothing is unlocked;
#    faillock --reset lets the right password in again (the login with the password passwd set).
check k.second-wrong fails_into /tmp/k.x su_as $B $A 'wrong-again' true /tmp/k.su
check k.third-wrong fails_into /tmp/k.x su_as $B $A 'wrong-thrice' true /tmp/k.su
check k.three-counted faillock_count $A 3
check k.locked-out-su-refused fails_into /tmp/k.x su_as $B $A "$NEWPW" "echo SHOULD-NOT-RUN-$OK42" /tmp/k.right
check k.told-locked prints 'account is locked' /tmp/k.right
check k.locked-out-unlocks-nothing gone
check k.agent-never-mounted equal_text "$MOUNTS" "$(grep -c "private directory mounted.*user=$A" /tmp/syslog)"
check k.faillock-reset faillock --user $A --reset
check k.none-counted faillock_count $A 0
check k.after-reset-unlocks su_as $B $A "$NEWPW" "grep -qx '$PLAIN' ~/Private/secret.txt && echo SU-SAW-PLAINTEXT-$OK42" /tmp/k.su
check k.after-reset-read prints SU-SAW-PLAINTEXT-42 /tmp/k.su
check k.after-reset-locks gone

# u. install.sh --uninstall removes what it installed and never breaks login: with our lines
#    still in system-auth (it never edits pam.d; it says they remain) su and login(1) work,
#    nothing is mounted.
# (bash's process substitution in install.sh needs /dev/fd, which udev or OpenRC's devfs service
# create on a real machine; the harness's bare devtmpfs has none)
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
check u.uninstall runs_into /tmp/u.uninstall bash $REPO/scripts/install.sh --uninstall --prefix /usr --pam-dir $SEC --no-systemd
check u.module-and-agent-gone sh -c "[ ! -e $SEC/pam_ecryptfs_agent.so ] && [ ! -e /usr/lib/ecryptfs-agent ] && [ ! -e /usr/bin/ecryptfs-agent ]"
check u.says-lines-remain file_has -F /tmp/u.uninstall 'still name it' 'pam_ecryptfs_agent.so unwrap timeout=120'
check u.su-still-works su_as $B $A "$NEWPW" "echo SU-STILL-WORKS-$OK42" /tmp/u.su
check u.su-ran prints SU-STILL-WORKS-42 /tmp/u.su
check u.login-still-works login_as $A "$NEWPW" "echo LOGIN-STILL-WORKS-$OK42" /tmp/u.login
check u.login-ran prints LOGIN-STILL-WORKS-42 /tmp/u.login
check u.nothing-mounted gone

# r. The RPM (scripts/build-rpm.sh on the host, packaging/rpm/ecryptfs-agent.spec) unpacked into
#    / with rpm2cpio, as rpm places it (the module in %{_libdir}/security = /usr/lib64/security,
#    which Debian's libpam does not search: the lines name it by path), and su through Fedora's
#    stack as docs/install.md gives it: authselect's local profile with faillock (system-auth as a
#    substack, our auth and password lines at the top of postlogin, the session line in
#    system-auth), su as Fedora ships it (test/fixtures/pam/stacks/fedora). pam_lastlog2 (not in
#    Debian 12) is left out of postlogin; everything else is as rendered.
check r.rpm-payload sh -c "cd / && rpm2cpio $RPM | cpio -idmu --quiet"
check r.rpm-module-and-agent test -f /usr/lib64/security/$EAT -a -x /usr/lib/ecryptfs-agent/dist/agent/main.js
FED=$REPO/test/fixtures/pam/stacks/fedora/etc/pam.d
for f in system-auth postlogin su; do
  grep -v pam_lastlog2 $FED/$f | sed "s#[[:space:]]$EAT\(.*\)#  /usr/lib64/security/$EAT\1 $TCG#" > $P/$f
done
check r.three-fedora-lines equal_text 3 "$(cat $P/system-auth $P/postlogin | grep -c "/usr/lib64/security/$EAT")"
check r.su-unlocks su_as $B $A "$NEWPW" "grep -qx '$PLAIN' ~/Private/secret.txt && echo SU-SAW-PLAINTEXT-$OK42" /tmp/r.su
check r.su-read-plaintext prints SU-SAW-PLAINTEXT-42 /tmp/r.su
check r.su-logout-locks gone

check z.no-secret-in-syslog sh -c "! grep -qF -e '$APW' -e '$NEWPW' -e 'gentoo-mount-pass' /tmp/syslog"
echo "--- agent log"; grep ecryptfs-agent /tmp/syslog | tail -n 12
exit $failed
