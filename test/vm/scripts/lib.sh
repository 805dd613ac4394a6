# Shared by the CHECK-style guest scripts; test/vm/checks.ts prepends it to each of them.
# check NAME COMMAND...: runs COMMAND (output to a file, never through $(...): pam_ecryptfs leaves a
# child holding stdout for 300 s), prints "CHECK NAME ok" or "CHECK NAME FAIL <output>", and on
# failure the tail of the log the suite uses (busybox syslogd's /tmp/syslog, else the journal).
failed=0; nfail=0 # nfail: how many checks failed so far
check() {
  local name=$1; shift
  if "$@" > /tmp/check.out 2>&1 < /dev/null; then
    echo "CHECK $name ok"; echo "  (${SECONDS}s)"
  else
    echo "CHECK $name FAIL $(tr '\n' ' ' < /tmp/check.out | cut -c1-600)"; failed=1; nfail=$((nfail + 1))
    if [ -s /tmp/syslog ]; then echo "--- syslog tail"; tail -n 15 /tmp/syslog
    else echo "--- journal tail"; journalctl -t ecryptfs-agent --no-pager -n 15 2>/dev/null; fi
  fi
}
# The suites test our module, not pam_unix's hash: new passwords (chpasswd and passwd both go
# through pam_unix in common-password) get SHA-512 at its default 5000 rounds instead of Debian's
# yescrypt, which costs over a second of emulated CPU at every password check under TCG.
sed -i -E 's/^(password.*pam_unix\.so.*) yescrypt/\1 sha512/' /etc/pam.d/common-password

# check_output NAME REGEX FILE: FILE (a client's captured output) matches REGEX
check_output() { check "$1" grep -qE "$2" "$3"; }

# Small pieces the checks are written with (exported: checks also use them inside bash -c).
# file_has [-E|-F] FILE PATTERN...: every PATTERN (grep's basic regex; -E extended, -F fixed
# string) matches a line of FILE; else it says which one did not and shows the start of FILE.
file_has() {
  local opt=; case $1 in -E|-F) opt=$1; shift ;; esac
  local f=$1 p; shift
  for p in "$@"; do
    grep -q $opt -- "$p" "$f" 2>/dev/null || { echo "no line of $f matches: $p"; head -c 1500 "$f" 2>/dev/null; return 1; }
  done
}
# fails_into FILE COMMAND...: COMMAND fails, its output (stdout and stderr) in FILE
fails_into() {
  local f=$1; shift
  if "$@" > "$f" 2>&1; then echo "succeeded, but should have failed: $*"; head -c 1500 "$f"; return 1; fi
}
# runs_into FILE COMMAND...: COMMAND succeeds, its output (stdout and stderr) in FILE
runs_into() {
  local f=$1 rc; shift
  "$@" > "$f" 2>&1 && return 0
  rc=$?; echo "exit $rc: $*"; head -c 1500 "$f"; return 1
}
# fed TEXT COMMAND...: COMMAND with the line TEXT on stdin
fed() { local t=$1; shift; printf '%s\n' "$t" | "$@"; }
# until_ok SECONDS COMMAND...: COMMAND polled until it succeeds (work that finishes after the
# client returned: a logout, a journal line), then once more for its output
until_ok() { local end=$(( SECONDS + $1 )); shift; while [ $SECONDS -lt $end ]; do "$@" > /dev/null 2>&1 && return 0; sleep 0.5; done; "$@"; }
# equal_text WANT GOT: the two strings are the same; else both are shown
equal_text() { [ "$1" = "$2" ] || { printf 'want: %s\ngot:  %s\n' "$1" "$2"; return 1; }; }
# with_reference_private USER PASSWORD COMMAND: the reference peer's manual path, as USER in a
# fresh session keyring linked to @u: ecryptfs-insert-wrapped-passphrase-into-keyring with
# PASSWORD, mount.ecryptfs_private, COMMAND (sh -c), then umount.ecryptfs_private (also when
# COMMAND failed); the status is COMMAND's, or the unmount's failure.
with_reference_private() {
  local home; home=$(getent passwd "$1" | cut -d: -f6)
  as "$1" keyctl session - sh -c '
    keyctl link @u @s &&
      printf "%s" "$1" | ecryptfs-insert-wrapped-passphrase-into-keyring "$2/.ecryptfs/wrapped-passphrase" - &&
      /sbin/mount.ecryptfs_private || exit 1
    sh -c "$3"; rc=$?
    cd / && /sbin/umount.ecryptfs_private && exit $rc' sh "$2" "$home" "$3"
}

# as USER COMMAND...: runs COMMAND as USER with the user's groups and a clean environment, no PAM
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }

# reference_sigs USER PASSPHRASE [--fnek]: the sigs ecryptfs-add-passphrase prints for PASSPHRASE,
# one a line, run as USER in a throwaway session keyring; USER's @u is cleared afterwards
reference_sigs() {
  as "$1" keyctl session - sh -c 'printf "%s" "$1" | ecryptfs-add-passphrase $2 - | grep -o "\[[0-9a-f]*\]" | tr -d "[]"
    keyctl clear @u > /dev/null' sh "$2" "${3:-}" 2> /dev/null
}
# user_keyring_empty USER: USER's user keyring (@u) holds no key (asked with keyctl: /proc/keys
# still lists an unlinked key until the kernel's key garbage collector has run)
user_keyring_empty() { local k; k=$(as "$1" keyctl rlist @u 2>&1) && [ -z "$k" ] || { echo "@u of $1: $k"; return 1; }; }
# The private directory of a user and its keys (HOME as argument; login, gentoo and others):
# mounted HOME: HOME/Private is an eCryptfs mount; not_mounted HOME: it is not
mounted() { awk -v m="$1/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
# has_key USER SIG: an auth tok with SIG is linked in the user keyring of USER (keyctl, not
# /proc/keys, which may still list an unlinked key until the kernel's key garbage collector has run)
has_key() { as "$1" keyctl session - sh -c "keyctl link @u @s && keyctl search @u user $2" > /dev/null 2>&1; }
no_key() { ! has_key "$@"; }
# sessions USER: how many sessions the agent counts open for USER
sessions() { local f="/run/ecryptfs-agent/$(id -u "$1").sessions"; if [ -f "$f" ]; then grep -c '"id"' "$f"; else echo 0; fi; }
sig1() { head -n1 "$1/.ecryptfs/Private.sig"; }
# set_password USER PASSWORD: its SHA-512 crypt hash written as it is (chpasswd -e runs no PAM): a
# new account has nothing to re-wrap, and an agent started for it costs a Node start under TCG
set_password() { printf '%s:%s\n' "$1" "$(printf '%s' "$2" | openssl passwd -6 -stdin)" | chpasswd -e; }
newuser() { useradd -m -s /bin/bash "$1" && set_password "$1" "$2"; }
export -f as set_password mounted not_mounted has_key no_key file_has fails_into runs_into fed equal_text with_reference_private reference_sigs user_keyring_empty

# Interactive logins through a pty (expect): su and passwd ask on the terminal, as for a person.
# A missing prompt or an early end stops the run at once (exit 124 / 125) instead of waiting out
# each timeout. The scripts hold the suites' literal test passwords, in the guest's tmpfs.
EXPECT_STEP='set timeout 300
proc step {prompt answer} {
  expect {
    $prompt { send "$answer\r" }
    timeout { puts "\nexpect: no \"$prompt\" within 300 s"; exit 124 }
    eof { puts "\nexpect: the program ended before \"$prompt\""; catch wait r; exit 125 }
  }
}'
# su_as CALLER USER PASSWORD COMMAND OUTFILE: CALLER runs `su - USER -c COMMAND` typing PASSWORD;
# the session's output in OUTFILE; the exit status of su (that of COMMAND).
su_as() {
  cat > /tmp/su.exp <<EXP
$EXPECT_STEP
spawn su - $2 -c {$4}
step "Password:" {$3}
expect eof
catch wait result
exit [lindex \$result 3]
EXP
  as "$1" expect -f /tmp/su.exp > "$5" 2>&1
}
# A marker for a command typed on a pty (login_as, su_as): the pty echoes the typed text back, so
# a marker typed literally is in the output even when the command failed; "...-$OK42" prints as
# "...-42" only when the shell ran the echo.
OK42='$((40 + 2))'
# login_as USER PASSWORD COMMAND OUTFILE: a console login (root runs login(1) on expect's pty,
# as getty would), PASSWORD typed, COMMAND run in the login shell, then exit; output in OUTFILE
login_as() {
  cat > /tmp/login.exp <<EXP
$EXPECT_STEP
spawn login $1
step "Password:" {$2}
step "\$ " {$3; exit}
expect eof
catch wait result
exit [lindex \$result 3]
EXP
  expect -f /tmp/login.exp > "$4" 2>&1
}
# su_prints CALLER USER PASSWORD COMMAND OUTFILE MARKER: su_as succeeded and printed MARKER
su_prints() { su_as "$1" "$2" "$3" "$4" "$5" && grep -q "$6" "$5" || { cat "$5"; return 1; }; }
# passwd_as USER OLD NEW OUTFILE: Debian's passwd as USER; the exit status of passwd. A hang shows
# the process tree (once, after 150 s) instead of stalling in silence.
passwd_as() {
  cat > /tmp/passwd.exp <<EXP
$EXPECT_STEP
spawn passwd
step "Current password:" {$2}
step "New password:" {$3}
step "Retype new password:" {$3}
expect eof
catch wait result
exit [lindex \$result 3]
EXP
  ( sleep 150; echo "--- passwd still running after 150 s:"; ps -eo pid,ppid,stat,etime,wchan:24,args ) > /tmp/passwd.watch 2>&1 & local watch=$!
  as "$1" timeout -k 5 400 expect -f /tmp/passwd.exp > "$4" 2>&1; local rc=$?
  kill $watch 2>/dev/null; wait $watch 2>/dev/null; cat /tmp/passwd.watch >> "$4" 2>/dev/null; rm -f /tmp/passwd.watch
  return $rc
}

# use_our_module [OPTION...]: sets MOD, AGENT and OPTS (agent=…, a TCG-sized timeout, OPTION…),
# loads eCryptfs, starts a syslog for the agent, replaces the host's pam_ecryptfs lines in Debian's
# common-* stacks with ours (as pam-auth-update writes them: used by su, passwd, chpasswd) and
# writes the `eat-login` service (pam_unix + ours) for pamtester and pam-hold.
use_our_module() {
  MOD="$REPO/build/Release/pam_ecryptfs_agent.so"
  AGENT="$REPO/dist/agent/main.js"
  OPTS="agent=$AGENT timeout=120 $*"
  busybox syslogd -n -O /tmp/syslog & sleep 0.5
  modprobe ecryptfs
  sed -i '/pam_ecryptfs\.so/d' /etc/pam.d/common-*
  sed -i "/^auth.*pam_permit.so/a auth optional $MOD unwrap $OPTS" /etc/pam.d/common-auth
  echo "session optional $MOD $OPTS" >> /etc/pam.d/common-session
  echo "password optional $MOD $OPTS" >> /etc/pam.d/common-password
  cat > /etc/pam.d/eat-login <<PAM
auth     required  pam_unix.so
auth     optional  $MOD unwrap $OPTS
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD $OPTS
PAM
}

# use_reference_module: the `eat-ref` service with ecryptfs-utils' own pam_ecryptfs.so (the reference
# peer: auth unwraps with the login password, session mounts through mount.ecryptfs_private).
use_reference_module() {
  cat > /etc/pam.d/eat-ref <<'PAM'
auth     required  pam_unix.so
auth     required  pam_ecryptfs.so unwrap
account  required  pam_unix.so
session  required  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  pam_ecryptfs.so unwrap
PAM
}
