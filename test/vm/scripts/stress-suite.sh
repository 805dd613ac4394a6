# Issue 9 (part): concurrency and a small fault matrix with the REAL shim + agent on Debian's
# kernel. Run as root inside the fast-mode VM by test/vm/stress.vm.test.ts, which prepends
#   REPO=<repo root>  HOLD=<pam-hold binary>  N=<held sessions of one user>  M=<users at once>
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step and "FIGURE ..." lines;
# exits non-zero if any check failed.
# Check counting (stress.vm.test.ts): a `check` line at top level counts once; a `check` line
# inside a function defined as `NAME() { # checks` counts once per top-level `NAME ` call line.
failed=0
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@" > /tmp/check.out 2>&1 < /dev/null; then
    echo "CHECK $name ok"
  else
    echo "CHECK $name FAIL $(tr '\n' ' ' < /tmp/check.out | cut -c1-600)"; failed=1
    echo "--- syslog tail"; tail -n 15 /tmp/syslog 2>/dev/null
  fi
}
check_output() { check "$1" grep -qE "$2" "$3"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
per_sec() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.2f", (ms > 0 ? n * 1000 / ms : 0) }'; }
T0=$(now_ms)

MOD="$REPO/build/Release/pam_ecryptfs_agent.so"
AGENT="$REPO/dist/agent/main.js"
OPTS="agent=$AGENT timeout=120 debug"
busybox syslogd -n -O /tmp/syslog & sleep 0.5
modprobe ecryptfs
# The host's ecryptfs-utils package put pam_ecryptfs into common-*; this suite tests ours.
sed -i '/pam_ecryptfs\.so/d' /etc/pam.d/common-*

cat > /etc/pam.d/eat-login <<PAM
auth     required  pam_unix.so
auth     optional  $MOD unwrap $OPTS
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD $OPTS
PAM

# The killer agent: a root-owned 755 script in a root-owned directory that execs the real agent
# and SIGKILLs it (its own pid, which exec hands to node) after $(cat delay) seconds.
KDIR=/usr/local/libexec/eat-killer; KILLER=$KDIR/agent
mkdir -p $KDIR && chmod 755 /usr/local/libexec $KDIR && echo 999 > $KDIR/delay
cat > $KILLER <<SH
#!/bin/bash
d=\$(cat $KDIR/delay)
( sleep "\$d"; kill -9 \$\$ 2>/dev/null && echo "killed \$\$ after \$d s" >> /tmp/killer.log ) < /dev/null > /dev/null 2>&1 &
exec /usr/bin/node $AGENT pam
SH
chmod 755 $KILLER
KOPTS="agent=$KILLER timeout=120 debug"
# auth killed (session real) and session killed (auth real)
cat > /etc/pam.d/eat-kill-auth <<PAM
auth     required  pam_unix.so
auth     optional  $MOD unwrap $KOPTS
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD $OPTS
PAM
cat > /etc/pam.d/eat-kill-sess <<PAM
auth     required  pam_unix.so
auth     optional  $MOD unwrap $OPTS
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD $KOPTS
PAM
# passwd (Debian's common-password) re-wraps through the killer agent
echo "password optional $MOD $KOPTS" >> /etc/pam.d/common-password

as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }
mounted() { awk -v m="$1/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
no_ecryptfs_mounts() { ! grep -q ' - ecryptfs ' /proc/self/mountinfo; }
# no eCryptfs mount anywhere under /home/USER (any mount point, not only ~/Private)
no_mount_of() { ! awk -v h="/home/$1/" '/ - ecryptfs / && index($5, h) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; }
has_key() { as "$1" grep -q " user  *$2: " /proc/keys; }
no_key() { ! has_key "$@"; }
no_user_keys() { ! as "$1" grep -q ' user ' /proc/keys; }
sessions() { local f="/run/ecryptfs-agent/$(id -u "$1").sessions"; if [ -f "$f" ]; then grep -c '"id"' "$f"; else echo 0; fi; }
sig1() { head -n1 "$1/.ecryptfs/Private.sig"; }
sig2() { sed -n 2p "$1/.ecryptfs/Private.sig"; }
newuser() { useradd -m -s /bin/bash "$1" && echo "$1:$2" | chpasswd; }
setup_private() { as "$1" env HOME="/home/$1" keyctl session - ecryptfs-setup-private --nopwcheck -l "$2" -m "$3"; }

# held sessions (pam-hold): start without waiting, then wait for OPEN / CLOSED
hold_start() { # hold_start NAME USER PASSWORD [SERVICE]
  rm -f /tmp/$1.in /tmp/$1.out; mkfifo /tmp/$1.in
  # a holder must not inherit the other holders' fifo write ends (bash {fd}s are >= 10)
  ( for f in /proc/self/fd/*; do n=${f##*/}; [ "$n" -ge 10 ] 2>/dev/null && eval "exec $n>&-"; done
    exec "$HOLD" "${4:-eat-login}" "$2" ) < /tmp/$1.in > /tmp/$1.out 2>&1 &
  eval "pid_$1=\$!"; eval "exec {fd_$1}>/tmp/$1.in"; eval "echo '$3' >&\$fd_$1"
}
hold_wait_open() { for _ in $(seq 1 1200); do grep -q '^OPEN ' /tmp/$1.out && return 0; sleep 0.2; done; return 1; }
hold_end() { eval "exec {fd_$1}>&-"; }
hold_wait_closed() { for _ in $(seq 1 1200); do grep -q '^CLOSED ' /tmp/$1.out && return 0; sleep 0.2; done; return 1; }
all_open_0() { local i; for i in $(seq 1 "$1"); do grep -q '^OPEN 0 ' /tmp/h$i.out || { echo "h$i: $(cat /tmp/h$i.out)"; return 1; }; done; }
all_closed_0() { local i; for i in $(seq 1 "$1"); do grep -q '^CLOSED 0' /tmp/h$i.out || { echo "h$i: $(cat /tmp/h$i.out)"; return 1; }; done; }
hold_open() { hold_start "$@" && hold_wait_open "$1"; }
hold_close() { hold_end "$1"; hold_wait_closed "$1"; }

# ---------------------------------------------------------------------------------------------
# a. N overlapping held sessions of one user (ecryptfs-setup-private), opened in parallel, then
#    closed in parallel.
A=eatsa; APW='Sa-pass 4242'; HA=/home/$A
check a.useradd newuser $A "$APW"
check a.setup-private-reference setup_private $A "$APW" "mount-pass-$A-777"
tA=$(now_ms)
for i in $(seq 1 "$N"); do hold_start h$i $A "$APW"; done
for i in $(seq 1 "$N"); do hold_wait_open h$i; done
tOpen=$(( $(now_ms) - tA ))
check a.all-open-0 all_open_0 "$N"
check a.mounted mounted $HA
check a.fek-key has_key $A "$(sig1 $HA)"
check a.sessions-count-N sh -c "n=\$(grep -c '\"id\"' /run/ecryptfs-agent/$(id -u $A).sessions); echo \"count \$n, want $N\"; [ \$n -eq $N ]"
check a.one-mount sh -c "[ \$(awk -v m=$HA/Private '\$5 == m' /proc/self/mountinfo | wc -l) -eq 1 ]"
tC=$(now_ms)
for i in $(seq 1 "$N"); do hold_end h$i; done
for i in $(seq 1 "$N"); do hold_wait_closed h$i; done
tClose=$(( $(now_ms) - tC ))
check a.all-closed-0 all_closed_0 "$N"
check a.unmounted not_mounted $HA
check a.fek-key-gone no_key $A "$(sig1 $HA)"
check a.fnek-key-gone no_key $A "$(sig2 $HA)"
check a.count-0 test "$(sessions $A)" -eq 0
check a.no-stale-mount no_ecryptfs_mounts
echo "FIGURE one-user N=$N open(auth+open_session) in parallel: ${tOpen} ms wall = $(per_sec "$N" "$tOpen") sessions/s; close in parallel: ${tClose} ms = $(per_sec "$N" "$tClose") sessions/s"
echo "--- close_session LOCK_TIMEOUTs in a.: $(grep -c 'phase=close_session.*LOCK_TIMEOUT' /tmp/syslog); open_session: $(grep -c 'phase=open_session.*LOCK_TIMEOUT' /tmp/syslog); sessions file left: $(sessions $A)"
# A later login + logout prunes whatever a. left behind (dead openers) and locks.
check a.later-login-logout-recovers sh -c "echo '$APW' | pamtester eat-login $A authenticate open_session && pamtester eat-login $A close_session"
check a.locked-after-recovery not_mounted $HA
check a.no-key-after-recovery no_user_keys $A

# ---------------------------------------------------------------------------------------------
# b. M users log in at once (pamtester authenticate open_session), then all log out at once.
users=(); for j in $(seq 1 "$M"); do users+=("eatm$j"); done
setup_all() {
  local u
  for u in "${users[@]}"; do newuser "$u" "Pw-$u-9" || return 1; done
  for u in "${users[@]}"; do setup_private "$u" "Pw-$u-9" "mp-$u-55" > /tmp/setup.$u 2>&1 & done
  wait
  for u in "${users[@]}"; do [ -s /home/$u/.ecryptfs/Private.sig ] || { cat /tmp/setup.$u; return 1; }; done
}
check b.setup-M-users setup_all
tB=$(now_ms)
for u in "${users[@]}"; do ( echo "Pw-$u-9" | pamtester eat-login $u authenticate open_session > /tmp/b.$u 2>&1; echo $? > /tmp/b.$u.rc ) & done
wait
tBo=$(( $(now_ms) - tB ))
all_users() { local u; for u in "${users[@]}"; do "$@" "$u" || { echo "user $u: $(cat /tmp/b.$u 2>/dev/null)"; return 1; }; done; }
rc0() { [ "$(cat /tmp/b.$1.rc)" = 0 ]; }
mounted_u() { mounted /home/$1; }
not_mounted_u() { not_mounted /home/$1; }
no_keys_u() { no_user_keys "$1"; }
check b.all-logins-exit-0 all_users rc0
check b.each-private-mounted all_users mounted_u
check b.M-ecryptfs-mounts sh -c "[ \$(grep ' - ecryptfs ' /proc/self/mountinfo | grep -c ' /home/eatm[0-9]*/Private ') -eq $M ]"
tB=$(now_ms)
for u in "${users[@]}"; do ( pamtester eat-login $u close_session > /tmp/b.$u 2>&1; echo $? > /tmp/b.$u.rc ) & done
wait
tBc=$(( $(now_ms) - tB ))
check b.all-logouts-exit-0 all_users rc0
check b.all-locked all_users not_mounted_u
check b.no-key-for-any-user all_users no_keys_u
check b.no-stale-mount all_users no_mount_of
echo "FIGURE many-users M=$M logins in parallel: ${tBo} ms = $(per_sec "$M" "$tBo") logins/s; logouts in parallel: ${tBc} ms = $(per_sec "$M" "$tBc") logouts/s"

# ---------------------------------------------------------------------------------------------
# c. Fault matrix: the agent SIGKILLed mid-phase at several delays. The login proceeds; then a
#    normal (held) login unlocks, counts exactly one session, and its logout locks cleanly.
K=eatk; KPW='Kk-pass 3131'; HK=/home/$K
check c.useradd newuser $K "$KPW"
check c.setup-private setup_private $K "$KPW" "kmount-pass-99"
# phase timings of the real agent (each a separate pamtester: auth only, open only, close only)
t=$(now_ms); echo "$KPW" | pamtester eat-login $K authenticate > /dev/null 2>&1; T_AUTH=$(( $(now_ms) - t ))
t=$(now_ms); pamtester eat-login $K open_session > /dev/null 2>&1; T_OPEN=$(( $(now_ms) - t ))
check c.baseline-mounted mounted $HK
t=$(now_ms); pamtester eat-login $K close_session > /dev/null 2>&1; T_CLOSE=$(( $(now_ms) - t ))
check c.baseline-locked not_mounted $HK
echo "FIGURE agent phase wall times (pamtester, TCG): auth ${T_AUTH} ms, open_session ${T_OPEN} ms, close_session ${T_CLOSE} ms"
delay_for() { awk -v t="$1" -v f="$2" 'BEGIN { printf "%.3f", t * f / 1000 }'; } # seconds

fault_login() { # checks  fault_login NAME SERVICE PHASE_MS FRACTION
  local d; d=$(delay_for "$3" "$4"); echo "$d" > $KDIR/delay; : > /tmp/killer.log
  check "c.$1.login-proceeds" sh -c "echo '$KPW' | pamtester $2 $K authenticate open_session > /tmp/c.$1 2>&1"
  sleep "$d"; sleep 0.3
  echo "FIGURE fault $1: delay ${d}s; $(cat /tmp/killer.log 2>/dev/null | tr '\n' ' ' | grep . || echo 'agent finished before the kill'); mounted after: $(mounted $HK && echo yes || echo no); sessions file: $(sessions $K)"
  echo 999 > $KDIR/delay
  hold_open f_$1 $K "$KPW" > /dev/null 2>&1
  check "c.$1.normal-login-open-0" grep -q '^OPEN 0 ' /tmp/f_$1.out
  check "c.$1.mounted" mounted $HK
  check "c.$1.count-1" sh -c "n=$(sessions $K); echo \"count \$n\"; [ \$n -eq 1 ]"
  hold_close f_$1
  check "c.$1.logout-locks" not_mounted $HK
  check "c.$1.count-0" test "$(sessions $K)" -eq 0
  check "c.$1.no-key" no_user_keys $K
  check "c.$1.no-stale-mount" no_mount_of $K
}
fault_login auth-early eat-kill-auth "$T_AUTH" 0.10
fault_login auth-mid eat-kill-auth "$T_AUTH" 0.60
fault_login open-early eat-kill-sess "$T_OPEN" 0.15
fault_login open-mid eat-kill-sess "$T_OPEN" 0.55
fault_login open-late eat-kill-sess "$T_OPEN" 0.80

# ---------------------------------------------------------------------------------------------
# d. passwd (chauthtok) with the killer agent at several delays: the wrapped passphrase unwraps
#    with the old or the new password (never neither); the next login with the new password
#    unlocks or says the file kept the old wrapping.
CUR="$KPW"; ROUND=0
unwraps_with() { as $K sh -c "printf '%s' '$1' | ecryptfs-unwrap-passphrase $HK/.ecryptfs/wrapped-passphrase - 2>/dev/null | grep -qx 'kmount-pass-99'"; }
passwd_exp() { cat > /tmp/passwd.exp <<EXP
set timeout 240
spawn passwd
expect "Current password:"
send "$1\r"
expect "New password:"
send "$2\r"
expect "Retype new password:"
send "$2\r"
expect eof
catch wait result
exit [lindex \$result 3]
EXP
}
t=$(now_ms); NEW='Qz7#rounD-0-Lmx'; passwd_exp "$CUR" "$NEW"; as $K expect -f /tmp/passwd.exp > /tmp/d.base 2>&1; T_PW=$(( $(now_ms) - t ))
check d.baseline-rewrapped unwraps_with "$NEW"
CUR="$NEW"
echo "FIGURE passwd wall time with the (unkilled) agent: ${T_PW} ms"
next_login_ok() { if [ "$1" = yes ]; then mounted $HK; else grep -q rewrap-passphrase "$2" && not_mounted $HK; fi; }
fault_passwd() { # checks  fault_passwd NAME NEWPW FRACTION (of the auth phase time: unwrap + wrap ≈ node start + 2 KDFs)
  local d old="$CUR" new="$2" o=no n=no; d=$(delay_for "$T_AUTH" "$3"); echo "$d" > $KDIR/delay; : > /tmp/killer.log
  passwd_exp "$old" "$new"
  check "d.$1.passwd-succeeds" sh -c "as $K expect -f /tmp/passwd.exp > /tmp/d.$1 2>&1"
  sleep "$d"; sleep 0.3; echo 999 > $KDIR/delay
  CUR="$new"
  unwraps_with "$old" && o=yes; unwraps_with "$new" && n=yes
  echo "FIGURE fault passwd-$1: delay ${d}s; $(cat /tmp/killer.log 2>/dev/null | tr '\n' ' ' | grep . || echo 'agent finished before the kill'); unwraps with old: $o, new: $n"
  check "d.$1.old-or-new-unwraps" sh -c "[ $o = yes ] || [ $n = yes ]"
  check "d.$1.not-both" sh -c "! [ $o = yes -a $n = yes ]"
  check "d.$1.login-proceeds" sh -c "echo '$new' | pamtester eat-login $K authenticate open_session > /tmp/d.$1.login 2>&1"
  check "d.$1.next-login-unlocks-or-explains" next_login_ok "$n" /tmp/d.$1.login
  pamtester eat-login $K close_session > /dev/null 2>&1
  check "d.$1.locked" not_mounted $HK
  # keep the next round consistent: re-wrap by hand when the kill kept the old wrapping
  [ $n = yes ] || as $K sh -c "printf '%s\n%s' '$old' '$new' | ecryptfs-rewrap-passphrase $HK/.ecryptfs/wrapped-passphrase -" > /dev/null 2>&1
}
fault_passwd early 'Wv2$Kettle-81-Pq' 0.10
fault_passwd mid 'Hx5!Orbit-37-Zd' 0.60
fault_passwd after 'Bn4&Quartz-12-Ty' 1.40

echo "FIGURE suite wall time after boot: $(( $(now_ms) - T0 )) ms"
echo "--- agent errors: $(grep -c 'ecryptfs-agent.*\(err\|LOCK_TIMEOUT\)' /tmp/syslog)"
grep ecryptfs-agent /tmp/syslog | grep -i 'error\|fail\|timeout' | tail -n 20
exit $failed
