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
# check_output NAME REGEX FILE: FILE (a client's captured output) matches REGEX
check_output() { check "$1" grep -qE "$2" "$3"; }

# as USER COMMAND...: runs COMMAND as USER with the user's groups and a clean environment, no PAM
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }

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
