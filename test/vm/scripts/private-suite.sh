# The manual path (setting up ~/Private and unlocking it by hand, e.g. after an ssh key login):
# setup-private, unlock, lock, status, doctor on Debian's kernel.
# A setup made by `ecryptfs-agent setup-private` (as the user, and as root with -u; with and
# without FNEK) is mounted by our PAM module AND by the reference peer (mount.ecryptfs_private,
# pam_ecryptfs.so), and files written by one are read through the other.
# Run as root inside the fast-mode VM by test/vm/private.vm.test.ts, which prepends REPO=<repo root>.
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

use_our_module
CLI="$REPO/bin/ecryptfs-agent"
# The reference peer's own PAM module, in its own stack.
use_reference_module

mounted() { awk -v m="$1/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
has_key() { as "$1" grep -q " user  *$2: " /proc/keys; }
no_key() { ! has_key "$@"; }
no_user_keys() { ! as "$1" grep -q " user  *[0-9a-f]\{16\}: " /proc/keys; }
sig1() { head -n1 "$1/.ecryptfs/Private.sig"; }
sig2() { sed -n 2p "$1/.ecryptfs/Private.sig"; }
modes() { stat -c '%a %U' "$@" | tr '\n' ' '; }
# the printed mount passphrase: the indented line after the banner
printed_pass() { sed -n '/YOUR MOUNT PASSPHRASE/{n;n;p}' "$1" | tr -d ' '; }
# a background process as user $1 whose pid ($!) is the final command's (exec all the way down)
hold() { local u=$1; shift; ( exec setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@" ) & }
# the key is linked in the user's keyring (/proc/keys also lists keys a lazily detached mount still holds)
in_u() { as "$1" keyctl search @u user "$2" > /dev/null 2>&1; }
not_in_u() { ! in_u "$@"; }
tree_sum() { find "$1" -printf '%p %m %u %s\n' 2>/dev/null | sort | sha256sum; }
export -f in_u not_in_u as mounted not_mounted has_key no_key no_user_keys sig1 sig2 modes printed_pass tree_sum

# ---------------------------------------------------------------------------------------------
# p. setup-private AS THE USER (FNEK on by default): files, modes, byte formats, printed passphrase.
P=eatp; PPW='P-pass 4711 é'; HP=/home/$P
check p.useradd newuser $P "$PPW"
check p.setup-as-user bash -c "printf '%s\n' '$PPW' | as $P $CLI setup-private > /tmp/p.setup 2>&1"
check p.said-not-mounted grep -q 'ecryptfs-agent unlock' /tmp/p.setup
check p.not-mounted-by-setup not_mounted $HP
check p.modes bash -c "[ \"\$(modes $HP/.ecryptfs $HP/.Private $HP/Private $HP/.ecryptfs/wrapped-passphrase)\" = '700 $P 700 $P 500 $P 600 $P ' ]"
check p.sig-file-two-lines grep -cxE '[0-9a-f]{16}' $HP/.ecryptfs/Private.sig
check p.sig-file-bytes bash -c "[ \$(wc -l < $HP/.ecryptfs/Private.sig) -eq 2 ] && [ \$(wc -c < $HP/.ecryptfs/Private.sig) -eq 34 ]"
check p.mnt-file bash -c "[ \"\$(cat $HP/.ecryptfs/Private.mnt)\" = '$HP/Private' ] && [ \$(wc -c < $HP/.ecryptfs/Private.mnt) -eq $(( ${#HP} + 9 )) ]"
check p.auto-files test -e $HP/.ecryptfs/auto-mount -a -e $HP/.ecryptfs/auto-umount -a ! -e $HP/.ecryptfs/wrapping-independent
printed_once() { local p; p=$(printed_pass /tmp/p.setup); echo "$p" | grep -qxE '[0-9a-f]{32}' && equal_text 1 "$(grep -c "$p" /tmp/p.setup)"; }
check p.passphrase-printed-once printed_once
check p.reference-unwraps-to-printed bash -c "[ \"\$(printf '%s' '$PPW' | as $P ecryptfs-unwrap-passphrase $HP/.ecryptfs/wrapped-passphrase -)\" = '$(printed_pass /tmp/p.setup)' ]"
check p.reference-sigs-match equal_text "$(cat $HP/.ecryptfs/Private.sig)" "$(reference_sigs $P "$(printed_pass /tmp/p.setup)" --fnek)"
check p.no-keys-left-by-setup no_user_keys $P

# (1) our PAM module mounts it at login; (2) the reference tools mount it; files cross over.
check p.our-login bash -c "echo '$PPW' | pamtester eat-login $P authenticate open_session"
check p.our-login-mounted mounted $HP
check p.write-through-ours as $P sh -c "echo from-ours > $HP/Private/ours.txt"
check p.lower-name-encrypted bash -c "ls $HP/.Private | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.'"
check p.our-logout pamtester eat-login $P close_session
check p.our-logout-locked not_mounted $HP
check p.reference-mount with_reference_private $P "$PPW" "grep -qx from-ours $HP/Private/ours.txt && echo from-reference > $HP/Private/ref.txt"
check p.reference-unmounted not_mounted $HP
check p.pam-ecryptfs-login bash -c "echo '$PPW' | pamtester eat-ref $P authenticate open_session"
check p.pam-ecryptfs-mounted mounted $HP
check p.pam-ecryptfs-reads-both as $P sh -c "grep -qx from-ours $HP/Private/ours.txt && grep -qx from-reference $HP/Private/ref.txt && echo from-pam-ecryptfs > $HP/Private/pamref.txt"
check p.pam-ecryptfs-logout pamtester eat-ref $P close_session
check p.pam-ecryptfs-unmounted not_mounted $HP
as $P keyctl clear @u 2>/dev/null

# u. unlock AS THE USER (keys as the user, mount through /sbin/mount.ecryptfs_private), status, lock.
check u.wrong-password-refused bash -c "! (echo 'not-it' | as $P keyctl session - $CLI unlock > /tmp/u.wrong 2>&1) && grep -q 'wrong login passphrase.*nothing changed' /tmp/u.wrong"
check u.wrong-password-no-mount not_mounted $HP
check u.wrong-password-no-keys no_user_keys $P
check u.unlock-as-user bash -c "printf '%s\n' '$PPW' | as $P keyctl session - $CLI unlock > /tmp/u.unlock 2>&1"
check u.mounted mounted $HP
check u.reads-reference-file as $P grep -qx from-pam-ecryptfs $HP/Private/pamref.txt
status_as_user() { runs_into /tmp/u.status as $P $CLI status && file_has /tmp/u.status 'keys in @u: *all present' 'mounted: *yes' 'not checked'; }
check u.status-as-user status_as_user
hold $P sh -c "cd $HP/Private && exec sleep 300"; holder_u=$!
sleep 1
check u.lock-refused-while-in-use bash -c "! as $P $CLI lock > /tmp/u.lock 2>&1 && grep -q 'refusing to lock' /tmp/u.lock && grep -Eq '$P +$holder_u c +sleep' /tmp/u.lock"
check u.still-mounted-after-refusal mounted $HP
kill $holder_u; wait $holder_u 2>/dev/null
check u.lock-as-user as $P $CLI lock
check u.locked not_mounted $HP
check u.keys-gone-after-lock bash -c "not_in_u $P \"\$(sig1 $HP)\" && not_in_u $P \"\$(sig2 $HP)\""

# r. setup-private AS ROOT for a user (-u, --no-fnek, password from stdin): owned by the user.
R=eatr; RPW='R-pw-9' ; HR=/home/$R
check r.useradd newuser $R "$RPW"
check r.setup-as-root bash -c "printf '%s\n' '$RPW' | $CLI setup-private -u $R --no-fnek > /tmp/r.setup 2>&1"
check r.owned-by-user bash -c "[ -z \"\$(find $HR/.ecryptfs $HR/.Private $HR/Private ! -user $R)\" ]"
check r.modes bash -c "[ \"\$(modes $HR/.ecryptfs $HR/.Private $HR/Private $HR/.ecryptfs/wrapped-passphrase)\" = '700 $R 700 $R 500 $R 600 $R ' ]"
check r.one-sig bash -c "[ \$(wc -c < $HR/.ecryptfs/Private.sig) -eq 17 ]"
check r.reference-unwraps-to-printed bash -c "[ \"\$(printf '%s' '$RPW' | as $R ecryptfs-unwrap-passphrase $HR/.ecryptfs/wrapped-passphrase -)\" = '$(printed_pass /tmp/r.setup)' ]"
check r.our-login bash -c "echo '$RPW' | pamtester eat-login $R authenticate open_session && echo from-ours > $HR/Private/ours.txt"
check r.lower-name-clear test -e $HR/.Private/ours.txt
check r.our-logout bash -c "pamtester eat-login $R close_session && ! awk -v m=$HR/Private '\$5 == m' /proc/self/mountinfo | grep -q ."
check r.reference-mount with_reference_private $R "$RPW" "grep -qx from-ours $HR/Private/ours.txt && echo from-reference > $HR/Private/ref.txt"
check r.pam-ecryptfs-login bash -c "echo '$RPW' | pamtester eat-ref $R authenticate open_session && grep -qx from-reference $HR/Private/ref.txt"
check r.pam-ecryptfs-logout bash -c "pamtester eat-ref $R close_session && ! awk -v m=$HR/Private '\$5 == m' /proc/self/mountinfo | grep -q ."
as $R keyctl clear @u 2>/dev/null

# w. root -u with a separate wrapping passphrase: login does not unlock; unlock -u / lock -u as root.
W=eatw; WPW='W-login-1'; WRAP='W-wrap-secret-2'; HW=/home/$W
check w.useradd newuser $W "$WPW"
check w.setup-wrapping bash -c "printf '%s\n' '$WRAP' | $CLI setup-private -u $W --wrapping > /tmp/w.setup 2>&1"
check w.wrapping-independent test -e $HW/.ecryptfs/wrapping-independent
check w.fnek-by-default bash -c "[ \$(wc -l < $HW/.ecryptfs/Private.sig) -eq 2 ]"
check w.login-does-not-unlock bash -c "echo '$WPW' | pamtester eat-login $W authenticate open_session > /tmp/w.login 2>&1; grep -q 'ecryptfs-agent unlock' /tmp/w.login && ! mounted $HW"
pamtester eat-login $W close_session > /dev/null 2>&1
unlock_wrong_refused() {
  fails_into /tmp/w.wrong fed "$WPW" $CLI unlock -u $W && file_has /tmp/w.wrong 'wrong wrapping passphrase' && not_mounted $HW && user_keyring_empty $W
}
check w.unlock-wrong-refused unlock_wrong_refused
check w.unlock-as-root bash -c "echo '$WRAP' | $CLI unlock -u $W"
check w.mounted mounted $HW
check w.keys-present has_key $W "$(sig1 $HW)"
status_as_root() { runs_into /tmp/w.status $CLI status $W && file_has /tmp/w.status 'mounted: *yes' 'sessions: *0 open' 'separate wrapping passphrase'; }
check w.status-as-root status_as_root
check w.write as $W sh -c "echo held > $HW/Private/held.txt"
hold $W sh -c "cd / && exec 3< $HW/Private/held.txt && exec sleep 300"; holder_w=$!
sleep 1
check w.lock-refused-names-process bash -c "! $CLI lock -u $W > /tmp/w.lock 2>&1 && grep -Eq '$W +$holder_w f +sleep' /tmp/w.lock"
check w.still-mounted mounted $HW
check w.still-keyed has_key $W "$(sig1 $HW)"
check w.lock-force-detaches bash -c "$CLI lock -u $W --force > /tmp/w.force 2>&1 && grep -q 'detached lazily' /tmp/w.force"
check w.force-unmounted not_mounted $HW
check w.force-keys-unlinked not_in_u $W "$(sig1 $HW)"
check w.holder-still-reads as $W cat /proc/$holder_w/fd/3
kill $holder_w; wait $holder_w 2>/dev/null
check w.unlock-again bash -c "echo '$WRAP' | $CLI unlock -u $W && grep -qx held $HW/Private/held.txt"
check w.lock-clean bash -c "$CLI lock -u $W && ! mounted $HW && not_in_u $W \"\$(sig1 $HW)\" && not_in_u $W \"\$(sig2 $HW)\""

# x. bad input: nothing changed.
before=$(tree_sum $HP)
check x.setup-again-refused bash -c "! (printf '%s\n' '$PPW' | as $P $CLI setup-private > /tmp/x.again 2>&1) && grep -q 'already exists' /tmp/x.again"
check x.setup-again-unchanged test "$(tree_sum $HP)" = "$before"
X=eatx; XPW='X-pw-5'; HX=/home/$X
check x.useradd newuser $X "$XPW"
as $X sh -c "mkdir -p $HX/Private && echo keep > $HX/Private/mine.txt"
check x.nonempty-private-refused bash -c "! (printf '%s\n' '$XPW' | $CLI setup-private -u $X > /tmp/x.ne 2>&1) && grep -q 'must be empty' /tmp/x.ne"
check x.nonempty-private-nothing-created bash -c "[ ! -e $HX/.ecryptfs ] && [ ! -e $HX/.Private ] && grep -qx keep $HX/Private/mine.txt"
as $X sh -c "rm -r $HX/Private && mkdir -p $HX/.Private && echo x > $HX/.Private/junk"
check x.nonempty-lower-refused bash -c "! (printf '%s\n' '$XPW' | $CLI setup-private -u $X > /tmp/x.nl 2>&1) && grep -q '.Private must be empty' /tmp/x.nl && [ ! -e $HX/.ecryptfs ]"
as $X rm -r $HX/.Private
check x.wrong-login-password-refused bash -c "! (printf '%s\n' 'not-the-password' | as $X $CLI setup-private > /tmp/x.pw 2>&1) && grep -q 'not the login password' /tmp/x.pw && [ ! -e $HX/.ecryptfs ]"

# d. doctor in the VM: the module checks pass (and our stacks are found in order).
$CLI doctor > /tmp/d.doctor 2>&1; doctor_rc=$?
check d.doctor-exit-0 test $doctor_rc -eq 0
check d.module-ok grep -q '^\[ok  \] kernel.ecryptfs' /tmp/d.doctor
check d.fnek-ok grep -q '^\[ok  \] kernel.fnek' /tmp/d.doctor
check d.aes-ok grep -q '^\[ok  \] kernel.aes' /tmp/d.doctor
check d.pam-ok bash -c "grep -q '^\[ok  \] pam.auth' /tmp/d.doctor && grep -q '^\[ok  \] pam.session' /tmp/d.doctor && grep -q '^\[ok  \] pam.password' /tmp/d.doctor"
user_files_ok() { # the user's doctor --json: six or more files.* findings, all ok
  as $P $CLI doctor --json > /tmp/d.json
  node -e '
const j = JSON.parse(require("fs").readFileSync("/tmp/d.json", "utf8"));
const f = j.findings.filter((x) => x.id.startsWith("files."));
if (f.length < 6 || f.some((x) => x.status !== "ok")) { console.log(JSON.stringify(f)); process.exit(1); }'
}
check d.user-files-ok user_files_ok

echo "--- doctor output"; cat /tmp/d.doctor
echo "--- setup output (passphrase lines removed)"; grep -v '^    ' /tmp/p.setup
exit $failed
