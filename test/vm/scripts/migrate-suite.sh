# migrate-home on Debian's kernel: an existing home moved into the encrypted-home layout.
# m: a home of a few hundred entries (nested directories, odd names, a 5 MB file, links, modes, a
#    FIFO, an xattr) migrated by ecryptfs-agent; the files read back equal through the mount made
#    by our PAM module, by `su -`, by mount.ecryptfs_private and by pam_ecryptfs.so.
# r: a home migrated by ecryptfs-migrate-home (the reference) has the same layout, and our agent mounts it.
# k: a migration SIGKILLed in the middle of the copy, resumed (--resume), killed again in the
#    verification, finished by simply running it again: the original never loses a file, the result is equal;
#    the account stays locked between the kills and is unlocked when the last run ends.
# a: root acts on objects, not paths: a process of the user appearing mid-copy swaps directories of the new home for
#    symlinks to /etc and to a root-owned binary: root never follows them (root-only mount point, fd-relative
#    work), the account is locked during the run, and the run stops at the next phase; resumed, it completes.
# x: bad input (unknown user, user logged in, already migrated, wrong password, no space) is refused and changes nothing.
# Run as root inside the fast-mode VM by test/vm/migrate.vm.test.ts, which prepends REPO=<repo root>.
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.

use_our_module
CLI="$REPO/bin/ecryptfs-agent"
export STATE=/var/lib/ecryptfs-agent/migrate
use_reference_module

# manifest DIR [SKIP...]: every entry under DIR (raw names), sorted: type, mode, owner, size, mtime
# (whole seconds: eCryptfs keeps no more), link count, SHA-256 / link target / device, trusted.* xattrs.
cat > /tmp/manifest.py <<'PY'
import hashlib, os, stat, sys
root = os.fsencode(sys.argv[1]); skip = {os.fsencode(a) for a in sys.argv[2:]}
def line(rel, p):
    st = os.lstat(p); m = st.st_mode
    extra = ''
    if stat.S_ISREG(m):
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
        extra = h.hexdigest()
    elif stat.S_ISLNK(m): extra = os.readlink(p).hex()
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m): extra = str(st.st_rdev)
    xa = '' if stat.S_ISLNK(m) else ','.join(sorted(f'{k}={os.getxattr(p, k).hex()}' for k in os.listxattr(p) if k.startswith('trusted.')))
    mtime = '-' if stat.S_ISLNK(m) else str(int(st.st_mtime))
    return f'{rel.hex()} {oct(m)} {st.st_uid}:{st.st_gid} {st.st_size if not stat.S_ISDIR(m) else "-"} {mtime} {st.st_nlink if stat.S_ISREG(m) else "-"} {extra} {xa}'
out = [line(b'', root)]
def walk(rel):
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        r = os.path.join(rel, name) if rel else name
        if not rel and name in skip: continue
        p = os.path.join(root, r)
        out.append(line(r, p))
        if stat.S_ISDIR(os.lstat(p).st_mode): walk(r)
walk(b'')
print('\n'.join(out))
PY
manifest() { /usr/bin/python3 /tmp/manifest.py "$@"; }
# the same tree: DIR (without the .ecryptfs/.Private links of an encrypted home) against a saved
# manifest, whose top directory is expected 700 (ecryptfs-migrate-home makes the original 700, and so the copy)
same_tree() { sed '1s/ 0o40[0-7]* / 0o40700 /' "$2" > /tmp/same.want && manifest "$1" .ecryptfs .Private > /tmp/same.now && diff /tmp/same.want /tmp/same.now; }
mounted() { awk -v m="$1" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
# newuser NAME PASSWORD: retried, because the lower layer of /etc is the host's (9p), where other
# suites' useradd may hold /etc/passwd.lock for a moment
newuser() {
  local i
  for i in 1 2 3 4 5 6; do
    if [ "$(getent passwd "$1" | cut -d: -f1)" != "$1" ]; then useradd -m -s /bin/bash "$1" 2>/tmp/useradd.err || { sleep 1; continue; }; fi
    set_password "$1" "$2" 2>>/tmp/useradd.err && return 0
    sleep 1
  done
  cat /tmp/useradd.err; return 1
}
original_of() { ls -d "/home/$1".???????? 2>/dev/null | head -n1; }
hold() { local u=$1; shift; ( exec setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@" ) & }
# layout USER: the encrypted-home layout with the user's name taken out (compare ours with the reference's)
layout() {
  local u=$1
  ( cd / && find "/home/$u" "/home/.ecryptfs/$u" -maxdepth 2 -path "/home/.ecryptfs/$u/.Private/*" -prune -o \
      -printf '%p %y %m %u:%g %l\n' ) | sed "s#$u#USER#g" | sort
  sed "s#$u#USER#" "/home/.ecryptfs/$u/.ecryptfs/Private.mnt"; wc -l < "/home/.ecryptfs/$u/.ecryptfs/Private.sig"
}
# make_home USER N [MB]: N small files in nested directories, a file of MB (5) MiB "big5M" and one of
# everything else, as the user; one xattr as root
make_home() {
  as "$1" /usr/bin/python3 - "/home/$1" "$2" "${3:-5}" <<'PY' || return 1
import os, sys
home, n = sys.argv[1], int(sys.argv[2]); os.chdir(home)
for d in range(12):
    deep = f'dir{d:02}/sub {d}/deeper'; os.makedirs(deep)
    for i in range(n // 12):
        where = f'dir{d:02}/sub {d}' if i % 2 else deep
        with open(f'{where}/f{i}.txt', 'wb') as f: f.write(os.urandom((i * 37) % 3000))
for name in ['with space', 'new\nline', 'ü tf8 ✓ — ok', 'tab\there', 'quote\'"', '-dash', '.hidden']:
    with open(name, 'w') as f: f.write(name)
with open(b'latin1-\xe9t\xe9', 'wb') as f: f.write(b'not utf-8')
with open('big5M', 'wb') as f: f.write(os.urandom(int(sys.argv[3]) * 1024 * 1024))
open('empty', 'w').close(); os.makedirs('empty-dir')
os.symlink('dir00', 'link-to-dir'); os.symlink('big5M', 'link-to-file'); os.symlink('/nonexistent/x', 'dangling')
os.link('big5M', 'big5M.hardlink'); os.mkfifo('fifo')
import socket; socket.socket(socket.AF_UNIX).bind('socket')
os.chmod('with space', 0o600); os.chmod('dir01', 0o750); os.chmod('empty-dir', 0o500)
os.utime('empty', (981173106, 981173106))
PY
  /usr/bin/python3 -c 'import os,sys; os.setxattr(sys.argv[1], "trusted.migrate", b"kept")' "/home/$1/with space"
}
done_lines() { if [ -e "$STATE/$1.done" ]; then wc -l < "$STATE/$1.done"; else echo 0; fi; }
export -f manifest same_tree mounted not_mounted newuser original_of layout done_lines as

# ---------------------------------------------------------------------------------------------
# m. our migration; every way of logging in sees the same files.
U=eatmu; UPW='U-mig pw 4711'; HU=/home/$U
R=eatmr; RPW='R-mig-pw-9'; HR=/home/$R
K=eatmk; KPW='K-mig-pw-5'; HK=/home/$K
X=eatmx; XPW='X-mig-pw-1'; HX=/home/$X
check m.useradd newuser $U "$UPW"
check r.useradd newuser $R "$RPW"
check k.useradd newuser $K "$KPW"
check x.useradd newuser $X "$XPW"
check m.make-home make_home $U 300
manifest $HU > /tmp/m.before
check m.few-hundred-entries test "$(wc -l < /tmp/m.before)" -ge 300
check m.migrate bash -c "printf '%s\n' '$UPW' | $CLI migrate-home -u $U > /tmp/m.out 2> /tmp/m.err"
cat /tmp/m.err
check m.said-done grep -q "^Done: $HU is now an encrypted home" /tmp/m.out
check m.said-locked grep -q "The account $U is LOCKED while the migration runs" /tmp/m.err
check m.account-unlocked-after bash -c "[ -z \"\$(getent shadow $U | cut -d: -f8)\" ] && grep -q 'was locked during the migration and is unlocked again' /tmp/m.out"
check m.no-work-dir-left bash -c "! ls /run/ecryptfs-agent 2>/dev/null | grep -q '^migrate-'"
check m.said-verified grep -Eq 'all [0-9]+ read back through a fresh mount and matched' /tmp/m.out
check m.kept-original bash -c "grep -q \"plaintext original is kept in $(original_of $U) (its files unchanged; readable by root only)\" /tmp/m.out"
check m.original-unchanged same_tree "$(original_of $U)" /tmp/m.before
check m.not-mounted-after not_mounted $HU
check m.no-state-left bash -c "[ ! -e $STATE/$U.json ] && [ ! -e $STATE/$U.done ]"
check m.no-keys-left bash -c "! as $U keyctl rlist @u | grep -q ."
check m.mount-point-500-links-only bash -c "[ \"\$(stat -c '%a %U' $HU)\" = '500 $U' ] && [ \"\$(find $HU -mindepth 1 ! -type l | wc -l)\" = 0 ] && [ \"\$(ls -A $HU | wc -l)\" = 4 ]"
check m.private-mnt-is-home bash -c "[ \"\$(cat $HU/.ecryptfs/Private.mnt)\" = '$HU' ]"
check m.names-encrypted bash -c "ls /home/.ecryptfs/$U/.Private | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && ! ls -R /home/.ecryptfs/$U/.Private | grep -q 'big5M\|dir00'"
check m.no-plaintext-in-lower bash -c "! grep -rqa 'ü tf8 ✓ — ok' /home/.ecryptfs/$U/.Private"
check m.our-login bash -c "echo '$UPW' | pamtester eat-login $U authenticate open_session"
check m.our-login-mounted mounted $HU
check m.files-equal-through-our-mount same_tree $HU /tmp/m.before
check m.user-reads as $U cmp -s $HU/big5M $HU/big5M.hardlink
check m.our-logout pamtester eat-login $U close_session
check m.our-logout-locked not_mounted $HU
check m.reference-mount as $U keyctl session - sh -c \
  "keyctl link @u @s && printf '%s' '$UPW' | ecryptfs-insert-wrapped-passphrase-into-keyring $HU/.ecryptfs/wrapped-passphrase - >/dev/null && /sbin/mount.ecryptfs_private"
check m.reference-mounted mounted $HU
check m.files-equal-through-reference-mount same_tree $HU /tmp/m.before
check m.reference-umount bash -c "as $U /sbin/umount.ecryptfs_private && not_mounted $HU"
# a real login program: su - (setuid, Debian's common-* stacks with our module) chdirs into the mounted home
su_lands_in_home() { # su - as U: the shell starts in the decrypted home, where the hard link still is one
  su_prints $X $U "$UPW" "pwd; cmp big5M big5M.hardlink && echo SU-IN-DECRYPTED-HOME" /tmp/m.su SU-IN-DECRYPTED-HOME &&
    grep -q "^$HU.\?\$" /tmp/m.su || { cat /tmp/m.su; return 1; }
}
check m.su-login-lands-in-decrypted-home su_lands_in_home
check m.su-logout-locked not_mounted $HU
check m.pam-ecryptfs-login bash -c "echo '$UPW' | pamtester eat-ref $U authenticate open_session && mounted $HU && cmp -s $HU/big5M $(original_of $U)/big5M"
check m.user-writes as $U sh -c "echo new > $HU/written-after.txt && grep -qx new $HU/written-after.txt"
check m.pam-ecryptfs-logout bash -c "pamtester eat-ref $U close_session && not_mounted $HU"
as $U keyctl clear @u 2>/dev/null

# r. the reference ecryptfs-migrate-home: the same layout as ours, and our agent mounts what it made.
as $R sh -c "mkdir -p $HR/docs/sub && echo 'reference copy' > $HR/docs/sub/note && ln -s docs $HR/d"
manifest $HR > /tmp/r.before
check r.ecryptfs-migrate-home bash -c "LOGINPASS='$RPW' ecryptfs-migrate-home -u $R > /tmp/r.out 2>&1"
check r.same-layout-as-ours bash -c "layout $U > /tmp/r.ours && layout $R > /tmp/r.ref && diff /tmp/r.ours /tmp/r.ref"
check r.our-login bash -c "echo '$RPW' | pamtester eat-login $R authenticate open_session && mounted $HR"
check r.files-through-our-mount bash -c "grep -qx 'reference copy' $HR/docs/sub/note && [ \"\$(readlink $HR/d)\" = docs ]"
check r.our-logout bash -c "pamtester eat-login $R close_session && not_mounted $HR"

# k. killed twice (in the copy, then in the verification), resumed: nothing lost, everything equal.
check k.make-home make_home $K 120 1
manifest $HK > /tmp/k.before
total=$(wc -l < /tmp/k.before)
printf '%s\n' "$KPW" > /tmp/k.pw
# kill_when COND...: run migrate-home ($MIGRATE_ARGS) in the background, SIGKILL it as soon as COND holds
kill_when() {
  $CLI migrate-home -u $K $MIGRATE_ARGS < /tmp/k.pw > /tmp/k.run 2>&1 & local pid=$!
  local t=0
  until "$@" || [ $t -ge 6000 ]; do sleep 0.02; t=$((t + 1)); done
  kill -KILL $pid; wait $pid 2>/dev/null
}
copied_at_least() { [ "$(done_lines $K)" -ge "$1" ]; }
MIGRATE_ARGS= kill_when copied_at_least 40
check k.killed-in-the-copy bash -c "grep -q '\"phase\": \"set-up\"' $STATE/$K.json && [ $(done_lines $K) -lt $((total - 20)) ] && ! grep -q '^Done' /tmp/k.run"
echo "killed after $(done_lines $K) of $total entries"
check k.original-complete-after-kill bash -c "same_tree \$(original_of $K) /tmp/k.before"
check k.no-login-into-half-a-home bash -c "[ ! -e /home/.ecryptfs/$K/.ecryptfs/auto-mount ]"
check k.locked-after-kill bash -c "[ \"\$(getent shadow $K | cut -d: -f8)\" = 1 ] && grep -q '\"previousExpiry\": \"\"' $STATE/$K.json"
check k.killed-mount-on-root-only-dir bash -c "not_mounted $HK && grep -Eq ' /run/ecryptfs-agent/migrate-$K-[A-Za-z0-9]{6}/home .* - ecryptfs ' /proc/self/mountinfo"
in_verify() { grep -q '"phase": "copied"' "$STATE/$K.json" 2>/dev/null; }
MIGRATE_ARGS=--resume kill_when in_verify
check k.resumed-and-killed-in-verification bash -c "grep -q 'Resuming the migration' /tmp/k.run && grep -q '\"phase\": \"copied\"' $STATE/$K.json && ! grep -q '^Done' /tmp/k.run"
# the done log has one line per copied file or link: the resumed run did not copy again what was done
data_entries=$(grep -cE '^[0-9a-f]* 0o1[02]0' /tmp/k.before)
check k.resume-copied-only-the-rest bash -c "grep -q 'entries already copied' /tmp/k.run && [ $(done_lines $K) -le $((data_entries + 1)) ]"
echo "done log: $(done_lines $K) lines for $data_entries files and links"
check k.original-complete-after-second-kill bash -c "same_tree \$(original_of $K) /tmp/k.before"
korig=$(original_of $K)
rerun_finishes() {
  fed "$KPW" $CLI migrate-home -u $K --remove-original > /tmp/k.out 2> /tmp/k.err &&
    file_has /tmp/k.out '^Done' && file_has /tmp/k.err 'interrupted at "copied"'
}
check k.rerun-finishes rerun_finishes
cat /tmp/k.err
check k.rerun-copied-nothing grep -q ' 0 entries copied by this run' /tmp/k.out
check k.original-removed-when-asked bash -c "[ -n '$korig' ] && [ ! -e '$korig' ] && grep -q 'was removed after verification (--remove-original)' /tmp/k.out"
check k.state-cleared bash -c "[ ! -e $STATE/$K.json ] && [ ! -e $STATE/$K.done ]"
check k.unlocked-and-unmounted-at-end bash -c "[ -z \"\$(getent shadow $K | cut -d: -f8)\" ] && ! grep -q ' - ecryptfs ' /proc/self/mountinfo && ! ls /run/ecryptfs-agent | grep -q '^migrate-'"
check k.login bash -c "echo '$KPW' | pamtester eat-login $K authenticate open_session && mounted $HK"
check k.files-equal same_tree $HK /tmp/k.before
check k.logout bash -c "pamtester eat-login $K close_session && not_mounted $HK"

# a. Root acts on objects, not paths: a process of the user that appears during the copy (an ssh login, a cron
#    job …; here started by root with setpriv, as the account lock stops new logins) races root: as
#    soon as the new home is mounted it swaps zz (a directory whose 64 MiB first file keeps the copy
#    busy) for a symlink to /etc, and zzdir (mode 4755) for one to a root-owned copy of /bin/true.
#    Root acting by path in a tree the user can reach then created /etc/eat-pwned-marker for the
#    user and made the binary setuid. Now the home is mounted on a root-only directory, every
#    operation is fd-relative, the account is locked and the user's processes stop the next phase.
A=eatma; APW='A-mig-pw-3'; HA=/home/$A
check a.useradd newuser $A "$APW"
check a.make-home as $A sh -c "mkdir $HA/zz $HA/zzdir && head -c 67108864 /dev/urandom > $HA/zz/aaa.bin && echo marker > $HA/zz/eat-pwned-marker && chmod 4755 $HA/zzdir"
manifest $HA > /tmp/a.before
cp /bin/true /root/victim-bin && chmod 0755 /root/victim-bin
cat > /tmp/racer.sh <<'SH'
mp=$1
# wait until root has made zz and zzdir there (no wait where the mount point cannot even be looked at)
for i in $(seq 1 1500); do [ -d "$mp/zz" ] && [ -d "$mp/zzdir" ] && break; stat "$mp" > /dev/null || break; sleep 0.02; done
if mv "$mp/zz" "$mp/zz.away" && ln -s /etc "$mp/zz"; then echo "racer: swapped $mp/zz for a link to /etc"; else echo "racer: could not swap $mp/zz"; fi
if mv "$mp/zzdir" "$mp/zzdir.away" && ln -s /root/victim-bin "$mp/zzdir"; then echo "racer: swapped $mp/zzdir for a link to /root/victim-bin"; else echo "racer: could not swap $mp/zzdir"; fi
exec sleep 900
SH
printf '%s\n' "$APW" | $CLI migrate-home -u $A > /tmp/a.out 2> /tmp/a.err & mig=$!
# what must never happen, watched for the whole run
( while kill -0 $mig 2>/dev/null; do
    [ -e /etc/eat-pwned-marker ] && touch /tmp/a.pwned-marker
    [ -u /root/victim-bin ] && touch /tmp/a.pwned-setuid
    sleep 0.05
  done ) & watcher=$!
mp=
for i in $(seq 1 6000); do mp=$(awk '/ - ecryptfs / { print $5 }' /proc/self/mountinfo | tail -n 1); [ -n "$mp" ] && break; kill -0 $mig 2>/dev/null || break; sleep 0.02; done
echo "the new home of $A is mounted on: ${mp:-(never seen)}"
[ -n "$mp" ] && stat -c '%a %U' "$(dirname "$mp")" > /tmp/a.mp-parent 2>&1
getent shadow $A | cut -d: -f8 > /tmp/a.expiry-during
pamtester eat-login $A acct_mgmt > /tmp/a.acct-during 2>&1; echo "exit $?" >> /tmp/a.acct-during
racer=
if [ -n "$mp" ]; then hold $A bash /tmp/racer.sh "$mp" > /tmp/a.racer 2>&1; racer=$!; fi
wait $mig; echo "exit $?" >> /tmp/a.err
wait $watcher
cat /tmp/a.racer /tmp/a.err
check a.no-etc-marker-ever bash -c "[ ! -e /tmp/a.pwned-marker ] && [ ! -e /etc/eat-pwned-marker ] || { ls -l /etc/eat-pwned-marker; false; }"
check a.victim-never-setuid bash -c "[ ! -e /tmp/a.pwned-setuid ] && [ ! -u /root/victim-bin ] && [ ! -g /root/victim-bin ] || { ls -l /root/victim-bin; false; }"
check a.nothing-in-etc-owned-by-user bash -c "[ -z \"\$(find /etc -xdev -user $A -print -quit)\" ] || { find /etc -xdev -user $A -ls; false; }"
check a.mounted-on-root-only-dir bash -c "case '$mp' in /run/ecryptfs-agent/migrate-$A-??????/home) [ \"\$(cat /tmp/a.mp-parent)\" = '700 root' ] ;; *) echo 'mounted on $mp'; false ;; esac"
check a.racer-could-not-reach bash -c "grep -q 'could not swap $mp/zz\$' /tmp/a.racer && ! grep -q swapped /tmp/a.racer"
check a.account-locked-during-run bash -c "[ \"\$(cat /tmp/a.expiry-during)\" = 1 ] && grep -qi 'expired' /tmp/a.acct-during && ! grep -q 'exit 0' /tmp/a.acct-during"
check a.said-locked grep -q "The account $A is LOCKED while the migration runs" /tmp/a.err
# the racer is a process of the user: the run stops at the next phase check, with a clear message
refused_at_next_phase() {
  file_has /tmp/a.err '^exit 1' \
    "$A is logged in or has processes running (1) (found before the verification: the migration stopped there, nothing is lost)" &&
    file_has -E /tmp/a.err "$A +$racer u +sleep"
}
check a.refused-at-next-phase refused_at_next_phase
check a.unlocked-after-refusal bash -c "[ -z \"\$(getent shadow $A | cut -d: -f8)\" ] && grep -q 'The account $A is unlocked again' /tmp/a.err"
check a.work-dir-removed bash -c "! ls /run/ecryptfs-agent 2>/dev/null | grep -q '^migrate-$A-' && ! grep -q ' - ecryptfs ' /proc/self/mountinfo"
[ -n "$racer" ] && kill $racer; wait $racer 2>/dev/null
resume_completes_verified() {
  fed "$APW" $CLI migrate-home -u $A > /tmp/a.out2 2> /tmp/a.err2 &&
    file_has /tmp/a.out2 '^Done' && file_has -E /tmp/a.out2 'all [0-9]+ read back through a fresh mount and matched'
}
check a.resume-completes-verified resume_completes_verified
cat /tmp/a.err2
check a.account-unlocked-at-end bash -c "[ -z \"\$(getent shadow $A | cut -d: -f8)\" ]"
check a.login bash -c "echo '$APW' | pamtester eat-login $A authenticate open_session && mounted $HA"
check a.files-equal same_tree $HA /tmp/a.before
check a.logout bash -c "pamtester eat-login $A close_session && not_mounted $HA"

# x. bad input: a clear message, nothing changed.
# what a migration of USER would change besides the home: its original, its state, its encrypted-home directory
home_state() { ls -d "/home/$1".* 2>/dev/null; ls -A "$STATE" 2>/dev/null | grep "^$1\." ; ls -A "/home/.ecryptfs/$1" 2>/dev/null; true; }
export -f home_state
check x.unknown-user bash -c "! $CLI migrate-home -u nosuchuser < /dev/null > /tmp/x.1 2>&1 && grep -q 'no such user: nosuchuser' /tmp/x.1"
as $X sh -c "echo keep > $HX/keep.txt"
manifest $HX > /tmp/x.before; home_state $X > /tmp/x.state
hold $X sleep 300; holder=$!
sleep 1
logged_in_refused() {
  fails_into /tmp/x.2 fed "$XPW" $CLI migrate-home -u $X &&
    file_has /tmp/x.2 'logged in or has processes running' && file_has -E /tmp/x.2 "$X +$holder u +sleep"
}
check x.logged-in-refused logged_in_refused
cat /tmp/x.2
kill $holder; wait $holder 2>/dev/null
check x.logged-in-nothing-changed bash -c "manifest $HX | diff /tmp/x.before - && home_state $X | diff /tmp/x.state -"
check x.wrong-password-refused bash -c "! (printf '%s\n' 'not-it' | $CLI migrate-home -u $X > /tmp/x.3 2>&1) && grep -q 'not the login password of $X; nothing changed' /tmp/x.3"
check x.wrong-password-nothing-changed bash -c "manifest $HX | diff /tmp/x.before - && home_state $X | diff /tmp/x.state -"
layout $U > /tmp/x.ulayout
check x.already-migrated-refused bash -c "! (printf '%s\n' '$UPW' | $CLI migrate-home -u $U > /tmp/x.5 2>&1) && grep -q 'is already an encrypted home' /tmp/x.5 && layout $U | diff /tmp/x.ulayout -"
# last: a small /home (tmpfs over it) where the encrypted copy of a 5 MB home cannot fit
mount -t tmpfs -o size=8m,mode=755 eat-small-home /home
S=eatms; SPW='S-mig-pw-2'; HS=/home/$S
check x.small-home-user bash -c "newuser $S '$SPW' && as $S sh -c 'head -c 5000000 /dev/urandom > $HS/video'"
manifest $HS > /tmp/x.sbefore
no_space_refused() {
  fails_into /tmp/x.6 fed "$SPW" $CLI migrate-home -u $S && file_has /tmp/x.6 'not enough free space for the encrypted copy' 'nothing changed'
}
check x.no-space-refused no_space_refused
cat /tmp/x.6
check x.no-space-nothing-changed bash -c "manifest $HS | diff /tmp/x.sbefore - && [ \"\$(ls -A /home)\" = $S ] && [ ! -e $STATE/$S.json ]"

echo "--- migrate-home output"; cat /tmp/m.out
exit $failed
