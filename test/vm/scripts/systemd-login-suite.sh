# sshd logins with systemd as PID 1 (logind, the systemd user manager and its own PAM session
# through `systemd-user` → common-session-noninteractive): our module must lock ~/Private at the
# last real logout although user@UID.service lives on (lingering), the failure every peer has.
# Run as root inside the systemd-mode VM by test/vm/systemd-login.vm.test.ts, which prepends REPO=.
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>"; exits non-zero if any failed.

MOD="$REPO/build/Release/pam_ecryptfs_agent.so"
OPTS="agent=$REPO/dist/agent/main.js timeout=120 debug"
modprobe ecryptfs
# The host's ecryptfs-utils put pam_ecryptfs into common-*; replace it with ours, in every
# stack pam-auth-update writes, including the non-interactive one systemd-user includes.
sed -i '/pam_ecryptfs\.so/d' /etc/pam.d/common-*
sed -i "/^auth.*pam_permit.so/a auth optional $MOD unwrap $OPTS" /etc/pam.d/common-auth
echo "session optional $MOD $OPTS" >> /etc/pam.d/common-session
echo "session optional $MOD $OPTS" >> /etc/pam.d/common-session-noninteractive
echo "password optional $MOD $OPTS" >> /etc/pam.d/common-password
check s.systemd-user-stack-includes-us sh -c "grep -q common-session-noninteractive /usr/lib/pam.d/systemd-user /etc/pam.d/systemd-user 2>/dev/null"

as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }
mounted() { awk -v m="$1/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
# no eCryptfs auth tok (a "user" key of the user's uid described by a 16-hex sig) visible to the
# user; prints the offending /proc/keys lines on failure (systemd's own "invocation_id" user keys
# belong to root and do not count)
no_user_keys() { ! as "$1" awk -v u="$(id -u "$1")" '$6 == u && $8 == "user" && $9 ~ /^[0-9a-f]{16}:$/' /proc/keys | grep .; }
SSH_OPTS='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'
PWSSH="-o PreferredAuthentications=password -o PubkeyAuthentication=no"

A=eatsys; APW='Sys-pass 2026'; HA=/home/$A; PLAIN='eatvm-systemd-plaintext-91'
check s.useradd newuser $A "$APW"
check s.setup-private-reference as $A env HOME=$HA keyctl session - ecryptfs-setup-private --nopwcheck -l "$APW" -m "sys-mount-pass-7"
# Lingering: user@UID.service starts now and stays, with its own PAM session (service systemd-user).
check s.linger loginctl enable-linger $A
UID_A=$(id -u $A)
check s.user-manager-running until_ok 60 systemctl is-active --quiet user@$UID_A.service
check s.user-manager-session-not-counted until_ok 30 sh -c "journalctl -t ecryptfs-agent --no-pager | grep -q 'session of the systemd user manager: not counted.*user=$A'"
check s.not-mounted-by-user-manager not_mounted $HA

# 1. One ssh password login writes a file; at its logout the directory is locked although the
#    user manager lives on.
check s.ssh-login-unlocks sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "mountpoint -q ~/Private && printf '%s\n' '$PLAIN' > ~/Private/secret.txt"
check s.locked-after-last-logout until_ok 60 not_mounted $HA
check s.keys-gone-after-logout until_ok 30 no_user_keys $A
check s.user-manager-still-running systemctl is-active --quiet user@$UID_A.service
check s.ciphertext-below sh -c "! grep -rq '$PLAIN' $HA/.Private"

# 2. Overlapping ssh sessions: the first logout keeps the mount, the last one locks.
sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "grep -qx '$PLAIN' ~/Private/secret.txt && sleep 40" > /tmp/long.out 2>&1 &
long=$!
check s.long-session-mounted until_ok 90 mounted $HA
check s.short-session sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "grep -qx '$PLAIN' ~/Private/secret.txt"
sleep 3
check s.still-mounted-after-short-logout mounted $HA
check s.long-session-saw-plaintext wait $long
check s.locked-after-long-logout until_ok 60 not_mounted $HA

# 3. ssh key login (no password, so nothing to unwrap): the login works and says how to unlock.
check s.keygen as $A sh -c "mkdir -p -m 700 $HA/.ssh && ssh-keygen -q -t ed25519 -N '' -f $HA/.ssh/id_ed25519 && cp $HA/.ssh/id_ed25519.pub $HA/.ssh/authorized_keys"
KEY_SSH="ssh -tt $SSH_OPTS -i $HA/.ssh/id_ed25519 -o PreferredAuthentications=publickey $A@127.0.0.1"
check s.key-login-not-blocked sh -c "$KEY_SSH 'echo KEY-LOGIN-OK' > /tmp/key.out 2>&1; grep -q KEY-LOGIN-OK /tmp/key.out"
# sshd shows PAM session messages at an interactive login (with a shell, not with a command)
check s.key-login-interactive sh -c "printf 'exit\\n' | $KEY_SSH > /tmp/key2.out 2>&1"
check s.key-login-told-how-to-unlock sh -c "grep 'ecryptfs-agent unlock' /tmp/key2.out || { cat /tmp/key.out /tmp/key2.out; false; }"
check s.key-login-left-it-locked not_mounted $HA

# 4. Logs: one line per decision in the journal (authpriv, tag ecryptfs-agent), no secret.
check s.journal-mounted sh -c "journalctl -t ecryptfs-agent --no-pager | grep -q 'private directory mounted.*user=$A'"
check s.journal-locked sh -c "journalctl -t ecryptfs-agent --no-pager | grep -q 'private directory locked.*user=$A'"
check s.journal-no-secret sh -c "! journalctl --no-pager | grep -qF -e '$APW' -e 'sys-mount-pass-7'"
# 5. The resident agent: packaging/systemd's units (ExecStart pointed at this tree), started by
#    their sockets. Logins are served by its workers (the module's debug line says which path
#    served each phase); an ssh session whose sshd is SIGKILLed (close_session never runs) is
#    closed by the reaper; the master SIGKILLed with a session open is restarted and still
#    watches that session; a user unlocks and locks over the user socket with the setuid helper
#    of ecryptfs-utils made unusable; the PAM socket is root's; stopped and masked (a stale
#    socket file left), the module spawns the agent again.
for unit in ecryptfs-agent.socket ecryptfs-agent-user.socket ecryptfs-agent.service; do
  sed "s|^ExecStart=.*|ExecStart=/usr/bin/node $REPO/dist/agent/master.js|" "$REPO/packaging/systemd/$unit" > /lib/systemd/system/$unit
done
check r.units-load systemctl daemon-reload
check r.sockets-listen systemctl start ecryptfs-agent.socket ecryptfs-agent-user.socket
check r.pam-socket-root-only equal_text '600 root' "$(stat -c '%a %U' /run/ecryptfs-agent/agent.sock)"
check r.user-socket-for-all equal_text '666 root' "$(stat -c '%a %U' /run/ecryptfs-agent/user.sock)"
connect_as() { as "$1" python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$2"; }
check r.pam-socket-refuses-a-user fails_into /tmp/r.connect connect_as $A /run/ecryptfs-agent/agent.sock
journal_count() { journalctl --no-pager -o cat | grep -c -e "$1"; }
served() { [ "$(journal_count "$1: agent result=success.*served by the resident agent")" -ge "$2" ]; }
check r.ssh-login-by-a-worker sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "grep -qx '$PLAIN' ~/Private/secret.txt"
check r.locked-after-logout until_ok 60 not_mounted $HA
check r.keys-gone-after-logout until_ok 30 no_user_keys $A
# a console login (login(1), as getty runs it) through the same worker path
console_reads() { # console_reads NAME: the login read the plaintext (output in /tmp/r.NAME.console)
  local out=/tmp/r.$1.console
  login_as $A "$APW" "grep -qx '$PLAIN' ~/Private/secret.txt && echo CONSOLE-SAW-PLAINTEXT-$OK42" $out
  grep -q CONSOLE-SAW-PLAINTEXT-42 $out || { cat $out; return 1; }
}
check r.console-login-unlocks console_reads resident
check r.console-logout-locks until_ok 60 not_mounted $HA
check r.open-served-by-resident served open_session 2
check r.close-served-by-resident until_ok 30 served close_session 2
check r.service-socket-activated systemctl is-active --quiet ecryptfs-agent.service
# sections 1-4 ran spawned agents first, which made the state directory 0700; the master opens it
mode_is() { equal_text "$1" "$(stat -c '%a %U' "$2")"; }
check r.socket-dir-reachable mode_is '755 root' /run/ecryptfs-agent
check r.journal-no-secret sh -c "! journalctl --no-pager | grep -qF -e '$APW' -e 'sys-mount-pass-7'"

# sshd's privileged process (the one that ran open_session) SIGKILLed: no close_session ever
hold_session() { sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "sleep 300" > /dev/null 2>&1 & HELD=$!; }
priv_sshd() { pgrep -f "^sshd: $A \[priv\]" | head -n 1; }
hold_session
check r.held-session-mounted until_ok 90 mounted $HA
PRIV=$(priv_sshd)
check r.sshd-priv-found test -n "$PRIV"
T0=$SECONDS
check r.sshd-killed kill -9 "$PRIV"
check r.reaped-locked until_ok 60 not_mounted $HA
echo "FIGURE reap: ~/Private locked $((SECONDS - T0)) s after sshd's SIGKILL"
check r.reaped-keys-gone until_ok 30 no_user_keys $A
check r.reap-logged sh -c "journalctl -t ecryptfs-agent --no-pager | grep -q 'session ended without close_session.*user=$A'"
kill "$HELD" 2> /dev/null; pkill -u $A -x sleep; wait "$HELD" 2> /dev/null

# the master SIGKILLed while a session is open: systemd restarts it, and the new master watches
# the session recorded before (its sshd SIGKILLed in turn is reaped)
hold_session
check r.second-held-session-mounted until_ok 90 mounted $HA
MASTER=$(systemctl show -p MainPID --value ecryptfs-agent.service)
check r.master-killed kill -9 "$MASTER"
new_master() { local m; m=$(systemctl show -p MainPID --value ecryptfs-agent.service); [ "$m" != 0 ] && [ "$m" != "$MASTER" ] && systemctl is-active --quiet ecryptfs-agent.service; }
check r.master-restarted until_ok 30 new_master
check r.session-survives-master mounted $HA
sleep 2 # the new master's first rescan
PRIV=$(priv_sshd)
check r.second-sshd-killed kill -9 "$PRIV"
check r.reaped-by-new-master until_ok 60 not_mounted $HA
kill "$HELD" 2> /dev/null; pkill -u $A -x sleep; wait "$HELD" 2> /dev/null

# the master SIGKILLed while a worker serves an open_session (held on the user's lock): systemd
# kills the busy worker with the rest of the service; the module sees the hang-up and the login
# goes on locked, at once, not after its timeout; the restarted master serves the next login
# (-o: the lock is flock's own, not its child's, so killing flock frees it)
flock -o /run/ecryptfs-agent/$UID_A.lock sleep 600 & LOCKER=$!
sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "mountpoint -q ~/Private && echo MOUNTED || echo LOCKED" > /tmp/r.mid.out 2>&1 & MID=$!
workers_at_least() { [ "$(pgrep -cf "$REPO/dist/agent/main.js worker")" -ge "$1" ]; }
check r.mid-request-worker-busy until_ok 90 workers_at_least 2 # the busy one and its successor
MASTER=$(systemctl show -p MainPID --value ecryptfs-agent.service)
more_lines() { [ "$(journal_count "$1")" -gt "$2" ]; }
HANGUPS=$(journal_count 'resident agent at /run/ecryptfs-agent/agent.sock)')
FALLBACKS=$(journal_count 'open_session: agent failed or not run; PAM_IGNORE')
T0=$SECONDS
check r.mid-request-master-killed kill -9 "$MASTER"
check r.mid-request-login-not-blocked until_ok 60 sh -c "! kill -0 $MID"
echo "FIGURE master killed mid-request: the login went on $((SECONDS - T0)) s later (module timeout=120)"
check r.mid-request-login-exit-0 wait $MID
check r.mid-request-login-locked grep -qx LOCKED /tmp/r.mid.out
check r.mid-request-module-logged until_ok 10 more_lines 'resident agent at /run/ecryptfs-agent/agent.sock)' "$HANGUPS"
check r.mid-request-module-fell-back until_ok 10 more_lines 'open_session: agent failed or not run; PAM_IGNORE' "$FALLBACKS"
pkill -P $LOCKER -x sleep; kill $LOCKER 2> /dev/null; wait $LOCKER 2> /dev/null
check r.mid-request-master-restarted until_ok 30 new_master
check r.login-after-mid-request sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "grep -qx '$PLAIN' ~/Private/secret.txt"
check r.locked-after-mid-request until_ok 60 not_mounted $HA

# a user's own unlock and lock over the user socket, the setuid helper of ecryptfs-utils unusable
check r.setuid-helper-removed chmod u-s /sbin/mount.ecryptfs_private /sbin/umount.ecryptfs_private
check r.wrong-passphrase-refused fails_into /tmp/r.wrong fed 'not the passphrase' as $A "$REPO/bin/ecryptfs-agent" unlock
check r.wrong-passphrase-left-it-locked not_mounted $HA
check r.user-unlocks-over-socket runs_into /tmp/r.unlock fed "$APW" as $A "$REPO/bin/ecryptfs-agent" unlock
check r.user-unlock-mounted mounted $HA
check r.user-reads-plaintext as $A grep -qx "$PLAIN" $HA/Private/secret.txt
check r.user-locks-over-socket runs_into /tmp/r.lock as $A "$REPO/bin/ecryptfs-agent" lock
check r.user-lock-unmounted until_ok 10 not_mounted $HA
check r.another-users-refused fails_into /tmp/r.other as $A "$REPO/bin/ecryptfs-agent" unlock -u nobody
user_requests_logged() { # at least three of the user-socket lines above
  journalctl -t ecryptfs-agent --no-pager -o cat |
    grep -c -e 'unlock asked by the user' -e 'lock asked by the user' -e 'asked to unlock the private directory of another user' | grep -qx '[3-9]'
}
check r.user-requests-logged user_requests_logged
chmod u+s /sbin/mount.ecryptfs_private /sbin/umount.ecryptfs_private

# stopped and masked: the socket file stays (RemoveOnStop=no), nobody listens, the module spawns
UNITS="ecryptfs-agent.socket ecryptfs-agent-user.socket ecryptfs-agent.service"
check r.stopped-and-masked sh -c "systemctl stop $UNITS && systemctl mask $UNITS"
SPAWNED=$(journal_count 'open_session: agent result=success.*spawned the agent')
check r.masked-login-unlocks sshpass -p "$APW" ssh $SSH_OPTS $PWSSH $A@127.0.0.1 "grep -qx '$PLAIN' ~/Private/secret.txt"
spawned_again() { [ "$(journal_count 'open_session: agent result=success.*spawned the agent')" -gt "$SPAWNED" ]; }
check r.masked-login-spawned until_ok 10 spawned_again
check r.masked-locked-after-logout until_ok 60 not_mounted $HA
SPAWNED=$(journal_count 'open_session: agent result=success.*spawned the agent')
check r.masked-console-login-unlocks console_reads masked
check r.masked-console-login-spawned until_ok 10 spawned_again
check r.masked-console-logout-locks until_ok 60 not_mounted $HA
check r.masked-stays-stopped sh -c '! systemctl is-active --quiet ecryptfs-agent.service'

echo "--- agent journal"; journalctl -t ecryptfs-agent --no-pager -o cat | tail -n 30
exit $failed
