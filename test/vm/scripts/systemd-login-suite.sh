# sshd logins with systemd as PID 1 (logind, the systemd user manager and its own PAM session
# through `systemd-user` → common-session-noninteractive): our module must lock ~/Private at the
# last real logout although user@UID.service lives on (lingering), the failure every peer has.
# Run as root inside the systemd-mode VM by test/vm/systemd-login.vm.test.ts, which prepends REPO=.
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>"; exits non-zero if any failed.
# until_ok SECONDS COMMAND...: polls (logout work finishes after the ssh client has returned)
until_ok() { local end=$(( SECONDS + $1 )); shift; while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.5; done; "$@"; }

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
check s.useradd sh -c "useradd -m -s /bin/bash $A && echo '$A:$APW' | chpasswd"
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
echo "--- agent journal"; journalctl -t ecryptfs-agent --no-pager -o cat | tail -n 30
exit $failed
