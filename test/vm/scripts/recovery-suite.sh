# Recovery (issue 7) and doctor's kernel/swap findings, on Debian's kernel, in one fast-mode boot.
# ~/.Private directories made by ecryptfs-setup-private (FNEK and not) and by our setup-private are
# copied (cp -a) to another disk and recovered with `ecryptfs-agent recover`, with the mount
# passphrase (as printed by `ecryptfs-agent recovery`, which must equal ecryptfs-unwrap-passphrase)
# and with the wrapped file + login password; files read back equal; read-only by default; wrong
# passphrases mount nothing and leave no key; `recover --unmount` cleans up. doctor: a missing
# eCryptfs module fails, a loadable one warns, plain swap fails, zram and no swap pass.
# Run as root inside the fast-mode VM by test/vm/recovery.vm.test.ts, which prepends
# test/vm/scripts/lib.sh and REPO=<repo root>. Prints "CHECK <name> ok|FAIL <why>" per step.

CLI="$REPO/bin/ecryptfs-agent"
MODDIR=/lib/modules/$(uname -r)
DISK=/mnt/otherdisk
newuser() { useradd -m -s /bin/bash "$1" && echo "$1:$2" | chpasswd; }
no_ecryptfs_mounts() { ! grep -q ' - ecryptfs ' /proc/self/mountinfo; }
root_has_key() { keyctl search @u user "$1" > /dev/null 2>&1; }
no_root_keys() { ! keyctl rlist @u 2>/dev/null | grep -q .; }
no_recover_dirs() { ! ls -d /tmp/ecryptfs-recover-* > /dev/null 2>&1; }
nothing_left() { no_ecryptfs_mounts && no_root_keys && no_recover_dirs; }
# the mount point `recover` printed in FILE
mp_of() { sed -n 's/^Recovered .*: mounted [A-Za-z-]* on //p' "$1"; }
# "ro" or "rw": the per-mount options of the mount at $1
mount_mode() { awk -v m="$1" '$5 == m { split($6, o, ","); print o[1] }' /proc/self/mountinfo; }
# sha256 of every file under $1, by relative path
sums() { [ -n "$1" ] && [ -d "$1" ] && (cd "$1" && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum); }
# same_files DIR SUMS: the files under DIR are those listed (and hashed) in the non-empty file SUMS
same_files() { [ -s "$2" ] && sums "$1" > /tmp/sums.now && cmp /tmp/sums.now "$2"; }
# show FILE...: prints them into the check's output (for a failing check), then fails
show() { cat "$@" 2> /dev/null; false; }
export -f as no_ecryptfs_mounts root_has_key no_root_keys no_recover_dirs nothing_left mp_of mount_mode sums same_files show

# ---------------------------------------------------------------------------------------------
# k. doctor and a missing eCryptfs module, before anything loads it. doctor reads modules.dep
#    (and modules.builtin); the module file is hidden from modprobe with an empty bind mount.
check k.not-loaded-at-boot bash -c "! grep -qw ecryptfs /proc/filesystems && [ ! -e /sys/fs/ecryptfs/version ]"
mkdir -p /tmp/empty && mount --bind /tmp/empty "$MODDIR/kernel/fs/ecryptfs"
check k.modprobe-fails-when-hidden bash -c "! modprobe ecryptfs"
$CLI doctor > /tmp/k.file-missing 2>&1; rc=$?
check k.file-missing-fails bash -c "[ $rc -eq 1 ] && grep -q '^\[FAIL\] kernel.ecryptfs: eCryptfs module missing: modules.dep of kernel .* lists .*/ecryptfs.ko, but the file is not there' /tmp/k.file-missing && grep -A1 '^\[FAIL\] kernel.ecryptfs' /tmp/k.file-missing | grep -q 'fix: Reinstall the kernel'"
grep -v '/ecryptfs\.ko:' "$MODDIR/modules.dep" > /tmp/modules.dep && mount --bind /tmp/modules.dep "$MODDIR/modules.dep"
$CLI doctor > /tmp/k.absent 2>&1; rc=$?
check k.absent-fails bash -c "[ $rc -eq 1 ] && grep -q '^\[FAIL\] kernel.ecryptfs: eCryptfs module missing: kernel .* cannot mount eCryptfs (not in /proc/filesystems, no ecryptfs.ko)' /tmp/k.absent"
# recover without eCryptfs in the kernel: a clear error, nothing left (the kernel-made fixture, see test/fixtures/recovery)
FXPASS='fixture-mount-passphrase-0123456789'
node -e '
  const fs = require("fs"), z = require("zlib"), p = require("path");
  const o = JSON.parse(fs.readFileSync(process.argv[1], "utf8")), lower = process.argv[2];
  fs.mkdirSync(lower, { recursive: true });
  for (const e of o.entries) e.type === "dir" ? fs.mkdirSync(p.join(lower, e.path)) : fs.writeFileSync(p.join(lower, e.path), z.gunzipSync(Buffer.from(e.gzipBase64, "base64")));
' "$REPO/test/fixtures/recovery/lower-fnek.json" /tmp/fx/.Private
check k.recover-without-module-fails bash -c "! (echo '$FXPASS' | $CLI recover -m /tmp/fx > /tmp/k.recover 2>&1) && grep -q 'this kernel has no eCryptfs (ENODEV); nothing changed' /tmp/k.recover && nothing_left"
umount "$MODDIR/modules.dep"; umount "$MODDIR/kernel/fs/ecryptfs"
$CLI doctor > /tmp/k.loadable 2>&1
check k.loadable-warns grep -q '^\[WARN\] kernel.ecryptfs: eCryptfs is not loaded, but kernel .* has the module' /tmp/k.loadable
check k.modprobe modprobe ecryptfs

# f. the kernel-made fixture, recovered by its mount passphrase: contents as written in the VM that made it
check f.recover bash -c "echo '$FXPASS' | $CLI recover -m /tmp/fx > /tmp/f.out 2>&1 || show /tmp/f.out"
FMP=$(mp_of /tmp/f.out)
check f.contents bash -c "[ \"\$(cat '$FMP/hello.txt')\" = 'hello recovery' ] && [ \$(sha256sum < '$FMP/sub/random.bin' | cut -c1-64) = d20eb069d336a50abc7e0c0e4cd429ca1aff86847eca7c4a04ff36a62cd42b50 ]"
check f.unmount bash -c "$CLI recover --unmount '$FMP' && nothing_left"

# The other disk: an ext4 image on a loop device.
modprobe loop; modprobe ext4
truncate -s 96M /tmp/otherdisk.img && mkfs.ext4 -q -F /tmp/otherdisk.img && mkdir -p $DISK && mount -o loop /tmp/otherdisk.img $DISK
check o.other-disk bash -c "awk -v m=$DISK '\$5 == m' /proc/self/mountinfo | grep -q ' - ext4 '"

# ---------------------------------------------------------------------------------------------
# a. ecryptfs-setup-private (FNEK): files written through the reference tools, `recovery` == ecryptfs-unwrap-passphrase.
A=eatra; APW='A-login-pw 1'; HA=/home/$A
check a.useradd newuser $A "$APW"
check a.setup-private su - $A -c "ecryptfs-setup-private --nopwcheck -l '$APW' </dev/null"
check a.fnek bash -c "[ \$(wc -l < $HA/.ecryptfs/Private.sig) -eq 2 ]"
check a.write-files as $A keyctl session - sh -c "keyctl link @u @s && printf '%s' '$APW' | ecryptfs-insert-wrapped-passphrase-into-keyring $HA/.ecryptfs/wrapped-passphrase - && /sbin/mount.ecryptfs_private && mkdir -p '$HA/Private/my docs' && printf 'letter from A\n' > '$HA/Private/my docs/letter.txt' && head -c 20000 /dev/urandom > $HA/Private/data.bin && cd $HA/Private && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum > /tmp/a.sums && cd / && /sbin/umount.ecryptfs_private"
check a.names-encrypted bash -c "ls $HA/.Private | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && [ \$(wc -l < /tmp/a.sums) -eq 2 ]"
check a.recovery-equals-unwrap bash -c "printf '%s\n' '$APW' | as $A $CLI recovery > /tmp/a.recovery 2> /tmp/a.recovery.err && printf '%s' '$APW' | as $A ecryptfs-unwrap-passphrase $HA/.ecryptfs/wrapped-passphrase - > /tmp/a.unwrap && cmp /tmp/a.recovery /tmp/a.unwrap && grep -qxE '[0-9a-f]{32}' /tmp/a.recovery && grep -q OFFLINE /tmp/a.recovery.err || show /tmp/a.recovery.err"
APASS=$(cat /tmp/a.recovery)
check a.copy-to-other-disk bash -c "mkdir $DISK/a && cp -a $HA/.Private $HA/.ecryptfs $DISK/a/ && rm -rf $HA"

check a.recover-wrapped bash -c "echo '$APW' | $CLI recover $DISK/a/.Private > /tmp/a.1 2>&1 || show /tmp/a.1"
AMP=$(mp_of /tmp/a.1)
check a.read-only-by-default bash -c "[ \"\$(mount_mode '$AMP')\" = ro ] && ! touch '$AMP/new' 2> /tmp/a.touch && grep -q 'Read-only file system' /tmp/a.touch"
check a.files-equal same_files "$AMP" /tmp/a.sums
check a.root-only-dir bash -c "[ \"\$(stat -c '%a %U' \$(dirname '$AMP'))\" = '700 root' ]"
check a.keys-in-root-keyring bash -c "root_has_key \$(sed -n 1p $DISK/a/.ecryptfs/Private.sig) && root_has_key \$(sed -n 2p $DISK/a/.ecryptfs/Private.sig)"
check a.again-says-mounted bash -c "echo unused | $CLI recover $DISK/a > /tmp/a.2 2>&1 && grep -q 'is already mounted on $AMP; nothing changed' /tmp/a.2 && [ \$(grep -c ' - ecryptfs ' /proc/self/mountinfo) -eq 1 ]"
( cd "$AMP" && exec sleep 300 ) & holder=$!
sleep 1
check a.unmount-refused-while-in-use bash -c "! $CLI recover --unmount '$AMP' > /tmp/a.busy 2>&1 && grep -q 'is in use; nothing changed' /tmp/a.busy && grep -Eq 'root +$holder +c +sleep' /tmp/a.busy && [ \"\$(mount_mode '$AMP')\" = ro ]"
kill $holder; wait $holder 2> /dev/null
check a.unmount-cleans-up bash -c "$CLI recover --unmount '$AMP' > /tmp/a.3 2>&1 && grep -q '^Unmounted $AMP; removed keys .* from root.s keyring; removed /tmp/ecryptfs-recover-' /tmp/a.3 && nothing_left"
check a.recover-mount-passphrase bash -c "echo '$APASS' | $CLI recover --mount-passphrase $DISK/a > /tmp/a.4 2>&1 && same_files \"\$(mp_of /tmp/a.4)\" /tmp/a.sums && $CLI recover --unmount \"\$(mp_of /tmp/a.4)\" && nothing_left || show /tmp/a.4"
check a.wrong-mount-passphrase bash -c "! (echo '0123456789abcdef0123456789abcdef' | $CLI recover -m $DISK/a > /tmp/a.6 2>&1) && grep -q 'wrong mount passphrase for $DISK/a/.Private' /tmp/a.6 && nothing_left || show /tmp/a.6"

# b. ecryptfs-setup-private --no-fnek; only .Private copied: the key is the mount passphrase, no FNEK (names in clear)
B=eatrb; BPW='B-login-pw-2'; HB=/home/$B
check b.useradd newuser $B "$BPW"
check b.setup-private su - $B -c "ecryptfs-setup-private --nopwcheck -n -l '$BPW' </dev/null"
check b.write-files as $B keyctl session - sh -c "keyctl link @u @s && printf '%s' '$BPW' | ecryptfs-insert-wrapped-passphrase-into-keyring $HB/.ecryptfs/wrapped-passphrase - && /sbin/mount.ecryptfs_private && mkdir $HB/Private/sub && printf 'from B\n' > $HB/Private/sub/b.txt && head -c 9000 /dev/urandom > $HB/Private/b.bin && cd $HB/Private && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum > /tmp/b.sums && cd / && /sbin/umount.ecryptfs_private"
check b.recovery-equals-unwrap bash -c "printf '%s\n' '$BPW' | as $B $CLI recovery > /tmp/b.recovery 2> /tmp/b.recovery.err && printf '%s' '$BPW' | as $B ecryptfs-unwrap-passphrase $HB/.ecryptfs/wrapped-passphrase - | cmp - /tmp/b.recovery || show /tmp/b.recovery.err"
check b.copy-lower-only bash -c "mkdir $DISK/b && cp -a $HB/.Private $DISK/b/ && [ -e $DISK/b/.Private/sub/b.txt ]"
check b.recover-no-fnek bash -c "$CLI recover $DISK/b/.Private < /tmp/b.recovery > /tmp/b.1 2>&1 && grep -q 'file names not encrypted (judged by the names in the directory)' /tmp/b.1 && grep -q 'No wrapped-passphrase file next to' /tmp/b.1 || show /tmp/b.1"
check b.files-equal bash -c "same_files \"\$(mp_of /tmp/b.1)\" /tmp/b.sums"
check b.unmount bash -c "$CLI recover --unmount \"\$(mp_of /tmp/b.1)\" && nothing_left"

# ---------------------------------------------------------------------------------------------
# c. our setup-private (root -u, FNEK), files written through our unlock; the whole home copied; --rw.
use_our_module
C=eatrc; CPW='C-login-pw-3'; HC=/home/$C
check c.useradd newuser $C "$CPW"
check c.setup-private bash -c "printf '%s\n' '$CPW' | $CLI setup-private -u $C > /tmp/c.setup 2>&1 || show /tmp/c.setup"
check c.unlock bash -c "echo '$CPW' | $CLI unlock -u $C"
check c.write-files bash -c "as $C sh -c \"printf 'from C\\n' > $HC/Private/c.txt && head -c 5000 /dev/urandom > $HC/Private/c.bin\" && sums $HC/Private > /tmp/c.sums && [ \$(wc -l < /tmp/c.sums) -eq 2 ]"
check c.unmount-refuses-a-users-private bash -c "! $CLI recover --unmount $HC/Private > /tmp/c.refused 2>&1 && grep -q \"a user's private directory (mounted with ecryptfs_unlink_sigs)\" /tmp/c.refused && grep -q ' - ecryptfs ' /proc/self/mountinfo"
check c.lock bash -c "$CLI lock -u $C && no_ecryptfs_mounts"
check c.copy-home bash -c "cp -a $HC $DISK/c"
check c.recover-rw bash -c "echo '$CPW' | $CLI recover --rw $DISK/c > /tmp/c.1 2>&1 && grep -q 'mounted READ-WRITE' /tmp/c.1 || show /tmp/c.1"
CMP=$(mp_of /tmp/c.1)
check c.files-equal same_files "$CMP" /tmp/c.sums
check c.rw-writes bash -c "[ \"\$(mount_mode '$CMP')\" = rw ] && echo added > '$CMP/added.txt' && ls $DISK/c/.Private | grep -c '^ECRYPTFS_FNEK_ENCRYPTED\.' | grep -qx 3"
check c.unmount bash -c "$CLI recover --unmount '$CMP' && nothing_left"
check c.written-file-kept bash -c "echo '$CPW' | $CLI recover $DISK/c/.Private > /tmp/c.2 2>&1 && [ \"\$(cat \"\$(mp_of /tmp/c.2)/added.txt\")\" = added ] && $CLI recover --unmount \"\$(mp_of /tmp/c.2)\" && nothing_left"
check c.disk-is-not-a-private bash -c "! (echo x | $CLI recover $DISK > /tmp/c.3 2>&1) && grep -Eq 'is not an encrypted directory, but holds some further down: .*$DISK/a/.Private' /tmp/c.3 && grep -q '$DISK/c/.Private' /tmp/c.3 && nothing_left || show /tmp/c.3"

# ---------------------------------------------------------------------------------------------
# s. doctor and swap: none → ok; an unencrypted swap file → fail with the fix; zram → ok; all well → exit 0.
$CLI doctor > /tmp/s.none 2>&1
check s.no-swap-ok grep -q '^\[ok  \] swap: no swap in use' /tmp/s.none
dd if=/dev/zero of=$DISK/swapfile bs=1M count=16 status=none && chmod 600 $DISK/swapfile && mkswap -q $DISK/swapfile > /dev/null && swapon $DISK/swapfile
$CLI doctor > /tmp/s.file 2>&1; rc=$?
check s.swap-file-fails bash -c "grep -q '$DISK/swapfile' /proc/swaps && [ $rc -eq 1 ] && grep -q '^\[FAIL\] swap: swap $DISK/swapfile is not encrypted' /tmp/s.file && grep -A1 '^\[FAIL\] swap' /tmp/s.file | grep -q 'fix: Encrypt it with a random key per boot: in /etc/crypttab'"
swapoff $DISK/swapfile
check s.zram modprobe zram
echo 32M > /sys/block/zram0/disksize && mkswap -q /dev/zram0 > /dev/null && swapon /dev/zram0
$CLI doctor > /tmp/s.zram 2>&1; rc=$?
check s.zram-ok-all-well bash -c "grep -q '^/dev/zram0' /proc/swaps && grep -q '^\[ok  \] swap: /dev/zram0 is zram' /tmp/s.zram && grep -q '^\[ok  \] kernel.ecryptfs' /tmp/s.zram && [ $rc -eq 0 ] && ! grep -q '^\[FAIL\]' /tmp/s.zram"
swapoff /dev/zram0

echo "--- doctor, module file missing"; cat /tmp/k.file-missing
echo "--- doctor, swap file"; grep -A1 'swap' /tmp/s.file
echo "--- recover output"; cat /tmp/a.1
echo "--- memory"; free -m
exit $failed
