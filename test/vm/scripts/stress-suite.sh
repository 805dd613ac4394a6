# Concurrency, the agent-kill fault matrix and a full disk, with the REAL shim + agent on
# Debian's kernel. Run as root in the fast-mode VM by test/vm/stress.vm.test.ts, which prepends
# lib.sh and:  REPO=<repo root>  HOLD=<pam-hold binary>  N=<parallel cycles, one user>  M=<users>
# Prints CHECK lines, "FIGURE ..." lines (measurements), and "PLAN login=<a> chauthtok=<b>": the
# kill points found by tracing one clean cycle (the test expects 3 checks per login kill point and
# 5 per chauthtok kill point on top of the fixed ones, and at least the steps it knows must exist).
# SECTIONS (set by the test): which of a b c d to run (the fault matrix runs in its own VM);
# TRANSPORT (section c): spawn or resident
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
per_sec() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.2f", (ms > 0 ? n * 1000 / ms : 0) }'; }
T0=$(now_ms)
# timeout=300 (the most the shim allows): dozens of agents starting at once on an emulated
# 2-CPU guest take minutes, not the seconds they take on hardware (see the FIGURE lines)
use_our_module debug
sed -i 's/ timeout=120 / timeout=300 /' /etc/pam.d/eat-login /etc/pam.d/common-*
OPTS=${OPTS/timeout=120/timeout=300}
RUNDIR=/run/ecryptfs-agent
CLI=$REPO/bin/ecryptfs-agent

mounted() { awk -v m="$1/Private" '$5 == m && / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# no eCryptfs mount anywhere under /home/USER/
no_mount_of() { ! awk -v h="/home/$1/" '/ - ecryptfs / && index($5, h) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# keys in the user's keyring as the kernel lists it (unlinked keys awaiting GC don't count)
user_keys() { as "$1" keyctl rlist @u 2>/dev/null | wc -w; }
sessions() { local f="$RUNDIR/$(id -u "$1").sessions"; if [ -f "$f" ]; then grep -o '"id"' "$f" | wc -l; else echo 0; fi; }
# what the agent keeps for USER in its run dir besides the lock and the session list (temp files,
# closing markers, the last-login note)
run_leftovers() { local u; u=$(id -u "$1"); (cd $RUNDIR 2>/dev/null && ls -A | grep "^$u\." | grep -v "^$u\.lock$" | grep -v "^$u\.sessions$" | grep -v "^$u\.last-login$" | tr '\n' ' '); }
# after the last logout: nothing mounted under the home, no key, no session, nothing left over
all_clean() {
  local u=$1 k s l
  k=$(user_keys "$u"); s=$(sessions "$u"); l=$(run_leftovers "$u")
  echo "mounts under /home/$u: $(grep -c " /home/$u/" /proc/self/mountinfo); keys: $k; sessions: $s; run dir leftovers: ${l:-none}"
  no_mount_of "$u" && [ "$k" -eq 0 ] && [ "$s" -eq 0 ] && [ -z "$l" ]
}
setup_private() { as "$1" env HOME="/home/$1" keyctl session - ecryptfs-setup-private --nopwcheck -l "$2" -m "$3" > /tmp/setup.$1 2>&1; }
setup_user() { newuser "$1" "$2" && setup_private "$@"; }

# Held sessions: pam-hold authenticates (password on its stdin), opens, prints "OPEN rc pid",
# holds until its stdin reaches EOF, closes, prints "CLOSED rc". Module lines come out as INFO:/ERROR:.
# in a child: closes the write ends of the holders' fifos (bash {fd}s are >= 10), whose EOF ends a hold
close_holder_fds() { local f n; for f in /proc/self/fd/*; do n=${f##*/}; [ "$n" -ge 10 ] 2> /dev/null && eval "exec $n>&-"; done; }
hold_start() { # hold_start NAME USER PASSWORD [SERVICE]
  rm -f /tmp/$1.in /tmp/$1.out; mkfifo /tmp/$1.in
  ( close_holder_fds; exec "$HOLD" "${4:-eat-login}" "$2" ) < /tmp/$1.in > /tmp/$1.out 2>&1 &
  eval "exec {fd_$1}>/tmp/$1.in"; eval "echo '$3' >&\$fd_$1"
}
# hold_wait NAME LINE: waits for "LINE ..." from pam-hold; gives up at once when authentication
# failed (pam-hold then ends without a session)
hold_wait() {
  local i
  for i in $(seq 1 1500); do
    grep -q "^$2 " /tmp/$1.out && return 0
    grep -q '^AUTH [1-9]' /tmp/$1.out && break
    sleep 0.2
  done
  echo "no $2 from $1: $(cat /tmp/$1.out)"; return 1
}
hold_end() { eval "exec {fd_$1}>&-"; }
# cycle NAME USER PASSWORD [SERVICE]: one login, "mounted"/"NOT-MOUNTED" while it is open (in
# /tmp/NAME.res, with the session count seen), logout; cycle_open and cycle_close are the halves.
cycle() { cycle_open "$@"; cycle_close "$1"; }
cycle_open() {
  hold_start "$1" "$2" "$3" "${4:-eat-login}"
  if hold_wait "$1" OPEN > /dev/null; then
    if mounted "/home/$2"; then echo "mounted $(sessions "$2")" > /tmp/$1.res; else echo "NOT-MOUNTED $(sessions "$2")" > /tmp/$1.res; fi
  fi
}
cycle_close() { hold_end "$1"; hold_wait "$1" CLOSED > /dev/null; }
cycle_ok() { grep -q '^OPEN 0 ' /tmp/$1.out && grep -q '^CLOSED 0' /tmp/$1.out || { echo "$1: $(tr '\n' ' ' < /tmp/$1.out)"; return 1; }; }
cycle_saw_mount() { grep -q '^mounted ' /tmp/$1.res 2>/dev/null || { echo "$1: $(cat /tmp/$1.res 2>/dev/null) / $(tr '\n' ' ' < /tmp/$1.out)"; return 1; }; }
each() { local fn=$1 i; shift; for i in "$@"; do "$fn" "$i" || return 1; done; }
# agents SIGKILLed: spawned ones as the PAM module saw them die, workers as their master saw it
killed_count() { grep -cE 'agent killed by signal 9|worker was killed by SIGKILL while serving' /tmp/syslog; }
# killed_once_and_proceeded BEFORE AFTER NAME: exactly one agent was SIGKILLed and the login or
# logout went on (pam-hold saw PAM_SUCCESS from both)
killed_once_and_proceeded() { [ $(($2 - $1)) -eq 1 ] && cycle_ok "$3" || { echo "agents killed: $(($2 - $1))"; cat /tmp/$3.out; return 1; }; }
unlocked_or_told() { grep -q '^mounted' /tmp/$1.res || grep -qE '^(INFO|ERROR): .*ecryptfs-agent (unlock|failed)' /tmp/$1.out || { cat /tmp/$1.out; return 1; }; }
unlocked_one_session() { grep -q '^OPEN 0 ' /tmp/$1.out && grep -qx 'mounted 1' /tmp/$1.res || { cat /tmp/$1.res /tmp/$1.out; return 1; }; }
closed_and_clean() { grep -q '^CLOSED 0' /tmp/$1.out && all_clean "$2"; }
locked_and_told_rewrap() { grep -q '^NOT-MOUNTED' /tmp/$1.res && grep -q 'rewrap-passphrase' /tmp/$1.out || { cat /tmp/$1.out; return 1; }; }

ecryptfs_dir_as_expected() { ls -A "$1/.ecryptfs" | diff "$2" -; }
# passwd_as USER OLD NEW OUTFILE: lib.sh

if section a; then
# ---------------------------------------------------------------------------------------------
# a. N login/logout cycles of one user, all started at once: every session sees ~/Private mounted
#    while it is open (no logout locks it under another session), the last logout locks.
A=eatsa; APW='Sa-pass 4242'
check a.setup setup_user $A "$APW" "mount-pass-$A-777"
t=$(now_ms); pids=()
for i in $(seq 1 "$N"); do cycle a$i $A "$APW" & pids+=($!); done
wait "${pids[@]}" # never a bare `wait`: it would also wait for syslogd
tA=$(( $(now_ms) - t ))
names=(); for i in $(seq 1 "$N"); do names+=(a$i); done
check a.every-cycle-exit-0 each cycle_ok "${names[@]}"
check a.every-session-saw-its-mount each cycle_saw_mount "${names[@]}"
check a.last-logout-leaves-nothing all_clean $A
echo "FIGURE one user, $N login/logout cycles at once: ${tA} ms = $(per_sec "$N" "$tA") cycles/s (most sessions seen open at once: $(cut -d' ' -f2 /tmp/a*.res | sort -n | tail -1))"

fi # section a

if section b; then
# ---------------------------------------------------------------------------------------------
# b. M users, one login/logout cycle each, all at once.
users=(); for j in $(seq 1 "$M"); do users+=("eatm$j"); done
# the accounts one after another (useradd gives up when /etc/passwd stays locked for long, as it
# does with M of them at once on a busy emulated guest), the private directories all at once, by
# our setup-private (section a's comes from ecryptfs-setup-private, which mounts twice and derives
# seven keys to test each setup: minutes of emulated CPU for M users)
setup_all() {
  local u pids=()
  for u in "${users[@]}"; do newuser "$u" "Pw-$u-9" || return 1; done
  for u in "${users[@]}"; do (printf '%s\n' "Pw-$u-9" | $CLI setup-private -u "$u" > /tmp/setup.$u 2>&1) & pids+=($!); done
  wait "${pids[@]}"
  for u in "${users[@]}"; do [ -s /home/$u/.ecryptfs/Private.sig ] || { echo "$u: $(cat /tmp/setup.$u)"; return 1; }; done
}
check b.setup-users setup_all
t=$(now_ms); pids=()
for u in "${users[@]}"; do cycle b_$u $u "Pw-$u-9" & pids+=($!); done
wait "${pids[@]}"
tB=$(( $(now_ms) - t ))
bnames=(); for u in "${users[@]}"; do bnames+=(b_$u); done
check b.every-cycle-exit-0 each cycle_ok "${bnames[@]}"
check b.every-user-saw-own-mount each cycle_saw_mount "${bnames[@]}"
check b.every-user-left-clean each all_clean "${users[@]}"
echo "FIGURE $M users, one login/logout cycle each, at once: ${tB} ms = $(per_sec "$M" "$tB") cycles/s"

fi # section b

if section c; then
# ---------------------------------------------------------------------------------------------
# c. Fault matrix, through one TRANSPORT (set by the test). Tracing one clean cycle finds every
#    step; each step then gets its own SIGKILL, deterministic, with the invariants checked after it
#    and after the next cycle. strace either records the step syscalls (SPEC trace) or SIGKILLs the
#    agent on entry to the Kth call of one syscall (SPEC "SYSCALL:when=K"), K counted per process.
#    spawn:    a wrapper agent (root-owned, in a root-owned dir, so the shim accepts it) runs the
#              real agent; the run chosen by $KDIR/plan ("RUN SPEC") runs under strace.
#    resident: the resident agent's master (started here as its unit would, minus systemd; one
#              spare) serves every phase with a worker; strace attaches to the waiting spare right
#              before the phase and detaches after it. The stack's agent= is /bin/false: a phase the
#              resident agent did not serve cannot unlock, so the checks prove the transport.
STEP_SYSCALLS=add_key,keyctl,mount,umount2,rename,unlink,mkdir,fsync
KDIR=/usr/local/libexec/eat-fault; WRAP=$KDIR/agent
mkdir -p $KDIR && chmod 755 /usr/local/libexec $KDIR
cat > $WRAP <<SH
#!/bin/bash -p
# -p: passwd runs the module with ruid=user euid=0; bash would otherwise drop euid to the user.
# strace refuses ruid != euid, so the traced agent starts as full root (the agent's own first
# step when it finds euid 0).
n=\$(( \$(cat $KDIR/count) + 1 )); echo \$n > $KDIR/count
read -r run spec < $KDIR/plan
if [ "\$run" = all ] || [ "\$n" = "\$run" ]; then
  if [ "\$spec" = trace ]; then exec setpriv --reuid=0 --regid=0 --keep-groups strace -f -qq -o $KDIR/trace.\$n -e trace=$STEP_SYSCALLS /usr/bin/node $AGENT pam; fi
  exec setpriv --reuid=0 --regid=0 --keep-groups strace -f -qq -o /dev/null -e trace=\${spec%%:*} -e inject=\$spec:signal=KILL /usr/bin/node $AGENT pam
fi
exec /usr/bin/node $AGENT pam
SH
chmod 755 $WRAP
arm() { echo 0 > $KDIR/count; echo "$1 $2" > $KDIR/plan; rm -f $KDIR/trace.*; }
arm 0 none
STACK_AGENT=$WRAP
if [ "$TRANSPORT" = resident ]; then
  STACK_AGENT=/bin/false
  mkdir -p $RUNDIR
  node "${AGENT%/main.js}/master.js" --listen $RUNDIR --idle-exit 0 --spares 1 > /tmp/master.log 2>&1 &
  MASTER=$!
fi
sed "s#agent=$AGENT#agent=$STACK_AGENT#" /etc/pam.d/eat-login > /etc/pam.d/eat-fault
sed -i "s#agent=$AGENT#agent=$STACK_AGENT#" /etc/pam.d/common-password
echo "FIGURE fault matrix transport: $TRANSPORT"

# resident: the master's one waiting worker (its main thread blocked in poll for a connection)
idle_spare() {
  local p
  for p in $(pgrep -P "$MASTER" -f "$AGENT worker"); do
    case $(cut -d' ' -f1 /proc/$p/syscall 2> /dev/null) in 7 | 271) echo "$p"; return 0 ;; esac
  done
  return 1
}
traced_by_strace() { ! grep -q '^TracerPid:[[:space:]]*0$' /proc/$1/status; }
STRACE_PID=
attach() { # attach SPEC [TRACE-FILE]: strace on the waiting spare from now until detach
  local w
  until_ok 120 idle_spare || { echo "no waiting spare: $(cat /tmp/master.log)"; return 1; }
  w=$(idle_spare)
  # not holding a holder's fifo open: its logout would never come
  if [ "$1" = trace ]; then (close_holder_fds; exec strace -f -qq -o "$2" -e trace=$STEP_SYSCALLS -p "$w") &
  else (close_holder_fds; exec strace -f -qq -o /dev/null -e trace="${1%%:*}" -e inject="$1":signal=KILL -p "$w") & fi
  STRACE_PID=$!
  until_ok 20 traced_by_strace "$w"
}
detach() { if [ -n "$STRACE_PID" ]; then kill "$STRACE_PID" 2> /dev/null; wait "$STRACE_PID" 2> /dev/null; STRACE_PID=; fi; }
# armed_cycle NAME PHASE SPEC: a login and logout of $K on eat-fault with SPEC armed for PHASE
# (open_session, close_session or all); traces land in /tmp/trace.1 (open) and /tmp/trace.2 (close)
armed_cycle() {
  local name=$1 ph=$2 spec=$3 run pid
  if [ "$TRANSPORT" = spawn ]; then
    case $ph in open_session) run=1 ;; close_session) run=2 ;; all) run=all ;; esac
    arm $run "$spec"; rm -f /tmp/trace.[123]
    cycle "$name" $K "$CUR" eat-fault
    for run in 1 2 3; do cp $KDIR/trace.$run /tmp/trace.$run 2> /dev/null; done
    arm 0 none
    return
  fi
  case $ph in open_session | all) attach "$spec" /tmp/trace.1 ;; esac
  cycle_open "$name" $K "$CUR" eat-fault
  detach
  case $ph in close_session | all) attach "$spec" /tmp/trace.2 ;; esac
  cycle_close "$name"
  detach
  # a close killed before it dropped the session: the master's watch of the login's process
  # (gone now) runs that close; wait for it, so the next cycle starts from a settled state
  pid=$(awk '$1 == "OPEN" { print $3 }' /tmp/$name.out)
  [ -z "$pid" ] || until_ok 60 session_gone "$pid"
}
session_gone() { ! grep -qE "\"pid\": *$1[,}]" "$RUNDIR/$(id -u $K).sessions" 2> /dev/null; }
# armed_passwd OLD NEW OUT SPEC: passwd for $K with SPEC armed for its chauthtok (trace: /tmp/trace.pw)
armed_passwd() {
  local rc
  if [ "$TRANSPORT" = spawn ]; then
    arm 1 "$4"; passwd_as $K "$1" "$2" "$3"; rc=$?
    cp $KDIR/trace.1 /tmp/trace.pw 2> /dev/null
    arm 0 none
  else
    attach "$4" /tmp/trace.pw; passwd_as $K "$1" "$2" "$3"; rc=$?; detach
  fi
  return $rc
}
# auth asks no agent: spawn, no third agent run; resident, exactly two phases served (open, close)
auth_runs_no_agent() {
  if [ "$TRANSPORT" = spawn ]; then test ! -e /tmp/trace.3; else [ $(($(served_count) - SERVED0)) -eq 2 ]; fi
}
served_count() { grep -c 'served by the resident agent' /tmp/syslog; }

# steps_of TRACE PHASE: one line per kill point "PHASE SYSCALL K WHAT" — the state-changing calls of
# the agent's main thread (its tid is the process id: the lowest in the trace), K counted per
# syscall name as strace's when= counts them.
steps_of() {
  local main; main=$(awk 'NR == 1 || $1 < m { m = $1 } END { print m }' "$1")
  awk -v ph="$2" -v main="$main" '
    $1 != main { next }
    { line = $0; sub(/^[0-9]+ +/, "", line) }
    line ~ /^<\.\.\./ || line ~ /^---/ || line ~ /^\+\+\+/ { next }
    { sc = line; sub(/\(.*/, "", sc); n[sc]++; prev = last; last = sc }
    sc == "keyctl" && line !~ /KEYCTL_(LINK|SET_TIMEOUT|UNLINK|REVOKE|INVALIDATE|CLEAR)/ { next }
    sc == "mkdir" && line ~ /EEXIST/ { next }
    # the directory fsync right after a rename: killed there or after it, the state is the same
    sc == "fsync" && prev == "rename" { next }
    { what = line
      if (sc == "add_key") { split(line, a, "\""); what = "add_key " a[4] }   # the sig, never the payload
      else if (sc == "keyctl") { split(line, a, /[(,]/); what = "keyctl " a[2] }
      else { sub(/\) += .*/, ")", what); gsub(/ +/, " ", what) }
      print ph, sc, n[sc], substr(what, 1, 80) }' "$1"
}

K=eatk; KPW='Kk-pass 3131'; HK=/home/$K; KMP='kmount-pass-99'
CUR="$KPW" # the password now (the chauthtok cases change it)
check c.setup setup_user $K "$KPW" "$KMP"
cycle warm $K "$KPW" eat-fault   # steady state: /run/ecryptfs-agent and the lock file exist
# a login runs the agent twice: open_session (it unwraps with the password the module kept
# from auth, adds the keys, mounts) and close_session; auth runs no agent
SERVED0=$(served_count)
armed_cycle traced all trace
check c.traced-cycle-unlocked cycle_saw_mount traced
check c.auth-runs-no-agent auth_runs_no_agent
{ steps_of /tmp/trace.1 open_session; steps_of /tmp/trace.2 close_session; } > /tmp/login-steps
has_step() { grep -q "^$1 $2 " /tmp/login-steps || { echo "no $2 step traced in $1:"; cat /tmp/login-steps; return 1; }; }
check c.trace-open-adds-keys has_step open_session add_key
check c.trace-open-mounts has_step open_session mount
check c.trace-close-unmounts has_step close_session umount2
check c.trace-close-unlinks-keys grep -q '^close_session keyctl .* KEYCTL_UNLINK' /tmp/login-steps

# recovers: what the killed cycle left is undone. When its logout left nothing (no mount, key,
# counted session or run-dir leftover), a next login would only repeat the clean cycle proven
# above, so none runs; else the next login unlocks with one session counted and its logout
# leaves nothing. RECOVERY says which.
recovers() {
  if all_clean $K > /dev/null; then RECOVERY='nothing was left'; return 0; fi
  RECOVERY='the next login cleaned up'
  cycle g $K "$CUR"
  unlocked_one_session g && closed_and_clean g $K
}
fault_login() { # fault_login PHASE SYSCALL K WHAT...  (3 checks)
  local ph=$1 sc=$2 k=$3; shift 3
  local name="c.$ph.$sc-$k" before after m=no said f0=$nfail
  before=$(killed_count)
  armed_cycle f "$ph" "$sc:when=$k"
  after=$(killed_count)
  grep -q '^mounted' /tmp/f.res && m=yes
  said=$(grep -E '^(INFO|ERROR): ' /tmp/f.out | cut -c1-110 | tr '\n' '|')
  local now="mounted=$(mounted $HK && echo yes || echo no) keys=$(user_keys $K) sessions=$(sessions $K)"
  local left="after logout: $now leftovers=$(run_leftovers $K | grep . || echo none)"
  check "$name.killed-login-proceeds" killed_once_and_proceeded "$before" "$after" f
  check "$name.unlocked-or-told" unlocked_or_told f
  check "$name.recovers" recovers
  echo "FIGURE fault $ph before $* (#$k): kills $((after - before)); while open: mounted=$m said=${said:-nothing}; $left; $RECOVERY"
  [ "$nfail" -eq "$f0" ] && survived=$((survived + 1))
}
nlogin=$(wc -l < /tmp/login-steps)
# chauthtok: trace one passwd, then kill it at each step
unwraps_with() { as $K sh -c "printf '%s' '$1' | ecryptfs-unwrap-passphrase $HK/.ecryptfs/wrapped-passphrase - 2>/dev/null | grep -qx '$KMP'"; }
# next_pw: sets PW to a password never used before (not through $(...): its counter must survive;
# a repeated password makes Debian's passwd refuse "unchanged" and prompt again)
NEXT=0
next_pw() { NEXT=$((NEXT + 1)); PW="Qz7#rounD-$NEXT-Lmx"; }
ls -A $HK/.ecryptfs > /tmp/ecryptfs-dir.expected
next_pw; NEW=$PW; armed_passwd "$CUR" "$NEW" /tmp/passwd.traced trace; rc=$?
rewrapped_by_passwd() { [ "$1" -eq 0 ] && unwraps_with "$2" || { cat /tmp/passwd.traced; return 1; }; }
check c.traced-passwd-rewraps rewrapped_by_passwd "$rc" "$NEW"
CUR="$NEW"
steps_of /tmp/trace.pw chauthtok > /tmp/pw-steps
check c.trace-passwd-renames grep -q '^chauthtok rename ' /tmp/pw-steps
npw=$(wc -l < /tmp/pw-steps)
# FAULT_POINTS: all; sample = one kill point per phase (keys added but nothing mounted yet, the
# unmount, the re-wrap's rename), for the transport whose full matrix another run proves; login or
# chauthtok (by hand) = just those kill points
sample_of() { local f=$1; shift; for p in "$@"; do grep -m1 "^$p " "$f"; done > "$f.sample"; mv "$f.sample" "$f"; }
case "${FAULT_POINTS:-all}" in
  login) npw=0; : > /tmp/pw-steps ;;
  chauthtok) nlogin=0; : > /tmp/login-steps ;;
  sample) sample_of /tmp/login-steps 'open_session mount' 'close_session umount2'; sample_of /tmp/pw-steps 'chauthtok rename'
    nlogin=$(wc -l < /tmp/login-steps); npw=$(wc -l < /tmp/pw-steps) ;;
esac
echo "PLAN login=$nlogin chauthtok=$npw"
cat /tmp/login-steps /tmp/pw-steps | sed 's/^/  kill point: /'

passwd_killed_and_told() { # passwd_killed_and_told KILLS-BEFORE KILLS-AFTER PASSWD-EXIT
  [ $(($2 - $1)) -eq 1 ] && [ "$3" -eq 0 ] && grep -q 'ecryptfs-agent failed during the password change' /tmp/pw.out ||
    { echo "agents killed: $(($2 - $1)); passwd exit $3"; cat /tmp/pw.out; return 1; }
}
fault_passwd() { # fault_passwd SYSCALL K WHAT... (5 checks)
  local sc=$1 k=$2; shift 2
  local name="c.chauthtok.$sc-$k" before after old="$CUR" new o=no n=no rc f0=$nfail
  next_pw; new=$PW
  before=$(killed_count)
  armed_passwd "$old" "$new" /tmp/pw.out "$sc:when=$k"; rc=$?
  after=$(killed_count)
  unwraps_with "$old" && o=yes; unwraps_with "$new" && n=yes
  echo "FIGURE fault chauthtok before $* (#$k): kills $((after - before)); passwd exit $rc; wrapped file opens with old: $o, new: $n; ~/.ecryptfs: $(ls -A $HK/.ecryptfs | tr '\n' ' ')"
  check "$name.killed-passwd-succeeds-and-tells" passwd_killed_and_told "$before" "$after" "$rc"
  check "$name.old-or-new-wrapping-exactly" test "$o" != "$n"
  # the next login with the new password: unlocks, or (old wrapping) says how to re-wrap
  cycle p $K "$new"
  if [ $n = yes ]; then
    check "$name.next-login-unlocks" cycle_saw_mount p
  else
    check "$name.next-login-explains-rewrap" locked_and_told_rewrap p
    as $K sh -c "printf '%s\n%s' '$old' '$new' | $CLI rewrap-passphrase $HK/.ecryptfs/wrapped-passphrase -" > /tmp/rewrap.out 2>&1 || cat /tmp/rewrap.out
  fi
  # a temp file of the killed re-wrap (wrapped bytes only) goes at the next login's open_session
  check "$name.no-temp-file-after-next-login" ecryptfs_dir_as_expected $HK /tmp/ecryptfs-dir.expected
  check "$name.logout-leaves-nothing" closed_and_clean p $K
  [ "$nfail" -eq "$f0" ] && survived=$((survived + 1))
  CUR="$new"
}
tC=$(now_ms); survived=0 # kill points after which every check passed
while read -r ph sc k what; do fault_login "$ph" "$sc" "$k" "$what"; done < /tmp/login-steps
while read -r ph sc k what; do fault_passwd "$sc" "$k" "$what"; done < /tmp/pw-steps
echo "FIGURE fault matrix: $((nlogin + npw)) faults injected, $survived survived (every check passed), in $(( ($(now_ms) - tC) / 1000 )) s"
if [ -n "${MASTER:-}" ]; then kill "$MASTER"; wait "$MASTER" 2> /dev/null; fi

fi # section c

if section d; then
# ---------------------------------------------------------------------------------------------
# d. Disk full during the re-wrap: ~/.ecryptfs on a full 64 KiB tmpfs. passwd still changes the
#    password (the module is optional), the wrapped file is untouched and still opens with the old
#    password, nothing is left behind, the user is told; the next login explains; after freeing
#    space the re-wrap command the message names fixes it and the login unlocks again.
F=eatf; FPW='Ff-pass 5151'; HF=/home/$F; FNEW='Ff-new 6262'
check d.setup setup_user $F "$FPW" "fmount-pass-11"
full_ecryptfs_dir() {
  cp -a $HF/.ecryptfs /tmp/f-ecryptfs &&
  mount -t tmpfs -o size=64k,mode=0700,uid=$(id -u $F),gid=$(id -g $F) tmpfs $HF/.ecryptfs &&
  cp -a /tmp/f-ecryptfs/. $HF/.ecryptfs/ &&
  { as $F dd if=/dev/zero of=$HF/.ecryptfs/filler bs=4k > /dev/null 2>&1; true; } &&
  ! as $F sh -c "echo x > $HF/.ecryptfs/probe" 2> /dev/null
}
check d.ecryptfs-dir-full full_ecryptfs_dir
sha256sum $HF/.ecryptfs/wrapped-passphrase > /tmp/f.sum
ls -A $HF/.ecryptfs > /tmp/f.ls
passwd_as $F "$FPW" "$FNEW" /tmp/d.passwd; rc=$?
passwd_ok_and_told_full() { [ "$1" -eq 0 ] && grep -qi 'disk full' /tmp/d.passwd && grep -q 'rewrap-passphrase' /tmp/d.passwd || { echo "passwd exit $1"; cat /tmp/d.passwd; return 1; }; }
check d.passwd-succeeds-and-tells-disk-full-and-fix passwd_ok_and_told_full "$rc"
check d.wrapped-file-untouched sha256sum -c /tmp/f.sum
check d.nothing-left-behind ecryptfs_dir_as_expected $HF /tmp/f.ls
check d.old-password-still-opens sh -c "printf '%s' '$FPW' | ecryptfs-unwrap-passphrase $HF/.ecryptfs/wrapped-passphrase - | grep -qx fmount-pass-11"
cycle dfull $F "$FNEW"
check d.next-login-explains-rewrap locked_and_told_rewrap dfull
rm -f $HF/.ecryptfs/filler
check d.rewrap-after-freeing-space as $F sh -c "printf '%s\n%s' '$FPW' '$FNEW' | $CLI rewrap-passphrase $HF/.ecryptfs/wrapped-passphrase -"
cycle dfixed $F "$FNEW"
check d.login-unlocks-again cycle_saw_mount dfixed
check d.logout-leaves-nothing all_clean $F

fi # section d

echo "FIGURE suite wall time after boot: $(( ($(now_ms) - T0) / 1000 )) s"
echo "--- agent log lines at err: $(grep -c 'ecryptfs-agent.*\.err' /tmp/syslog)"
exit $failed
