# systemd mode baseline: the boot settles, logind and sshd run, a password login over ssh works.
# Prints "CHECK <name> ok|FAIL <why>" per step; exits non-zero if any failed.
failed=0
check() { # check NAME COMMAND...  (output to a file: see reference-peer.sh)
  local name=$1; shift
  if "$@" > /tmp/check.out 2>&1 < /dev/null; then
    echo "CHECK $name ok"
  else
    echo "CHECK $name FAIL $(tr '\n' ' ' < /tmp/check.out | cut -c1-400)"; failed=1
  fi
}
state=$(systemctl is-system-running)
echo "system state: $state"
check e.pid1-is-systemd test "$(cat /proc/1/comm)" = systemd
check e.system-running sh -c "case '$state' in running|degraded) true ;; *) false ;; esac"
[ "$state" = degraded ] && systemctl --failed --no-legend --plain
check e.logind-active systemctl is-active systemd-logind.service
check e.sshd-active systemctl is-active ssh.service
U=eatssh
PW='Ssh-pass-4711'
check e.useradd useradd -m -s /bin/bash "$U"
check e.chpasswd sh -c "echo '$U:$PW' | chpasswd"
ssh_opts='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=password,keyboard-interactive -o PubkeyAuthentication=no -o LogLevel=ERROR'
check e.ssh-password-login sh -c "sshpass -p '$PW' ssh $ssh_opts $U@127.0.0.1 'test \$(id -un) = $U'"
check e.ssh-wrong-password-refused sh -c "! sshpass -p 'wrong' ssh $ssh_opts $U@127.0.0.1 true"
check e.logind-saw-session sh -c "journalctl -b -u systemd-logind --no-pager | grep -q 'New session.*$U'"
exit $failed
