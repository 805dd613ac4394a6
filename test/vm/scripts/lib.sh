# Shared by the CHECK-style guest scripts; test/vm/checks.ts prepends it to each of them.
# check NAME COMMAND...: runs COMMAND (output to a file, never through $(...): pam_ecryptfs leaves a
# child holding stdout for 300 s), prints "CHECK NAME ok" or "CHECK NAME FAIL <output>", and on
# failure the tail of the log the suite uses (busybox syslogd's /tmp/syslog, else the journal).
failed=0
check() {
  local name=$1; shift
  if "$@" > /tmp/check.out 2>&1 < /dev/null; then
    echo "CHECK $name ok"; echo "  (${SECONDS}s)"
  else
    echo "CHECK $name FAIL $(tr '\n' ' ' < /tmp/check.out | cut -c1-600)"; failed=1
    if [ -s /tmp/syslog ]; then echo "--- syslog tail"; tail -n 15 /tmp/syslog
    else echo "--- journal tail"; journalctl -t ecryptfs-agent --no-pager -n 15 2>/dev/null; fi
  fi
}
# check_output NAME REGEX FILE: FILE (a client's captured output) matches REGEX
check_output() { check "$1" grep -qE "$2" "$3"; }
