# Extra eCryptfs mounts at login (docs/extra-mounts.md) with OUR module on Debian's kernel.
# Run as root inside the fast-mode VM by test/vm/extra-mounts.vm.test.ts, which prepends
#   REPO=<repo root>  HOLD=<pam-hold binary>
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

use_our_module debug

X=eatx; XPW='X-pw 4711'; HX=/home/$X
VAULT="$HX/My Vault"            # from /etc/fstab (user,noauto), a blank in the path: \040 there
REMOTE="$HX/Remote"             # from ~/.ecryptfs/extra-mounts; its encrypted directory is on a tmpfs
RMNT=/mnt/eat-remote            # "the sshfs the user mounted earlier" (no FUSE fs here: a tmpfs)
esc() { printf '%s' "$1" | sed 's/ /\\040/g'; }
# eCryptfs mounts at $1 (mountinfo escapes blanks; ENVIRON keeps awk from undoing \040)
count_at() { M="$(esc "$1")" awk '$5 == ENVIRON["M"] && / - ecryptfs / { n++ } END { print n + 0 }' /proc/self/mountinfo; }
emounted() { [ "$(count_at "$1")" -eq 1 ]; }
not_emounted() { [ "$(count_at "$1")" -eq 0 ]; }
mount_opts() { M="$(esc "$1")" awk '$5 == ENVIRON["M"] { print $6 }' /proc/self/mountinfo; }
in_u() { as "$1" keyctl session - sh -c "keyctl link @u @s && keyctl search @u user $2" > /dev/null 2>&1; }
not_in_u() { ! in_u "$@"; }
sig1() { head -n1 "$1/.ecryptfs/Private.sig"; }
sig2() { sed -n 2p "$1/.ecryptfs/Private.sig"; }
records() { local f="/run/ecryptfs-agent/$(id -u $X).extra-mounts"; if [ -f "$f" ]; then grep -o '"upper": "[^"]*"' "$f" | cut -d'"' -f4 | tr '\n' '|'; fi; }
# the agent's log lines after line $1 of /tmp/syslog, message part
log_since() { tail -n +"$(( $1 + 1 ))" /tmp/syslog | grep 'ecryptfs-agent\[' | sed 's/^.*ecryptfs-agent\[[0-9]*\]: //'; }
# the lines matching $2, $3 ... appear in this order after line $1 of the log
in_order() { local from=$1 last=0 n; shift; for re in "$@"; do
  n=$(log_since "$from" | grep -n -- "$re" | head -n1 | cut -d: -f1); [ -n "$n" ] && [ "$n" -gt "$last" ] || { echo "'$re' missing or out of order"; return 1; }; last=$n; done; }
loglines() { wc -l < /tmp/syslog; }
hold_open() { # hold_open NAME USER PASSWORD: a held session (pam-hold) on fd_NAME
  mkfifo /tmp/$1.in
  ( for f in /proc/self/fd/*; do n=${f##*/}; [ "$n" -ge 10 ] 2>/dev/null && eval "exec $n>&-"; done
    exec "$HOLD" eat-login "$2" ) < /tmp/$1.in > /tmp/$1.out 2>&1 &
  eval "exec {fd_$1}>/tmp/$1.in"; eval "echo '$3' >&\$fd_$1"
  for _ in $(seq 1 600); do grep -q '^OPEN ' /tmp/$1.out && return 0; sleep 0.2; done; return 1
}
hold_close() { eval "exec {fd_$1}>&-"; for _ in $(seq 1 600); do grep -q '^CLOSED ' /tmp/$1.out && return 0; sleep 0.2; done; return 1; }
remote_up() { mkdir -p $RMNT && mount -t tmpfs -o size=8m,mode=700,uid=$(id -u $X),gid=$(id -g $X) eat-remote $RMNT && as $X mkdir $RMNT/enc; }
export -f as esc count_at emounted not_emounted mount_opts in_u not_in_u log_since records
export X HX VAULT REMOTE RMNT

# ---------------------------------------------------------------------------------------------
# s. A ~/Private (ecryptfs-setup-private, FNEK on) and two extra mounts sharing its sig:
#    /etc/fstab "user,noauto" (encrypted directory: a bind mount) and the user's list (a tmpfs).
check s.useradd newuser $X "$XPW"
check s.setup-private as $X env HOME=$HX keyctl session - ecryptfs-setup-private --nopwcheck -l "$XPW" -m "mount-pass-$X-2718"
S1=$(sig1 $HX); S2=$(sig2 $HX)
check s.bind-lower bash -c "mkdir -p /srv/eatx-vault '$HX/.Vault' && chown $X: /srv/eatx-vault '$HX/.Vault' && chmod 700 /srv/eatx-vault && mount --bind /srv/eatx-vault '$HX/.Vault'"
check s.tmpfs-lower remote_up
check s.upper-dirs as $X mkdir -m 700 "$VAULT" "$REMOTE"
cat >> /etc/fstab <<FSTAB
$HX/.Vault $(esc "$VAULT") ecryptfs rw,user,noauto,ecryptfs_sig=$S1,ecryptfs_fnek_sig=$S2,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs 0 0
/home/eatnobody/.x /home/eatnobody/x ecryptfs rw,user,noauto,ecryptfs_sig=$S1 0 0
FSTAB
check s.user-list as $X sh -c "printf '# my remote files\n%s %s ecryptfs ecryptfs_sig=%s,ecryptfs_cipher=aes,ecryptfs_key_bytes=16\n' $RMNT/enc $REMOTE $S1 > $HX/.ecryptfs/extra-mounts"

# a. One login (pamtester): ~/Private, then the fstab line, then the list; files round-trip and
#    are ciphertext below; the last logout unmounts in reverse order, then locks ~/Private.
L0=$(loglines)
check a.login bash -c "echo '$XPW' | pamtester eat-login $X authenticate open_session > /tmp/a.login 2>&1"
check a.private-mounted emounted $HX/Private
check a.fstab-entry-mounted emounted "$VAULT"
check a.list-entry-mounted emounted "$REMOTE"
check a.mounted-in-order in_order $L0 'private directory mounted' "extra mount mounted.*mount=\"$VAULT\"" "extra mount mounted.*mount=$REMOTE "
check a.recorded-in-order test "$(records)" = "$VAULT|$REMOTE|"
check a.nosuid-nodev-always bash -c "mount_opts '$VAULT' | grep -q nosuid,nodev && mount_opts '$REMOTE' | grep -q nosuid,nodev"
check a.fstab-user-implies-noexec bash -c "mount_opts '$VAULT' | grep -q noexec && ! mount_opts '$REMOTE' | grep -q noexec"
check a.write-all as $X sh -c "echo priv-1 > $HX/Private/p.txt && echo vault-1 > '$VAULT/v.txt' && echo remote-1 > $REMOTE/r.txt"
check a.read-back as $X sh -c "grep -qx priv-1 $HX/Private/p.txt && grep -qx vault-1 '$VAULT/v.txt' && grep -qx remote-1 $REMOTE/r.txt"
check a.vault-ciphertext-names bash -c "ls /srv/eatx-vault | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && ! grep -rq vault-1 /srv/eatx-vault"
check a.remote-ciphertext bash -c "test -f $RMNT/enc/r.txt && ! grep -q remote-1 $RMNT/enc/r.txt"
L1=$(loglines)
check a.logout pamtester eat-login $X close_session
check a.all-unmounted bash -c "! emounted $HX/Private && not_emounted '$VAULT' && not_emounted '$REMOTE'"
check a.reverse-order in_order $L1 "extra mount unmounted.*mount=$REMOTE " "extra mount unmounted.*mount=\"$VAULT\"" 'private directory locked'
check a.keys-gone bash -c "not_in_u $X $S1 && not_in_u $X $S2"
check a.nothing-recorded test -z "$(records)"
check a.another-users-line-ignored bash -c "! log_since $L0 | grep -q eatnobody"

# c. Overlapping sessions (pam-hold). The first login finds the remote directory absent: skipped
#    and said; once it is there, the second login mounts it and leaves the rest alone.
check c.remote-away umount $RMNT
L2=$(loglines)
check c.first-session hold_open s1 $X "$XPW"
check c.first-mounts-private-and-vault bash -c "emounted $HX/Private && emounted '$VAULT' && not_emounted '$REMOTE'"
check_output c.remote-absent-said "INFO: ~/Remote is not mounted: $RMNT/enc is not there" /tmp/s1.out
check c.remote-up remote_up
check c.second-session hold_open s2 $X "$XPW"
check c.second-mounts-remote emounted "$REMOTE"
check c.nothing-mounted-twice bash -c "[ \$(count_at '$VAULT') -eq 1 ] && [ \$(count_at $HX/Private) -eq 1 ]"
check c.vault-kept-not-duplicated bash -c "log_since $L2 | grep -q 'extra mount skipped: mounted by an earlier login.*mount=\"$VAULT\"'"
check c.recorded-in-mount-order test "$(records)" = "$VAULT|$REMOTE|"
check c.files-still-there as $X sh -c "grep -qx vault-1 '$VAULT/v.txt' && echo remote-2 > $REMOTE/r2.txt && grep -qx remote-2 $REMOTE/r2.txt"

# b. Shared sigs: the vault shares both sigs with ~/Private and the remote one shares S1.
#    Unmounting the vault by hand breaks neither; the keys stay.
check b.unmount-vault-by-hand umount -i "$VAULT"   # -i: no umount.ecryptfs helper (it would unlink the keys)
check b.private-still-readable as $X sh -c "grep -qx priv-1 $HX/Private/p.txt && echo priv-2 > $HX/Private/p2.txt && grep -qx priv-2 $HX/Private/p2.txt"
check b.remote-still-readable as $X sh -c "grep -qx remote-2 $REMOTE/r2.txt && echo remote-3 > $REMOTE/r3.txt"
check b.keys-stay bash -c "in_u $X $S1 && in_u $X $S2"

check c.first-logout hold_close s1
check c.still-mounted-for-the-second bash -c "emounted $HX/Private && emounted '$REMOTE'"
L3=$(loglines)
check c.last-logout hold_close s2
check c.all-unmounted bash -c "! emounted $HX/Private && not_emounted '$REMOTE'"
check c.order-and-gone in_order $L3 "extra mount unmounted.*mount=$REMOTE " 'private directory locked'
check c.vault-gone-left-alone bash -c "log_since $L3 | grep -q 'extra mount already gone.*mount=\"$VAULT\"'"
check c.keys-gone bash -c "not_in_u $X $S1 && not_in_u $X $S2"

# d. Bad entries: each refused with a clear line, nothing mounted for it, ~/Private and the good
#    entries still unlock.
mkdir -p /srv/eatx-rootowned && chmod 755 /srv/eatx-rootowned
check d.bad-entries as $X sh -c "mkdir -p $HX/.L $HX/.O $HX/Linked $HX/O && ln -s $HX/Linked $HX/Link && cat >> $HX/.ecryptfs/extra-mounts <<EOF
$HX/.O /srv/eatx-out ecryptfs ecryptfs_sig=$S1
$HX/.L $HX/Link ecryptfs ecryptfs_sig=$S1
/srv/eatx-rootowned $HX/O ecryptfs ecryptfs_sig=$S1
$HX/.L $HX/Linked ecryptfs ecryptfs_sig=$S1,relatime
EOF"
L4=$(loglines)
check d.login bash -c "echo '$XPW' | pamtester eat-login $X authenticate open_session > /tmp/d.login 2>&1"
check d.private-still-unlocks emounted $HX/Private
check d.good-entries-mounted bash -c "emounted '$VAULT' && emounted '$REMOTE'"
check d.outside-home-refused bash -c "log_since $L4 | grep -q 'extra mount entry refused: ~/.ecryptfs/extra-mounts line 3: the mount point /srv/eatx-out is not inside $X.s home'"
check d.symlink-refused bash -c "log_since $L4 | grep -q 'extra mount failed: $HX/Link is a symbolic link.*code=SYMLINK_REFUSED'"
check d.foreign-lower-refused bash -c "log_since $L4 | grep -q 'extra mount failed: $X does not own the encrypted directory /srv/eatx-rootowned.*code=BAD_OWNER'"
check d.unknown-option-refused bash -c "log_since $L4 | grep -q 'line 6: unknown option \"relatime\"'"
check_output d.user-told 'line 3: the mount point /srv/eatx-out is not inside.*not mounted\. Fix:' /tmp/d.login
check d.nothing-mounted-for-them bash -c "! grep -qE ' ($HX/Link|$HX/Linked|$HX/O|/srv/eatx-out) ' /proc/self/mountinfo"
check d.logout pamtester eat-login $X close_session
check d.all-unmounted bash -c "! emounted $HX/Private && not_emounted '$VAULT' && not_emounted '$REMOTE'"
check d.keys-gone not_in_u $X $S1

# e. The manual path as root: unlock -u does the extra mounts of a login, status lists them,
#    lock -u unmounts them (reverse order) before ~/Private.
CLI="$REPO/bin/ecryptfs-agent"
check e.unlock-root bash -c "echo '$XPW' | $CLI unlock -u $X > /tmp/e.unlock 2>&1"
check e.all-mounted bash -c "emounted $HX/Private && emounted '$VAULT' && emounted '$REMOTE'"
check_output e.unlock-says "$REMOTE is unlocked \\(extra mount, ~/.ecryptfs/extra-mounts line 2\\)" /tmp/e.unlock
check_output e.unlock-says-refused 'extra mount refused: ~/.ecryptfs/extra-mounts line 6: unknown option' /tmp/e.unlock
check e.status-lists bash -c "$CLI status $X > /tmp/e.status 2>&1; grep -q '$RMNT/enc -> $REMOTE: mounted' /tmp/e.status && grep -q 'REFUSED ~/.ecryptfs/extra-mounts line 6' /tmp/e.status"
check e.lock-root bash -c "$CLI lock -u $X > /tmp/e.lock 2>&1"
check e.all-unmounted bash -c "! emounted $HX/Private && not_emounted '$VAULT' && not_emounted '$REMOTE'"
# the lock's lines in order: the extra mounts in reverse order of mounting, then ~/Private
LOCK_ORDER='^/home/eatx/Remote is locked (extra mount).|/home/eatx/My Vault is locked (extra mount).|/home/eatx/Private is locked'
check e.lock-order bash -c "grep -n 'is locked' /tmp/e.lock | cut -d: -f2- | tr '\n' '|' | grep -q '$LOCK_ORDER'"
check e.keys-gone not_in_u $X $S1

echo "--- agent log lines: $(grep -c ecryptfs-agent /tmp/syslog)"
grep ecryptfs-agent /tmp/syslog | grep -i extra | tail -n 30
exit $failed
