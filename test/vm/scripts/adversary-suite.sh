# Two-user adversarial suite: attacker alice (and mallory for migrate-home), victim bob, and root.
# One case (or more) per attack of the security review (docs/security.md names every case, the
# attack and the outcome), plus the hostile layouts of ~/Private and Private.mnt (the former
# hardening-suite.sh) as adv.h.*. Every check asserts the SECURE outcome, the effect a correct
# product must have (mounts in /proc/self/mountinfo, keys found with keyctl, files in /etc, modes,
# /proc/PID state), never today's log text: on code that the attack still works against, its
# checks FAIL.
# After each case the agent's syslog lines of that case are printed as "LOG <case>: ..." and one
# verdict line "ADV <case> defended|VULNERABLE <evidence>".
# Races loop a bounded number of times (set below: H_RACE_N, RACE_2C_N, TIMED_2D_N, RACE_4B_N)
# and migrate-home's racer runs only while the migration runs.
# Run as root inside the fast-mode VM by test/vm/adversary.vm.test.ts, which prepends REPO=<repo root>
# (and test/vm/scripts/lib.sh, whose check/as/use_our_module this uses).
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

use_our_module debug
CLI="$REPO/bin/ecryptfs-agent"
PY=/usr/bin/python3
H_RACE_N=6      # logins during the ~/Private <-> symlink-to-/etc swap (the hostile layouts' race)
RACE_2C_N=6     # logouts during the swap of the extra mount's parent with a symlink to /home/bob
TIMED_2D_N=2    # logouts where alice swaps it once, timed by the first extra mount going away
RACE_4B_N=12    # logins during the swap of ~/.Private with a symlink to /root/hidden-alice

A=alice; APW='Alice-pw 1'; HA=/home/alice; AMP='alice-mount-pass-1'; APLAIN='alice-plaintext-5e21'
B=bob; BPW='Bob-pw 2'; HB=/home/bob; BMP='bob-mount-pass-2'; BPLAIN='bob-plaintext-9c44'
M=mallory; MPW='Mallory-pw 3'; HM=/home/mallory

# ------------------------------------------------------------------------------ helpers
ecryptfs_at() { awk -v m="$1" '$5 == m && / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_ecryptfs_at() { ! ecryptfs_at "$1"; }
no_ecryptfs_mounts() { ! grep -q ' - ecryptfs ' /proc/self/mountinfo; }
# no eCryptfs mount of alice's anywhere: none under her home, none whose source names her home
alice_nothing_mounted() { ! awk -v h="$HA/" '/ - ecryptfs / && (index($5, h) == 1 || index($(NF-1), h) == 1)' /proc/self/mountinfo | grep -q .; }
ecryptfs_list() { awk '/ - ecryptfs / { print $5 " <- " $(NF-1) " " $NF }' /proc/self/mountinfo | tr '\n' ';'; }
# an auth tok with sig $2 is linked in the user keyring of $1 (keyctl, not /proc/keys)
has_key() { as "$1" keyctl session - sh -c "keyctl link @u @s && keyctl search @u user $2" > /dev/null 2>&1; }
no_key() { ! has_key "$@"; }
sig1() { head -n1 "$1/.ecryptfs/Private.sig"; }
login() { echo "$2" | timeout 300 pamtester eat-login "$1" authenticate open_session > "${3:-/tmp/login.out}" 2>&1; }
open_only() { timeout 300 pamtester eat-login "$1" open_session > "${2:-/tmp/login.out}" 2>&1; }
logout() { timeout 300 pamtester eat-login "$1" close_session > "${2:-/tmp/logout.out}" 2>&1; }
# add_keys USER MOUNTPASS: the auth tok of a no-FNEK setup in the user keyring, as the user would
# with ecryptfs-add-passphrase (cheaper than a login: open_session then mounts with it)
add_keys() { has_key "$1" "$(sig1 "/home/$1")" || as "$1" keyctl session - sh -c "printf %s '$2' | ecryptfs-add-passphrase - > /dev/null"; }
set_mnt() { printf '%s\n' "$2" > "/home/$1/.ecryptfs/Private.mnt"; chown "$1:" "/home/$1/.ecryptfs/Private.mnt"; chmod 600 "/home/$1/.ecryptfs/Private.mnt"; }
# reset_user USER: none of the user's processes, no eCryptfs mount under the home, no agent state, empty @u
reset_user() {
  local p
  for p in $(ps -o pid= -u "$1" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  clean_mounts "$1"; as "$1" keyctl clear @u > /dev/null 2>&1
}
# clean_mounts USER: no eCryptfs mount under the home (a race may leave one under another name),
# no agent state; the user's processes and keys stay (a paused swapper between rounds)
clean_mounts() {
  local u=$1 uid h m; uid=$(id -u "$u"); h=$(getent passwd "$u" | cut -d: -f6)
  for m in $(awk -v h="$h/" '/ - ecryptfs / && (index($5, h) == 1 || $5 == substr(h, 1, length(h) - 1)) { print $5 }' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  rm -f /run/ecryptfs-agent/"$uid".sessions /run/ecryptfs-agent/"$uid".auth /run/ecryptfs-agent/"$uid".extra-mounts /run/ecryptfs-agent/"$uid".closing-*
}
# bg_as USER COMMAND...: COMMAND as USER in the background; BG is its pid (setpriv execs it, so
# killing BG ends COMMAND itself, not a subshell around it)
bg_as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@" & BG=$!; }
loglines() { wc -l < /tmp/syslog; }
# case_begin NAME / case_end EVIDENCE: the agent's log lines of the case, and the verdict (a case is
# VULNERABLE when one of its checks failed)
case_begin() { CASE=$1; CASE_NFAIL=$nfail; CASE_LOG=$(loglines); echo "=== case $CASE"; }
case_end() {
  local lines; lines=$(tail -n +"$((CASE_LOG + 1))" /tmp/syslog | grep -E 'ecryptfs-agent\[|pam_ecryptfs_agent' | grep -vE '\.debug .*pam_ecryptfs_agent' | cut -c1-420)
  printf '%s\n' "$lines" | grep . | head -n 30 | sed "s/^/LOG $CASE: /"
  [ "$(printf '%s\n' "$lines" | grep -c .)" -gt 30 ] && echo "LOG $CASE: ... ($(printf '%s\n' "$lines" | grep -c .) lines in all)"
  if [ "$nfail" -gt "$CASE_NFAIL" ]; then echo "ADV $CASE VULNERABLE $*"; else echo "ADV $CASE defended $*"; fi
}
# agent_pid_waiting_on LOCKFILE: pid of an agent (node …main.js pam) holding LOCKFILE open (the
# user's lock, held by root: the agent waits in flock), looked for up to 120 s
cat > /tmp/findagent.py <<'PY'
import os, sys, time
lock = sys.argv[1]; end = time.time() + 120
while time.time() < end:
    for d in os.listdir('/proc'):
        if not d.isdigit(): continue
        try:
            argv = open('/proc/%s/cmdline' % d, 'rb').read().split(b'\0')
            if b'pam' not in argv or not any(a.endswith(b'main.js') for a in argv): continue
            if any(os.readlink('/proc/%s/fd/%s' % (d, f)) == lock for f in os.listdir('/proc/%s/fd' % d)):
                print(d); sys.exit(0)
        except OSError: pass
    time.sleep(0.1)
sys.exit(1)
PY
agent_pid_waiting_on() { "$PY" /tmp/findagent.py "$1"; }
lockfile_of() { mkdir -p -m 700 /run/ecryptfs-agent; local f="/run/ecryptfs-agent/$(id -u "$1").lock"; [ -f "$f" ] || install -m 600 /dev/null "$f"; echo "$f"; }
# hold_lock FILE: holds flock(FILE) in the background (HOLDER) until release_lock
hold_lock() { rm -f /tmp/release-lock; flock "$1" sh -c 'while [ ! -e /tmp/release-lock ]; do sleep 0.1; done' & HOLDER=$!; sleep 0.3; }
release_lock() { touch /tmp/release-lock; wait "$HOLDER" 2>/dev/null; }

# ptyrun.py OUT [--answer REGEX TEXT]... -- CMD...: runs CMD on a new pty (as a person at a
# terminal), answers each prompt in turn once it appears, keeps the raw output bytes in OUT,
# exits with CMD's status (124 when it had to be killed after $PTY_TIMEOUT, default 150 s).
cat > /tmp/ptyrun.py <<'PY'
import os, pty, re, select, signal, sys, time
a = sys.argv[1:]; out = a.pop(0); answers = []
while a and a[0] == '--answer':
    answers.append((re.compile(a[1].encode()), a[2].encode())); a = a[3:]
assert a and a[0] == '--'; cmd = a[1:]
pid, fd = pty.fork()
if pid == 0:
    try: os.execvp(cmd[0], cmd)
    finally: os._exit(127)
buf = b''; scan = 0; deadline = time.time() + float(os.environ.get('PTY_TIMEOUT', '150')); killed = False
while True:
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL); killed = True; break
    r, _, _ = select.select([fd], [], [], 0.5)
    if not r: continue
    try: data = os.read(fd, 4096)
    except OSError: break
    if not data: break
    buf += data
    if answers and answers[0][0].search(buf, scan):
        time.sleep(0.1); os.write(fd, answers.pop(0)[1] + b'\r'); scan = len(buf)
_, st = os.waitpid(pid, 0)
open(out, 'wb').write(buf)
sys.exit(124 if killed else os.waitstatus_to_exitcode(st))
PY
chmod 755 /tmp/ptyrun.py
ptyrun() { "$PY" /tmp/ptyrun.py "$@"; }
# swap.py A B STARTED: exchanges A and B (renameat2 RENAME_EXCHANGE) as fast as it can; on EBUSY (a
# mount point) it waits 5 ms and tries again; touches STARTED after the first exchange
cat > /tmp/swap.py <<'PY'
import ctypes, os, sys, errno, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode(); started = False
while True:
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        if ctypes.get_errno() != errno.EBUSY: sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
        # a mount point now (the login has mounted): the race of that login is over; spinning on
        # EBUSY would only hammer the kernel's mount locks and slow every mount and unmount
        time.sleep(0.005)
    elif not started:
        open(sys.argv[3], 'w').close(); started = True
PY
chmod 644 /tmp/swap.py
# start_swap USER A B: the swapper as USER (SWAP=pid), once it has swapped; stop_swap: ends it
start_swap() {
  rm -f /tmp/swap.started
  bg_as "$1" "$PY" /tmp/swap.py "$2" "$3" /tmp/swap.started 2>/tmp/swap.err; SWAP=$BG
  for _ in $(seq 1 100); do [ -e /tmp/swap.started ] && return 0; sleep 0.1; done; return 1
}
stop_swap() { kill -CONT "$SWAP" 2>/dev/null; kill "$SWAP" 2>/dev/null; wait "$SWAP" 2>/dev/null; }
# pause_swap / resume_swap: SIGSTOP / SIGCONT, so that names stay put while root cleans up
# (kill -STOP returns at once; the swapper stops only after the renameat2 it may be in: wait for it)
pause_swap() { kill -STOP "$SWAP"; for _ in $(seq 1 100); do [ "$(awk '{ print $3 }' /proc/$SWAP/stat 2>/dev/null)" = T ] && return 0; sleep 0.02; done; }
resume_swap() { kill -CONT "$SWAP"; }
# unswap A B: A is the real directory again (B the symlink), by two renames (the swapper paused)
unswap() { [ -L "$1" ] && as "$(stat -c %U "$1")" sh -c 'mv "$1" "$1.unswap" && mv "$2" "$1" && mv "$1.unswap" "$2"' sh "$1" "$2"; true; }
# hostile bytes, from names a user controls, that reach a terminal or a log: C1 CSI U+009B,
# RLO U+202E, LRI U+2066, and C0 ESC (prints the ones found in the file $1)
has_hostile_bytes() {
  "$PY" -c '
import sys
d = open(sys.argv[1], "rb").read()
bad = [n for n, b in (("U+009B", b"\xc2\x9b"), ("U+202E", b"\xe2\x80\xae"), ("U+2066", b"\xe2\x81\xa6"), ("ESC", b"\x1b")) if b in d]
print(" ".join(bad)); sys.exit(0 if bad else 1)' "$1"
}
no_hostile_bytes() { ! has_hostile_bytes "$1"; }
no_agent_err_since() { ! tail -n +"$(($1 + 1))" /tmp/syslog | grep -E '\.err .*(ecryptfs-agent\[|pam_ecryptfs_agent)'; }
# (what it prints on failure is made safe for the CHECK line: no CR, control bytes shown as ^X/M-x)
says_nothing_of_agent() { local m; m=$(grep -aiE 'ecryptfs-agent|refusing' "$1" | tr -d '\r' | cat -v); [ -z "$m" ] || { echo "$m"; return 1; }; }

# ------------------------------------------------------------------------------ users
check adv.setup.users sh -c "$(declare -f newuser set_password); newuser $A '$APW' && newuser $B '$BPW' && newuser $M '$MPW'"
check adv.setup.alice-private as $A env HOME=$HA keyctl session - ecryptfs-setup-private --nopwcheck -n -l "$APW" -m "$AMP"
check adv.setup.bob-private as $B env HOME=$HB keyctl session - ecryptfs-setup-private --nopwcheck -n -l "$BPW" -m "$BMP"
ASIG=$(sig1 $HA); BSIG=$(sig1 $HB)
echo "alice sig $ASIG, bob sig $BSIG"

# ==============================================================================================
# h. The hostile layouts (the former hardening-suite.sh): Private.mnt at system directories,
#    ~/Private a symlink, and ~/Private swapped with a symlink to /etc during logins.
case_begin h.baseline
check adv.h.baseline-login login $A "$APW"
check adv.h.baseline-mounted ecryptfs_at $HA/Private
check adv.h.baseline-write as $A sh -c "echo $APLAIN > $HA/Private/marker.txt"
logout $A
check adv.h.baseline-logout-unmounts no_ecryptfs_mounts
case_end "baseline login mounts, logout unmounts"

declare -A BASE_MOUNTS
for d in /etc /proc /root; do BASE_MOUNTS[$d]=$(awk -v m="$d" '$5 == m' /proc/self/mountinfo | wc -l); done
nothing_over() { for d in "$@"; do [ "$(awk -v m="$d" '$5 == m' /proc/self/mountinfo | wc -l)" = "${BASE_MOUNTS[$d]:-0}" ] || return 1; done; }
# mnt_case TARGET: Private.mnt names TARGET; a login must refuse it (said to the user) and mount nothing
# (keys loaded as alice would with ecryptfs-add-passphrase, then open_session: the mount step is
# what is under test, and a login's auth phase costs seconds of emulated CPU)
mnt_case() { set_mnt $A "$1"; add_keys $A "$AMP"; open_only $A; clean_mounts $A; }
case_begin h.private-mnt
mnt_case /etc
check_output adv.h.private-mnt-etc-refused 'could not be mounted|stays locked' /tmp/login.out
check adv.h.private-mnt-etc-nothing-mounted no_ecryptfs_mounts
mnt_case /proc
check_output adv.h.private-mnt-proc-refused 'could not be mounted|stays locked' /tmp/login.out
check adv.h.private-mnt-proc-nothing-mounted no_ecryptfs_mounts
mnt_case /root
check_output adv.h.private-mnt-root-refused 'could not be mounted|stays locked' /tmp/login.out
check adv.h.private-mnt-root-nothing-mounted no_ecryptfs_mounts
mnt_case "$HA/../../etc"
check_output adv.h.private-mnt-dotdot-etc-refused 'could not be mounted|stays locked' /tmp/login.out
check adv.h.private-mnt-dotdot-etc-nothing-mounted no_ecryptfs_mounts
set_mnt $A $HA/Private; reset_user $A
case_end "Private.mnt at /etc, /proc, /root, $HA/../../etc: mounts now: $(ecryptfs_list)"

case_begin h.symlink
mv $HA/Private $HA/Private.real
as $A ln -s /etc $HA/Private
add_keys $A "$AMP"; open_only $A
check_output adv.h.symlink-private-refused 'symbolic link' /tmp/login.out
check adv.h.symlink-nothing-mounted no_ecryptfs_mounts
logout $A
rm $HA/Private && mv $HA/Private.real $HA/Private; reset_user $A
case_end "~/Private -> /etc: $(tr '\n' ' ' < /tmp/login.out | cut -c1-160)"

# The race: ~/Private and a symlink to /etc swapped (renameat2 RENAME_EXCHANGE) during every login.
# A mount, when it happens, is on the user's directory (under either name); never on /etc.
case_begin h.race
as $A ln -s /etc $HA/Private.alt
etc_state() { find /etc -xdev -maxdepth 1 -printf '%p %i %y %s\n' | sort | md5sum; }
ETC_SUM=$(etc_state)
start_swap $A $HA/Private $HA/Private.alt
mounted_real=0; refused=0; bad=0
for i in $(seq 1 $H_RACE_N); do
  add_keys $A "$AMP"; open_only $A
  mp=$(awk '/ - ecryptfs / { print $5 }' /proc/self/mountinfo)
  case "$mp" in
    "") grep -q 'symbolic link' /tmp/login.out && refused=$((refused + 1)) || { bad=$((bad + 1)); cat /tmp/login.out; } ;;
    "$HA/Private"|"$HA/Private.alt") mounted_real=$((mounted_real + 1)) ;;
    *) bad=$((bad + 1)); echo "mounted at $mp" ;;
  esac
  nothing_over /etc /proc /root || { bad=$((bad + 1)); echo "a mount over a system directory"; }
  # the user may have renamed the mounted directory before the mount: root unmounts whatever is
  # under the home (with the swapper paused, so that root's own unmount is not raced); no logout:
  # the login's mount is what is under test, and the keys stay for the next round
  pause_swap; clean_mounts $A; resume_swap
  echo "round $i: ${mp:-refused} (${SECONDS}s)"
done
stop_swap; unswap $HA/Private $HA/Private.alt; reset_user $A
rm -f $HA/Private.alt
echo "race: mounted on the real directory $mounted_real, refused (symlink) $refused, bad $bad"
check adv.h.race-swapper-ran sh -c "cat /tmp/swap.err; ! test -s /tmp/swap.err"
check adv.h.race-never-anything-else test "$bad" -eq 0
check adv.h.race-every-login-mounted-real-or-refused test $((mounted_real + refused)) -eq $H_RACE_N
check adv.h.race-etc-untouched test "$(etc_state)" = "$ETC_SUM"
check adv.h.private-restored test -d $HA/Private -a ! -L $HA/Private
case_end "$H_RACE_N logins: real $mounted_real, refused $refused, bad $bad"

# ==============================================================================================
# 2. Logout (and lock) unmounts another user's mount. bob is logged in (no logout: his mount and
#    keys stay); alice names bob's mount point (or root's own mount) in her Private.mnt.
case_begin 2.setup
check adv.2.bob-login login $B "$BPW"
check adv.2.bob-mounted ecryptfs_at $HB/Private
check adv.2.bob-writes as $B sh -c "echo $BPLAIN > $HB/Private/secret.txt"
bob_ok() { ecryptfs_at $HB/Private && has_key $B "$BSIG" && as $B grep -qx "$BPLAIN" $HB/Private/secret.txt; }
# yes_no COMMAND...: "yes" if COMMAND succeeds, else "NO" (for the evidence of a verdict)
yes_no() { "$@" > /dev/null 2>&1 && echo yes || echo NO; }
bob_state() {
  echo "bob: mounted=$(yes_no ecryptfs_at $HB/Private) key=$(yes_no has_key $B "$BSIG") plaintext=$(yes_no as $B grep -qx "$BPLAIN" $HB/Private/secret.txt)"
}
# bob_up: bob's ~/Private mounted again after a case took it (his login, as he would)
bob_up() { bob_ok || { umount -l $HB/Private 2>/dev/null; reset_user $B; login $B "$BPW"; }; }
check adv.2.bob-all-there bob_ok
case_end "$(bob_state)"

case_begin 2.logout
set_mnt $A $HB/Private
login $A "$APW" /tmp/2.login; logout $A /tmp/2.logout
cat /tmp/2.login /tmp/2.logout
check adv.2.logout-keeps-bobs-mount ecryptfs_at $HB/Private
check adv.2.logout-keeps-bobs-keys has_key $B "$BSIG"
check adv.2.logout-keeps-bobs-plaintext as $B grep -qx "$BPLAIN" $HB/Private/secret.txt
EV="after alice's login+logout with Private.mnt=$HB/Private: $(bob_state)"
if ! ecryptfs_at $HB/Private; then as $B sh -c "echo bob-wrote-after > $HB/Private/after.txt" 2>/dev/null
  grep -qs bob-wrote-after $HB/Private/after.txt && EV="$EV; bob's next write landed on disk in plaintext ($HB/Private/after.txt)"; fi
rm -f $HB/Private/after.txt 2>/dev/null
case_end "$EV"
bob_up; reset_user $A

case_begin 2a.lock
"$CLI" lock -u $A > /tmp/2a.lock.out 2>&1; echo "lock -u alice: exit $?: $(tr '\n' ' ' < /tmp/2a.lock.out)"
check adv.2a.root-lock-keeps-bobs-mount ecryptfs_at $HB/Private
EV="lock -u alice: $(bob_state)"; bob_up
"$CLI" lock -u $A --force > /tmp/2a.force.out 2>&1; echo "lock -u alice --force: exit $?: $(tr '\n' ' ' < /tmp/2a.force.out)"
check adv.2a.root-lock-force-keeps-bobs-mount ecryptfs_at $HB/Private
EV="$EV; lock -u alice --force: $(bob_state)"; bob_up
as $A "$CLI" lock > /tmp/2a.user.out 2>&1; echo "alice's own lock: exit $?: $(tr '\n' ' ' < /tmp/2a.user.out)"
check adv.2a.user-lock-keeps-bobs-mount ecryptfs_at $HB/Private
EV="$EV; alice's own lock: $(bob_state)"; bob_up
check adv.2a.bob-all-there bob_ok
case_end "$EV"
reset_user $A

case_begin 2b.root-mount
mkdir -p /srv/rootlower /srv/rootmnt
check adv.2b.root-mounts runs_into /tmp/2b.mount fed root-mnt-pass-2b "$CLI" mount /srv/rootlower /srv/rootmnt \
  --cipher aes --key-bytes 16 --no-passthrough --no-fnek --passphrase-stdin --yes
echo root-data-2b > /srv/rootmnt/r.txt
set_mnt $A /srv/rootmnt
login $A "$APW" /tmp/2b.login; logout $A /tmp/2b.logout
check adv.2b.root-mount-survives-alice-logout ecryptfs_at /srv/rootmnt
check adv.2b.root-data-still-readable grep -qx root-data-2b /srv/rootmnt/r.txt
EV="root's ecryptfs-agent mount on /srv/rootmnt after alice's login+logout with Private.mnt=/srv/rootmnt: mounted=$(ecryptfs_at /srv/rootmnt && echo yes || echo NO)"
set_mnt $A $HA/Private; reset_user $A
"$CLI" umount /srv/rootmnt > /dev/null 2>&1 || umount -l /srv/rootmnt 2>/dev/null
case_end "$EV"

# c. An extra mount of alice at ~/d/Private; after her login, alice swaps ~/d with a symlink to
#    /home/bob (RENAME_EXCHANGE) while she logs out. bob's ~/Private must never be unmounted.
case_begin 2c.extra-race
as $A sh -c "umask 077; mkdir $HA/.dlower && mkdir -p $HA/d/Private && printf '%s %s ecryptfs ecryptfs_sig=%s\n' $HA/.dlower $HA/d/Private $ASIG > $HA/.ecryptfs/extra-mounts"
as $A ln -s /home/bob $HA/d.alt
hits=0; extra_mounted=0
start_swap $A $HA/d $HA/d.alt; pause_swap; unswap $HA/d $HA/d.alt
for i in $(seq 1 $RACE_2C_N); do
  ecryptfs_at $HB/Private || bob_up; add_keys $A "$AMP"
  open_only $A /tmp/2c.open          # the swapper paused: ~/d is the real directory
  ecryptfs_at $HA/d/Private && extra_mounted=$((extra_mounted + 1))
  resume_swap; logout $A /tmp/2c.logout; pause_swap
  unswap $HA/d $HA/d.alt
  if ! ecryptfs_at $HB/Private; then hits=$((hits + 1)); echo "round $i: bob's ~/Private was unmounted by alice's logout"; fi
  clean_mounts $A
done
stop_swap; unswap $HA/d $HA/d.alt; reset_user $A
rm -f $HA/.ecryptfs/extra-mounts $HA/d.alt
echo "2c: extra mount mounted in $extra_mounted/$RACE_2C_N logins, bob's ~/Private unmounted $hits times"
check adv.2c.swapper-ran sh -c "cat /tmp/swap.err; ! test -s /tmp/swap.err"
check adv.2c.extra-mount-was-mounted test $extra_mounted -gt 0
check adv.2c.extra-race-never-unmounts-bobs test $hits -eq 0
bob_up
check adv.2c.bob-all-there bob_ok
case_end "$RACE_2C_N logouts racing ~/d <-> ~/d.alt -> /home/bob: bob's ~/Private unmounted $hits times"

# d. The same without luck: two extra mounts, ~/d/Private (first line) and ~/e/Private (second),
#    so the last logout unmounts ~/e/Private first, then ~/d/Private, from one reading of the mount
#    table. alice leaves 32 MiB of unwritten data in ~/e/Private, so that its umount(2) spends a
#    while encrypting it after the mount has left the table; her watcher waits for that moment and
#    then puts a symlink to /home/bob in the place of ~/d. The unmount of ~/d/Private that follows
#    must not reach bob's ~/Private.
case_begin 2d.extra-timed
cat > /tmp/watch2d.py <<'PY'
import os, sys, time
e2, d, target, stop, out = sys.argv[1:6]
def mounted(mp):
    with open('/proc/self/mountinfo') as f:
        return any(line.split(' ')[4] == mp for line in f)
res = 'gave up: %s never went away' % e2
seen = False
while not os.path.exists(stop):
    if not seen:
        seen = mounted(e2)
    elif not mounted(e2):
        os.rename(d, d + '.away'); os.symlink(target, d)
        res = 'swapped %s for a symlink to %s once %s had left the mount table' % (d, target, e2)
        break
    time.sleep(0.002)
open(out, 'w').write(res + '\n')
PY
chmod 644 /tmp/watch2d.py
as $A sh -c "umask 077; mkdir -p $HA/.dlower $HA/.elower $HA/d/Private $HA/e/Private &&
  printf '%s %s ecryptfs ecryptfs_sig=%s\n' $HA/.dlower $HA/d/Private $ASIG $HA/.elower $HA/e/Private $ASIG > $HA/.ecryptfs/extra-mounts"
hits=0; both=0
for i in $(seq 1 $TIMED_2D_N); do
  ecryptfs_at $HB/Private || bob_up; add_keys $A "$AMP"
  open_only $A /tmp/2d.open
  ecryptfs_at $HA/d/Private && ecryptfs_at $HA/e/Private && both=$((both + 1))
  as $A dd if=/dev/zero of=$HA/e/Private/dirty bs=1M count=32 status=none
  rm -f /tmp/watch2d.stop /tmp/watch2d.out
  bg_as $A "$PY" /tmp/watch2d.py $HA/e/Private $HA/d /home/bob /tmp/watch2d.stop /tmp/watch2d.out; WATCH=$BG
  sleep 0.5
  logout $A /tmp/2d.logout
  touch /tmp/watch2d.stop; wait $WATCH
  echo "round $i: watcher: $(cat /tmp/watch2d.out 2>/dev/null)"
  [ -L $HA/d ] && rm $HA/d && mv $HA/d.away $HA/d
  if ! ecryptfs_at $HB/Private; then hits=$((hits + 1)); echo "round $i: bob's ~/Private was unmounted by alice's logout"; fi
  clean_mounts $A; rm -f $HA/.elower/dirty
done
reset_user $A; rm -f $HA/.ecryptfs/extra-mounts
echo "2d: both extra mounts mounted in $both/$TIMED_2D_N logins, bob's ~/Private unmounted $hits times"
check adv.2d.extra-mounts-were-mounted test $both -gt 0
check adv.2d.timed-swap-never-unmounts-bobs test $hits -eq 0
bob_up
check adv.2d.bob-all-there bob_ok
case_end "$TIMED_2D_N logouts, ~/d swapped once ~/e/Private left the table: bob's ~/Private unmounted $hits times; watcher: $(cat /tmp/watch2d.out 2>/dev/null | tr -d '\n')"

# ==============================================================================================
# 3. The PAM application's session keyring is searched by mount(2). root keeps a key (passphrase
#    ROOT-pass-3) in its session keyring and a file encrypted with it; alice copies the ciphertext
#    into her ~/.Private, names root's sig in her Private.sig and plants in her @u a "user" key of
#    that description, 740 dummy bytes, permissions 0x00290000: possessor nothing (0x00), owner
#    (alice) view 0x01 + search 0x08 + setattr 0x20 = 0x29, group and other nothing. Her own search
#    of @u finds it (owner rights), so the agent's "keys present" check, run as alice, passes, and
#    setattr lets it clear the expiry (keepKeys); mount(2) runs with fsuid 0, for which the key
#    grants nothing (not the owner, possessor rights none), so request_key skips it and goes on to
#    the caller's session keyring: root's, when root runs `su - alice` (Debian's su stack has no
#    pam_keyinit). Then root, in that session keyring, opens a session for alice without auth.
#    Runs: RUN=SERVICE:PERM — su:0x00290000 (the attack), eat-login:0x00290000 (a stack with
#    pam_keyinit force, which gives the session a fresh keyring), su:0x00090000 (owner view+search
#    only: the agent's own keepKeys needs setattr, so today the login fails before mount(2)).
case_begin 3.su-stack
mkdir -p /root/c3lower /root/c3upper
cp -p $HA/.ecryptfs/Private.sig /tmp/alice.Private.sig
head -c 740 /dev/zero > /tmp/dummy740; chmod 644 /tmp/dummy740
cat > /tmp/c3-root.sh <<'EOS'
# run by root inside its own session keyring (keyctl session -); environment: A HA C3_RUNS
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }
keyctl link @u @s
RSIG=$(printf %s 'ROOT-pass-3' | ecryptfs-add-passphrase - | sed -n 's/.*sig \[\([0-9a-f]*\)\].*/\1/p')
echo "$RSIG" > /tmp/c3.rsig
mount -i -t ecryptfs /root/c3lower /root/c3upper -o "ecryptfs_sig=$RSIG,ecryptfs_cipher=aes,ecryptfs_key_bytes=16" || exit 1
echo ROOT-SECRET-c3 > /root/c3upper/rootfile; umount /root/c3upper
cp /root/c3lower/rootfile "$HA/.Private/rootfile"; chown "$A:" "$HA/.Private/rootfile"
printf '%s\n' "$RSIG" > "$HA/.ecryptfs/Private.sig"
for run in $C3_RUNS; do
  svc=${run%%:*}; perm=${run#*:}
  # root's key again (a logout may have unlinked keys) and alice's planted key, for each run
  printf %s 'ROOT-pass-3' | ecryptfs-add-passphrase - > /dev/null
  as "$A" keyctl session - sh -c 'keyctl link @u @s; id=$(keyctl padd user "$1" @u < /tmp/dummy740) && keyctl setperm "$id" "$2" && keyctl describe "$id"' sh "$RSIG" "$perm"
  timeout 200 pamtester "$svc" "$A" open_session > "/tmp/c3.$run.open" 2>&1
  awk -v m="$HA/Private" '$5 == m && / - ecryptfs / { print }' /proc/self/mountinfo > "/tmp/c3.$run.mount"
  as "$A" cat "$HA/Private/rootfile" > "/tmp/c3.$run.read" 2>&1
  timeout 200 pamtester "$svc" "$A" close_session > /dev/null 2>&1
  umount -l "$HA/Private" 2>/dev/null
  as "$A" keyctl clear @u
done
EOS
C3_RUNS="su:0x00290000 eat-login:0x00290000 su:0x00090000"
A=$A HA=$HA C3_RUNS="$C3_RUNS" keyctl session - bash /tmp/c3-root.sh > /tmp/c3.trace 2>&1
RSIG=$(cat /tmp/c3.rsig 2>/dev/null)
echo "root's sig $RSIG"; head -n 20 /tmp/c3.trace
for run in $C3_RUNS; do echo "$run: mount [$(cat /tmp/c3.$run.mount)] alice read [$(head -c 100 /tmp/c3.$run.read)] open said [$(tr '\n' ' ' < /tmp/c3.$run.open | cut -c1-200)]"; done
c3_ev() { # c3_ev RUN: how run RUN's ~/Private was mounted, and what alice read
  local mounted='not mounted'
  [ -s /tmp/c3.$1.mount ] && mounted="~/Private mounted with $(grep -o 'ecryptfs_sig=[0-9a-f]*' /tmp/c3.$1.mount)"
  echo "$mounted, alice read: $(head -c 60 /tmp/c3.$1.read | tr '\n' ' ')"
}
check adv.3.root-file-encrypted test -n "$RSIG" -a -s $HA/.Private/rootfile
check adv.3.su-stack-alice-cannot-read-root-file sh -c "! grep -q ROOT-SECRET-c3 /tmp/c3.su:0x00290000.read"
case_end "su stack, planted key 0x00290000: $(c3_ev su:0x00290000)"
case_begin 3.keyinit-stack
check adv.3.keyinit-stack-alice-cannot-read-root-file sh -c "! grep -q ROOT-SECRET-c3 /tmp/c3.eat-login:0x00290000.read"
case_end "eat-login (pam_keyinit force), planted key 0x00290000: $(c3_ev eat-login:0x00290000)"
case_begin 3.no-setattr
check adv.3.no-setattr-alice-cannot-read-root-file sh -c "! grep -q ROOT-SECRET-c3 /tmp/c3.su:0x00090000.read"
case_end "su stack, planted key 0x00090000: $(c3_ev su:0x00090000); said: $(grep -a 'could not\|ecryptfs-agent' /tmp/c3.su:0x00090000.open | head -n1 | cut -c1-120)"
cp -p /tmp/alice.Private.sig $HA/.ecryptfs/Private.sig; rm -f $HA/.Private/rootfile; reset_user $A

# ==============================================================================================
# 4. ~/.Private checked by path (as alice) and resolved again by mount(2) (as root).
# a. ~/.Private a symlink to /proc/PID of one of alice's processes: nothing over procfs, and said.
case_begin 4a.proc-lower
bg_as $A sleep 600; SLEEPER=$BG
sleep 0.3; ls -ldn /proc/$SLEEPER
mv $HA/.Private $HA/.Private.real
as $A ln -s /proc/$SLEEPER $HA/.Private
add_keys $A "$AMP"; open_only $A /tmp/4a.open
cat /tmp/4a.open
check adv.4a.proc-lower-nothing-mounted alice_nothing_mounted
logout $A
kill $SLEEPER 2>/dev/null; wait $SLEEPER 2>/dev/null
rm $HA/.Private; mv $HA/.Private.real $HA/.Private; reset_user $A
case_end "~/.Private -> /proc/PID: $(tr '\n' ' ' < /tmp/4a.open | cut -c1-200)"

# b. The race: ~/.Private (real) and ~/.Private.alt (a symlink to /root/hidden-alice: alice's own
#    directory, but inside root's 0700 /root, where alice cannot reach it) swapped during every
#    login. The check of ~/.Private runs as alice, mount(2) resolves the path again as root: the
#    hidden directory must never be what gets mounted.
case_begin 4b.lower-race
mkdir -m 700 /root/hidden-alice && chown $A: /root/hidden-alice && touch /root/hidden-alice/HIDDEN-MARKER-4b
HID_INO=$(stat -c %i /root/hidden-alice)
as $A ln -s /root/hidden-alice $HA/.Private.alt
hits=0; mounted=0; notmounted=0
start_swap $A $HA/.Private $HA/.Private.alt
for i in $(seq 1 $RACE_4B_N); do
  add_keys $A "$AMP"
  open_only $A /tmp/4b.open          # the swapper running: the race
  pause_swap
  if ecryptfs_at $HA/Private; then
    mounted=$((mounted + 1))
    if ls -a $HA/Private | grep -q HIDDEN-MARKER-4b || [ "$(stat -c %i $HA/Private)" = "$HID_INO" ]; then
      hits=$((hits + 1)); echo "round $i: /root/hidden-alice is mounted on ~/Private: $(ls -a $HA/Private | tr '\n' ' ')"; fi
  else notmounted=$((notmounted + 1)); fi
  clean_mounts $A; resume_swap       # (no logout: root unmounts; the keys stay for the next round)
  echo "round $i (${SECONDS}s)"
done
stop_swap; unswap $HA/.Private $HA/.Private.alt; reset_user $A
rm -f $HA/.Private.alt
echo "4b: $RACE_4B_N logins: mounted $mounted (the hidden directory $hits times), not mounted $notmounted"
check adv.4b.swapper-ran sh -c "cat /tmp/swap.err; ! test -s /tmp/swap.err"
check adv.4b.hidden-dir-never-mounted test $hits -eq 0
check adv.4b.private-lower-restored test -d $HA/.Private -a ! -L $HA/.Private
case_end "$RACE_4B_N logins racing ~/.Private <-> ~/.Private.alt -> /root/hidden-alice: hidden directory mounted $hits times (mounted $mounted, not mounted $notmounted)"

# ==============================================================================================
# 7. Control characters from alice's files reach root's terminal. Private.mnt names a missing
#    directory whose name holds a C1 control (U+009B CSI), a bidi override (U+202E) and an isolate
#    (U+2066); root runs `su - alice` on a pty; alice's own pamtester login too. Then the C0 ESC
#    (already refused today) and the same bytes in an extra mount's mount point.
case_begin 7.private-mnt
HOSTILE_NAME="$HA/"$'\xc2\x9b'"6n-X"$'\xe2\x80\xae'"Y"$'\xe2\x81\xa6'"Z-missing"
set_mnt $A "$HOSTILE_NAME"
add_keys $A "$AMP"    # keys loaded: the mount is attempted (and fails on the missing directory)
ptyrun /tmp/7.su -- su - $A -c true
reset_user $A
login $A "$APW" /tmp/7.login; logout $A
echo "su - alice printed: $(cat -v /tmp/7.su | tr '\n' ' ' | cut -c1-300)"
echo "pamtester printed: $(cat -v /tmp/7.login | tr '\n' ' ' | cut -c1-300)"
check adv.7.su-output-no-c1-bidi no_hostile_bytes /tmp/7.su
check adv.7.pamtester-output-no-c1-bidi no_hostile_bytes /tmp/7.login
case_end "su - alice output holds: [$(has_hostile_bytes /tmp/7.su)], pamtester output holds: [$(has_hostile_bytes /tmp/7.login)]"
reset_user $A

case_begin 7.esc
set_mnt $A "$HA/"$'\x1b'"[2J"$'\x1b'"]0;pwned"$'\x07'"-missing"
ptyrun /tmp/7.esc -- su - $A -c true
echo "su - alice printed: $(cat -v /tmp/7.esc | tr '\n' ' ' | cut -c1-300)"
check adv.7.su-output-no-esc no_hostile_bytes /tmp/7.esc
case_end "su - alice output holds: [$(has_hostile_bytes /tmp/7.esc)]"
set_mnt $A $HA/Private; reset_user $A

case_begin 7.extra-mount
XNAME="$HA/"$'\xc2\x9b'"6n-E"$'\xe2\x80\xae'"x-missing"
as $A mkdir -p -m 700 $HA/.dlower
printf '%s %s ecryptfs ecryptfs_sig=%s\n' "$HA/.dlower" "$XNAME" "$ASIG" > $HA/.ecryptfs/extra-mounts
chown $A: $HA/.ecryptfs/extra-mounts; chmod 600 $HA/.ecryptfs/extra-mounts
add_keys $A "$AMP"
ptyrun /tmp/7.extra -- su - $A -c true
echo "su - alice printed: $(cat -v /tmp/7.extra | tr '\n' ' ' | cut -c1-300)"
check adv.7.extra-mount-output-no-c1-bidi no_hostile_bytes /tmp/7.extra
rm -f $HA/.ecryptfs/extra-mounts; reset_user $A
case_end "su - alice output holds: [$(has_hostile_bytes /tmp/7.extra)]"

# ==============================================================================================
# 5. Root logins and users the agent cannot serve must be a quiet ignore: nothing said to the
#    terminal, no LOG_ERR line (a debug line at most).
case_begin 5.root
L5=$(loglines)
ptyrun /tmp/5.su-dash -- su - root -c true
ptyrun /tmp/5.su -- su -c true
ptyrun /tmp/5.passwd --answer 'New password:' 'Root-new-pw-55' --answer 'Retype new password:' 'Root-new-pw-55' -- passwd root
echo 'root:Root-pw-5x' | chpasswd > /tmp/5.chpasswd 2>&1
echo 'Root-pw-5x' | timeout 300 pamtester eat-login root authenticate open_session close_session > /tmp/5.console 2>&1
for f in su-dash su passwd chpasswd console; do echo "$f printed: $(cat -v /tmp/5.$f | tr '\n' ' ' | cut -c1-200)"; done
check adv.5.su-dash-root-quiet says_nothing_of_agent /tmp/5.su-dash
check adv.5.su-root-quiet says_nothing_of_agent /tmp/5.su
check adv.5.passwd-root-quiet says_nothing_of_agent /tmp/5.passwd
check adv.5.chpasswd-root-quiet says_nothing_of_agent /tmp/5.chpasswd
check adv.5.root-console-login-quiet says_nothing_of_agent /tmp/5.console
check adv.5.root-no-error-logged no_agent_err_since $L5
case_end "printed to root: $(cat /tmp/5.su-dash /tmp/5.passwd | grep -ai ecryptfs-agent | head -n1 | tr -d '\r' | cut -c1-120)"

case_begin 5.badname
L5B=$(loglines)
useradd --badname -m -s /bin/bash 'eat+bad' && echo 'eat+bad:Bad-pw-5' | chpasswd > /tmp/5.bad-chpasswd 2>&1
echo 'Bad-pw-5' | timeout 300 pamtester eat-login 'eat+bad' authenticate open_session close_session > /tmp/5.badname 2>&1
echo "eat+bad login printed: $(cat -v /tmp/5.badname | tr '\n' ' ' | cut -c1-200)"
check adv.5.badname-user-exists getent passwd 'eat+bad'
check adv.5.badname-login-quiet says_nothing_of_agent /tmp/5.badname
check adv.5.badname-chpasswd-quiet says_nothing_of_agent /tmp/5.bad-chpasswd
check adv.5.badname-no-error-logged no_agent_err_since $L5B
case_end "printed to eat+bad: $(grep -ai ecryptfs-agent /tmp/5.badname | head -n1 | cut -c1-120)"

# ==============================================================================================
# 9. Fault-matrix leftovers. a. Private.sig missing (wrapped-passphrase and auto-mount still
#    there): the login must say so, and the log too.
case_begin 9a.no-private-sig
mv $HA/.ecryptfs/Private.sig /tmp/alice.Private.sig.moved
L9=$(loglines)
login $A "$APW" /tmp/9a.login; logout $A
echo "login printed: $(tr '\n' ' ' < /tmp/9a.login | cut -c1-200)"
check adv.9a.user-told-private-sig grep -q 'Private\.sig' /tmp/9a.login
check adv.9a.logged-private-sig sh -c "tail -n +$((L9 + 1)) /tmp/syslog | grep 'ecryptfs-agent\[' | grep -q 'Private\.sig'"
mv /tmp/alice.Private.sig.moved $HA/.ecryptfs/Private.sig; reset_user $A
case_end "login output: [$(grep -v '^Password:' /tmp/9a.login | grep -v '^pamtester:' | tr '\n' ' ' | cut -c1-120)]"

# b. root resets alice's password (the wrapped file keeps the old wrapping); a login with the old
#    password is refused by pam_unix, and must leave no key; so must one the account phase refuses.
case_begin 9b.refused-login
echo "$A:Alice-reset-9" | chpasswd
check adv.9b.old-password-refused sh -c "! (echo '$APW' | timeout 300 pamtester eat-login $A authenticate > /tmp/9b.auth 2>&1)"
check adv.9b.refused-login-leaves-no-key no_key $A "$ASIG"
EV="after the refused login: alice's key $(has_key $A "$ASIG" && echo PRESENT || echo absent)"
echo "$A:$APW" | chpasswd; reset_user $A
case_end "$EV"
case_begin 9b.account-refused
usermod -e 1 $A
check adv.9b.expired-account-refused sh -c "! (echo '$APW' | timeout 300 pamtester eat-login $A authenticate acct_mgmt > /tmp/9b.acct 2>&1)"
check adv.9b.account-refused-leaves-no-key no_key $A "$ASIG"
EV="after auth ok + acct_mgmt refused (expired account): alice's key $(has_key $A "$ASIG" && echo PRESENT || echo absent)"
usermod -e '' $A; reset_user $A
case_end "$EV"

# ==============================================================================================
# 6. Secrets locked in memory: with alice's lock held by root, a login's agent waits holding her
#    password (or the keys derived from it); its VmLck must be above 0.
case_begin 6.mlock
LK=$(lockfile_of $A)
hold_lock "$LK"
( login $A "$APW" /tmp/6.login ) & LOGIN6=$!
APID=$(agent_pid_waiting_on "$LK")
VMLCK=$(awk '/^VmLck:/ { print $2 }' /proc/$APID/status 2>/dev/null)
echo "waiting agent $APID: $(grep -E '^(VmLck|VmRSS)' /proc/$APID/status 2>/dev/null | tr '\n' ' ')"
release_lock; wait $LOGIN6; logout $A; reset_user $A
check adv.6.waiting-agent-found test -n "$APID"
check adv.6.secrets-locked-in-memory test "${VMLCK:-0}" -gt 0
case_end "VmLck of the agent waiting with alice's password: ${VMLCK:-?} kB"

# ==============================================================================================
# 8. The agent inherits the caller's process state. alice runs su and passwd from a shell with
#    hostile limits; the agent must reset them, and run with real uid 0 (alice cannot signal it).
HOSTILE_STATE='echo 1000 > /proc/self/oom_score_adj; ulimit -f 0; ulimit -n 16; ulimit -t 2; umask 0777'
case_begin 8a.hostile-su
as $A "$PY" /tmp/ptyrun.py /tmp/8a.su --answer 'assword:' "$APW" -- bash -c "$HOSTILE_STATE; exec nice -n 19 su - $A -c 'cat $HA/Private/marker.txt; echo SU-DONE'"
echo "su printed: $(tr '\n' ' ' < /tmp/8a.su | cut -c1-300)"
check adv.8a.hostile-su-unlocks grep -q "$APLAIN" /tmp/8a.su
check adv.8a.hostile-su-logout-locks not_ecryptfs_at $HA/Private
EV="su with RLIMIT_FSIZE 0, NOFILE 16, CPU 2 s, nice 19, oom_score_adj 1000, umask 0777: unlocked=$(yes_no grep -q "$APLAIN" /tmp/8a.su)"
EV+="; said: $(grep -a 'ecryptfs-agent' /tmp/8a.su | head -n1 | tr -d '\r' | cut -c1-100)"
reset_user $A
case_end "$EV"

case_begin 8b.hostile-passwd
NEWPW='Orbit-9q7-Zephyr'
as $A "$PY" /tmp/ptyrun.py /tmp/8b.passwd --answer 'Current password:' "$APW" --answer 'New password:' "$NEWPW" --answer 'Retype new password:' "$NEWPW" \
  -- bash -c "$HOSTILE_STATE; exec nice -n 19 passwd"; echo "passwd exit $?"
echo "passwd printed: $(tr '\n' ' ' < /tmp/8b.passwd | cut -c1-300)"
rewrapped() { as $A sh -c "printf %s '$NEWPW' | ecryptfs-unwrap-passphrase $HA/.ecryptfs/wrapped-passphrase - 2>/dev/null" | grep -qx "$AMP"; }
check adv.8b.hostile-passwd-rewraps rewrapped
check adv.8b.wrapped-passphrase-mode-600 test "$(stat -c %a $HA/.ecryptfs/wrapped-passphrase)" = 600
EV="passwd with RLIMIT_FSIZE 0, NOFILE 16, CPU 2 s, nice 19, oom_score_adj 1000, umask 0777: re-wrapped=$(rewrapped && echo yes || echo NO), mode $(stat -c %a $HA/.ecryptfs/wrapped-passphrase)"
# restore: the wrapping and the password back to APW, whatever happened
rewrapped && as $A sh -c "printf '%s\n%s' '$NEWPW' '$APW' | ecryptfs-rewrap-passphrase $HA/.ecryptfs/wrapped-passphrase - > /dev/null"
chmod 600 $HA/.ecryptfs/wrapped-passphrase; echo "$A:$APW" | chpasswd; reset_user $A
check adv.8b.restored as $A sh -c "printf %s '$APW' | ecryptfs-unwrap-passphrase $HA/.ecryptfs/wrapped-passphrase - | grep -qx '$AMP'"
case_end "$EV"

# c. What the agent runs with: alice's lock held, her su (hostile state, milder limits so that the
#    agent lives to be looked at) waits in the agent; its /proc files are read.
case_begin 8c.agent-state
LK=$(lockfile_of $A)
hold_lock "$LK"
MILDER_STATE='echo 1000 > /proc/self/oom_score_adj; ulimit -f 0; ulimit -n 64; ulimit -t 600; umask 0777'
bg_as $A "$PY" /tmp/ptyrun.py /tmp/8c.su --answer 'assword:' "$APW" -- bash -c "$MILDER_STATE; exec nice -n 19 su - $A -c true"; SU8C=$BG
APID=$(agent_pid_waiting_on "$LK")
FSIZE=$(awk '/^Max file size/ { print $4 }' /proc/$APID/limits 2>/dev/null)
NOFILE=$(awk '/^Max open files/ { print $4 }' /proc/$APID/limits 2>/dev/null)
CPU=$(awk '/^Max cpu time/ { print $4 }' /proc/$APID/limits 2>/dev/null)
UMASK=$(awk '/^Umask:/ { print $2 }' /proc/$APID/status 2>/dev/null)
UIDS=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' /proc/$APID/status 2>/dev/null)
OOM=$(cat /proc/$APID/oom_score_adj 2>/dev/null)
NICE=$(awk '{ print $19 }' /proc/$APID/stat 2>/dev/null)
as $A sh -c "kill -0 $APID" > /tmp/8c.kill 2>&1; KILLRC=$?
echo "agent $APID: fsize=$FSIZE nofile=$NOFILE cpu=$CPU umask=$UMASK uids=[$UIDS] oom_score_adj=$OOM nice=$NICE; alice's kill -0: rc $KILLRC $(cat /tmp/8c.kill)"
release_lock; wait $SU8C
check adv.8c.waiting-agent-found test -n "$APID"
check adv.8c.fsize-unlimited test "$FSIZE" = unlimited
check adv.8c.nofile-at-least-1024 test "${NOFILE:-0}" -ge 1024
check adv.8c.cpu-unlimited test "$CPU" = unlimited
check adv.8c.umask-0022 test "$UMASK" = 0022
check adv.8c.oom-score-adj-0 test "$OOM" = 0
check adv.8c.nice-0 test "$NICE" = 0
check adv.8c.uids-all-root test "$UIDS" = "0 0 0 0"
check adv.8c.user-cannot-signal-agent sh -c "test $KILLRC -ne 0 && grep -qi 'not permitted' /tmp/8c.kill"
reset_user $A
case_end "agent under su: fsize=$FSIZE nofile=$NOFILE cpu=$CPU umask=$UMASK uids=[$UIDS] oom_score_adj=$OOM nice=$NICE, alice's kill -0 rc=$KILLRC"

# d. alice SIGKILLs every agent process she sees (a tight /proc loop) during her su login.
case_begin 8d.kill-loop
cat > /tmp/killer.py <<'PY'
import os, signal, sys
stop, out = sys.argv[1], sys.argv[2]
seen, killed, denied = set(), set(), 0
while not os.path.exists(stop):
    for d in os.listdir('/proc'):
        if not d.isdigit(): continue
        try:
            with open('/proc/%s/cmdline' % d, 'rb') as f: argv = f.read().split(b'\0')
        except OSError: continue
        if b'pam' not in argv or not any(a.endswith(b'main.js') for a in argv): continue
        seen.add(d)
        try:
            os.kill(int(d), signal.SIGKILL); killed.add(d)
        except PermissionError: denied += 1
        except ProcessLookupError: pass
open(out, 'w').write('seen=%d kills=%d denied=%d\n' % (len(seen), len(killed), denied))
PY
chmod 644 /tmp/killer.py; rm -f /tmp/killer.stop /tmp/killer.out
bg_as $A "$PY" /tmp/killer.py /tmp/killer.stop /tmp/killer.out; KILLER=$BG
sleep 0.5
as $A "$PY" /tmp/ptyrun.py /tmp/8d.su --answer 'assword:' "$APW" -- su - $A -c "cat $HA/Private/marker.txt; echo SU-DONE"
touch /tmp/killer.stop; wait $KILLER
echo "killer: $(cat /tmp/killer.out 2>/dev/null); su printed: $(tr '\n' ' ' < /tmp/8d.su | cut -c1-200)"
check adv.8d.killer-saw-agents grep -qv 'seen=0 ' /tmp/killer.out
check adv.8d.user-killed-no-agent grep -q ' kills=0 ' /tmp/killer.out
check adv.8d.kill-loop-login-unlocks grep -q "$APLAIN" /tmp/8d.su
check adv.8d.kill-loop-logout-locks not_ecryptfs_at $HA/Private
EV="$(cat /tmp/killer.out 2>/dev/null | tr -d '\n'); unlocked=$(grep -q "$APLAIN" /tmp/8d.su && echo yes || echo NO)"
reset_user $A
case_end "$EV"

# ==============================================================================================
# 1. migrate-home: the new encrypted home is mounted on /home/mallory while root copies into it by
#    path. mallory's home: zz/aaa.bin (64 MiB, so the copy takes a while), then zz/eat-pwned-marker,
#    and a directory zzdir of mode 4755. A racer of mallory's (a cron job, say) swaps zz for a
#    symlink to /etc (once root is busy writing zz/aaa.bin) and zzdir for one to /root/victim-bin
#    (root's, 755, not setuid) as soon as it appears, looping until the migration ends.
case_begin 1.racer-before
check adv.1.make-home as $M sh -c "cd $HM && mkdir zz zzdir && head -c 64M /dev/zero > zz/aaa.bin && echo mallory-data > zz/eat-pwned-marker && chmod 4755 zzdir && ls -ld zzdir | grep -q '^drws'"
cp /bin/true /root/victim-bin && chmod 755 /root/victim-bin
SUM1=$(sha256sum < $HM/zz/aaa.bin | cut -d' ' -f1)
# b. a process of mallory's already running when migrate-home starts: refused, nothing changed
bg_as $M sleep 600; EARLY=$BG
printf '%s\n' "$MPW" | timeout 600 "$CLI" migrate-home -u $M > /tmp/1b.out 2> /tmp/1b.err; RC1B=$?
kill $EARLY; wait $EARLY 2>/dev/null
echo "migrate-home with a process of mallory's running: exit $RC1B: $(tr '\n' ' ' < /tmp/1b.err | cut -c1-200)"
check adv.1.racer-before-refused sh -c "test $RC1B -ne 0 && grep -qi 'process' /tmp/1b.err"
check adv.1.racer-before-nothing-changed sh -c "test -d $HM/zz -a ! -L $HM/zz && ! test -e /home/.ecryptfs/$M && ! ls -d $HM.* > /dev/null 2>&1"
case_end "exit $RC1B: $(head -n1 /tmp/1b.err | cut -c1-120)"

case_begin 1.race
cat > /tmp/racer.py <<'PY'
import os, stat, sys
home, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
zz, zzdir = os.path.join(home, 'zz'), os.path.join(home, 'zzdir')
done, n, free0 = [], 0, None
def isdir(p):
    try: return stat.S_ISDIR(os.lstat(p).st_mode)
    except OSError: return False
def swap(p, target):
    # eCryptfs refuses RENAME_EXCHANGE (EINVAL): rename the directory away, then the symlink in
    global n
    n += 1
    try: os.rename(p, '%s.moved%d' % (p, n)); os.symlink(target, p); done.append(os.path.basename(p))
    except OSError: pass
while not os.path.exists(stop):
    # zzdir (empty): root opens nothing in it, only sets its owner, mode and times at the end
    if isdir(zzdir): swap(zzdir, '/root/victim-bin')
    # zz: wait until root is writing zz/aaa.bin (free space under /home falling by 4 MiB), then
    # swap it while root's file stays open, so that root's next open, zz/eat-pwned-marker, goes
    # through the symlink
    if isdir(zz):
        st = os.statvfs(home); free = st.f_bavail * st.f_frsize
        if free0 is None: free0 = free
        elif free0 - free > (4 << 20): swap(zz, '/etc'); free0 = None
    else: free0 = None
open(out, 'w').write('swaps=%d %s\n' % (len(done), ' '.join(done[:10])))
PY
chmod 644 /tmp/racer.py; rm -f /tmp/racer.stop /tmp/racer.out /tmp/monitor.stop /tmp/monitor.seen
( while [ ! -e /tmp/monitor.stop ]; do
    [ -e /etc/eat-pwned-marker ] && echo marker; [ -u /root/victim-bin ] && echo setuid; sleep 0.1
  done | sort -u > /tmp/monitor.seen ) & MONITOR=$!
( printf '%s\n' "$MPW" | timeout 900 "$CLI" migrate-home -u $M > /tmp/1.out 2> /tmp/1.err; echo $? > /tmp/1.rc ) & MIG=$!
# the racer starts once the migration has begun: the home moved away, or the new home mounted
for _ in $(seq 1 3000); do
  { ls -d $HM.* > /dev/null 2>&1 || ecryptfs_at $HM || [ -e /tmp/1.rc ]; } && break; sleep 0.05
done
bg_as $M "$PY" /tmp/racer.py $HM /tmp/racer.stop /tmp/racer.out; RACER=$BG
wait $MIG; touch /tmp/racer.stop; wait $RACER; sleep 0.3; touch /tmp/monitor.stop; wait $MONITOR
RC1=$(cat /tmp/1.rc); ORIG=$(ls -d $HM.* 2>/dev/null | head -n1)
echo "migrate-home exit $RC1; racer: $(cat /tmp/racer.out 2>/dev/null); monitor saw: [$(tr '\n' ' ' < /tmp/monitor.seen)]"
echo "stdout: $(tail -n 3 /tmp/1.out | tr '\n' ' ' | cut -c1-300)"; echo "stderr: $(tr '\n' ' ' < /tmp/1.err | cut -c1-600)"
ls -la /etc/eat-pwned-marker /etc/aaa.bin /root/victim-bin 2>&1
# finished with mallory's data intact (read back through her login), or refused with the original intact
outcome_ok() {
  if [ "$RC1" = 0 ]; then
    grep -q '^Done:' /tmp/1.out && login $M "$MPW" /tmp/1.login && [ "$(sha256sum < $HM/zz/aaa.bin | cut -d' ' -f1)" = "$SUM1" ]; local r=$?; logout $M; return $r
  fi
  test -s /tmp/1.err && if [ -n "$ORIG" ]; then [ "$(sha256sum < "$ORIG/zz/aaa.bin" | cut -d' ' -f1)" = "$SUM1" ]; else [ "$(sha256sum < $HM/zz/aaa.bin | cut -d' ' -f1)" = "$SUM1" ]; fi
}
check adv.1.race-no-marker-in-etc sh -c "! test -e /etc/eat-pwned-marker && ! grep -q marker /tmp/monitor.seen"
check adv.1.race-victim-never-setuid sh -c "! test -u /root/victim-bin && ! grep -q setuid /tmp/monitor.seen"
check adv.1.race-nothing-in-etc-owned-by-mallory sh -c "! find /etc -xdev -user $M | grep ."
check adv.1.race-finished-intact-or-refused outcome_ok
if [ "$RC1" = 0 ]; then EV="exit 0 (finished)"; else EV="exit $RC1 (refused: $(grep '^ecryptfs-agent' /tmp/1.err | head -n1 | cut -c1-110))"; fi
EV+="; racer $(cat /tmp/racer.out 2>/dev/null | tr -d '\n')"
if [ -e /etc/eat-pwned-marker ]; then EV+="; /etc/eat-pwned-marker EXISTS (owner $(stat -c %U /etc/eat-pwned-marker))"; else EV+="; /etc/eat-pwned-marker absent"; fi
EV+="; /root/victim-bin mode $(stat -c %A /root/victim-bin); in /etc owned by mallory: $(find /etc -xdev -user $M 2>/dev/null | tr '\n' ' ')"
case_end "$EV"
# leave nothing behind that a later reader of this VM could trip over
rm -f /etc/eat-pwned-marker /etc/aaa.bin; chmod 755 /root/victim-bin; reset_user $M; umount -l $HM 2>/dev/null

echo "=== summary"
echo "checks failed: $nfail"
exit $failed
