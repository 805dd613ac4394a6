# The Debian package's life cycle on Debian's kernel: install next to an enabled pam_ecryptfs,
# switch it off as docs/install.md says, a real su password login that unlocks and locks
# ~/Private, remove, purge, reinstall, upgrade; with systemd as PID 1, so the resident agent's
# units are enabled, started, restarted on upgrade with a session open, stopped and purged as on
# a real machine. Run as root inside the systemd-mode VM (the host root is a read-only lower
# layer, so dpkg only changes the tmpfs overlay) by
# test/vm/package.vm.test.ts, which prepends  DEB1=<.deb> DEB2=<.deb, higher version> V2=<its version>
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

# the journal, followed into the file the checks read (and lib.sh shows on a failure)
journalctl -f -n 0 -o short --no-pager > /tmp/syslog 2>&1 & sleep 0.5
# a line reaches the journal and the follower a moment after the PAM call returned
logged() { until_ok 10 grep -q -e "$1" /tmp/syslog; }
modprobe ecryptfs
export DEBIAN_FRONTEND=noninteractive
# man-db's dpkg trigger rebuilds its index over the whole (9p) /usr/share/man at every install
# and removal when this file exists: minutes under TCG. (The debconf answer alone does not
# remove it.)
rm -f /var/lib/man-db/auto-update
# A container image's policy-rc.d (exit 101: "do not start services") in the shared host root
# would make deb-systemd-invoke skip the postinst's start, as no real machine does.
rm -f /usr/sbin/policy-rc.d
C=/etc/pam.d

as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }
mounted() { awk -v m="$1/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
# line number of the first non-comment line of file $1 matching $2 (0 when none)
lineno() { grep -nE "^[^#]*$2" "$1" | head -n1 | cut -d: -f1 | grep . || echo 0; }
# our line comes after pam_unix's in file $1
after_unix() { local u o; u=$(lineno "$1" 'pam_unix\.so'); o=$(lineno "$1" 'pam_ecryptfs_agent\.so'); [ "$u" -gt 0 ] && [ "$o" -gt "$u" ]; }
no_agent_lines() { ! grep -rq pam_ecryptfs_agent $C; }
# The shipped default timeout (5 s) is for real machines; under TCG node alone needs seconds.
# pam-auth-update keeps options added to a profile's module line, so this survives upgrades.
slow_vm_timeout() { sed -i -E 's/(pam_ecryptfs_agent\.so.*)$/\1 timeout=120 debug/' $C/common-auth $C/common-session $C/common-password; }

A=eatpkg; APW='Pkg-pass 0815'; HA=/home/$A; PLAIN='eatvm-package-marker-77'
B=eatpkgb; BPW='B-pw-4711'
# su_as_b NAME COMMAND: B runs "su - A -c COMMAND" typing A's password; output in /tmp/NAME.su
su_as_b() { su_as $B $A "$APW" "$2" /tmp/$1.su || { cat /tmp/$1.su; return 1; }; }
su_ok() { su_as_b "$1" 'echo SU-OK' && grep -q SU-OK /tmp/$1.su || { cat /tmp/$1.su; return 1; }; }
su_unlocks() { su_as_b "$1" "grep -qx '$PLAIN' $HA/Private/secret.txt && echo SU-SAW-PLAINTEXT" && grep -q SU-SAW-PLAINTEXT /tmp/$1.su || { cat /tmp/$1.su; return 1; }; }

# ---------------------------------------------------------------------------------------------
# a. Install while the host's ecryptfs-utils profile (pam_ecryptfs) is enabled: the postinst says
#    so and leaves it alone; pam-auth-update --disable ecryptfs-utils (the documented fix) does it.
check a.utils-profile-enabled grep -q '^[^#]*pam_ecryptfs\.so' $C/common-auth
check a.dpkg-install sh -c "dpkg -i '$DEB1' > /tmp/a.install 2>&1"
check a.notice-printed grep -q 'pam-auth-update --disable ecryptfs-utils' /tmp/a.install
check a.utils-left-alone grep -q '^[^#]*pam_ecryptfs\.so' $C/common-auth
check a.disable-utils pam-auth-update --disable ecryptfs-utils
check a.no-pam-ecryptfs-left sh -c "! grep -q '^[^#]*pam_ecryptfs\.so' $C/common-auth $C/common-session $C/common-password"
check a.auth-line-after-unix after_unix $C/common-auth
check a.auth-line-shipped grep -qE '^auth\s+optional\s+pam_ecryptfs_agent\.so unwrap\s*$' $C/common-auth
check a.session-line grep -qE '^session\s+optional\s+pam_ecryptfs_agent\.so unwrap\s*$' $C/common-session
check a.not-in-noninteractive sh -c "! grep -q pam_ecryptfs_agent $C/common-session-noninteractive"
check a.password-line-after-unix after_unix $C/common-password
check a.agent-root-755 sh -c "[ \"\$(stat -c '%U %a' /usr/lib/ecryptfs-agent/dist/agent/main.js)\" = 'root 755' ]"
check a.cli-on-path sh -c "ecryptfs-agent --help | grep -q '^Usage: ecryptfs-agent'"
check a.man-page sh -c "man -w pam_ecryptfs_agent | grep -q pam_ecryptfs_agent.8"
SOCKETS="ecryptfs-agent.socket ecryptfs-agent-user.socket"
check a.sockets-enabled systemctl is-enabled --quiet $SOCKETS
check a.sockets-listening systemctl is-active --quiet $SOCKETS
check a.pam-socket-root-only sh -c "[ \"\$(stat -c '%U %a' /run/ecryptfs-agent/agent.sock)\" = 'root 600' ]"
master_pid() { systemctl show -p MainPID --value ecryptfs-agent.service; }
slow_vm_timeout

# b. A private directory made by ecryptfs-setup-private; another user's su with the password
#    (a setuid PAM application through common-*) unlocks it, and the logout locks it.
# No subordinate ids: shadow's link()-based lock on /etc/subgid fails on this overlay.
newuser() { useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -m -s /bin/bash "$1" && set_password "$1" "$2"; }
check b.useradd sh -c "$(declare -f newuser set_password); newuser $A '$APW' && newuser $B '$BPW'"
check b.setup-private as $A env HOME=$HA keyctl session - ecryptfs-setup-private --nopwcheck -l "$APW" -m "mount-pass-$A-4242"
check b.locked-before not_mounted $HA
check b.su-login-writes su_as_b b1 "printf '%s\n' '$PLAIN' > $HA/Private/secret.txt && echo SU-WROTE"
check b.su-was-mounted grep -q SU-WROTE /tmp/b1.su
check b.su-logout-locks not_mounted $HA
check b.ciphertext-only sh -c "! grep -rq '$PLAIN' $HA/.Private"
check b.su-login-reads su_unlocks b2
check b.locked-again not_mounted $HA
check b.agent-logged logged "private directory mounted.*user=$A"
# the module's debug line (slow_vm_timeout adds debug) names the path that served each phase
check b.open-served-by-resident logged 'open_session: agent result=success.*served by the resident agent'
check b.close-served-by-resident logged 'close_session: agent result=success.*served by the resident agent'
check b.master-running systemctl is-active --quiet ecryptfs-agent.service

# c. dpkg -r takes the lines out before the module goes; logins keep working without it.
check c.dpkg-remove dpkg -r ecryptfs-agent
check c.no-lines-left no_agent_lines
check c.resident-stopped sh -c "! systemctl is-active --quiet $SOCKETS ecryptfs-agent.service"
check c.module-gone sh -c "! ls /usr/lib/*/security/pam_ecryptfs_agent.so"
check c.profile-gone test ! -e /usr/share/pam-configs/ecryptfs-agent
check c.su-still-works su_ok c1
check c.not-mounted-without-module not_mounted $HA
check c.run-dir-kept-until-purge test -d /run/ecryptfs-agent
check c.dpkg-purge dpkg --purge ecryptfs-agent
check c.run-dir-purged test ! -e /run/ecryptfs-agent
check c.purged sh -c "! dpkg -s ecryptfs-agent 2>/dev/null | grep -q '^Status: install'"
check c.units-gone sh -c "! ls /lib/systemd/system/ecryptfs-agent* /etc/systemd/system/*/ecryptfs-agent* /etc/systemd/system/ecryptfs-agent* 2>/dev/null | grep ."
check c.su-after-purge su_ok c2
check c.no-lines-after-purge no_agent_lines

# d. Reinstall: the profile is enabled again (a removed profile is not "seen" any more).
check d.reinstall dpkg -i "$DEB1"
check d.lines-back after_unix $C/common-auth
slow_vm_timeout
check d.sockets-back systemctl is-active --quiet $SOCKETS
check d.su-unlocks su_unlocks d1
check d.locked not_mounted $HA

# e0. Upgrade with a session open: the master is restarted (postinst try-restart), the session
#     stays mounted, and its logout is served by the new master and locks.
# (the session lasts until /tmp/e0.release exists: dpkg -i takes half a minute under TCG)
su_as_b e0 "grep -qx '$PLAIN' $HA/Private/secret.txt && while [ ! -e /tmp/e0.release ]; do sleep 0.5; done && echo HELD-OK" > /dev/null 2>&1 &
HELD=$!
check e.held-session-mounted until_ok 90 mounted $HA
OLD_MASTER=$(master_pid)

# e. Upgrade to a higher version: the stack stays (prerm does nothing on upgrade), once.
check e.upgrade dpkg -i "$DEB2"
check e.new-version sh -c "dpkg-query -W -f='\${Version}' ecryptfs-agent | grep -qx '$V2'"
new_master() { local m; m=$(master_pid); [ "$m" != 0 ] && [ "$m" != "$OLD_MASTER" ]; }
check e.master-restarted new_master
check e.session-kept-across-upgrade mounted $HA
touch /tmp/e0.release
check e.held-session-ended wait $HELD
check e.held-session-saw-plaintext grep -q HELD-OK /tmp/e0.su
check e.held-logout-locks until_ok 60 not_mounted $HA
check e.one-auth-line sh -c "[ \$(grep -c pam_ecryptfs_agent $C/common-auth) -eq 1 ]"
check e.local-options-kept grep -q 'pam_ecryptfs_agent.so unwrap.*timeout=120' $C/common-auth
check e.su-unlocks su_unlocks e1
check e.locked not_mounted $HA
check e.no-keys-left user_keyring_empty $A

echo "--- common-auth"; grep -v '^#' $C/common-auth | grep .
echo "--- agent log lines: $(grep -c ecryptfs-agent /tmp/syslog)"
grep ecryptfs-agent /tmp/syslog | tail -n 20
exit $failed
