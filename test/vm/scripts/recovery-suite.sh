# Recovery (reading a ~/.Private copied from another disk) and doctor's kernel/swap findings, on
# Debian's kernel, in one fast-mode boot.
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
# recovery_is_unwrap USER PASSWORD OUT: `ecryptfs-agent recovery` as USER prints into OUT (its
# stderr into OUT.err) exactly what ecryptfs-unwrap-passphrase prints for the user's wrapped file
recovery_is_unwrap() {
  local home; home=$(getent passwd "$1" | cut -d: -f6)
  fed "$2" as "$1" $CLI recovery > "$3" 2> "$3.err" &&
    printf '%s' "$2" | as "$1" ecryptfs-unwrap-passphrase "$home/.ecryptfs/wrapped-passphrase" - | cmp - "$3" || show "$3.err"
}
# private_sums HOME OUT: a command (for the user) that hashes the files of HOME/Private into OUT, as sums does
private_sums() { echo "cd $1/Private && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum > $2"; }
export -f as no_ecryptfs_mounts root_has_key no_root_keys no_recover_dirs nothing_left mp_of mount_mode sums same_files show

# ---------------------------------------------------------------------------------------------
# k. doctor and a missing eCryptfs module, before anything loads it. doctor reads modules.dep
#    (and modules.builtin); the module file is hidden from modprobe with an empty bind mount.
check k.not-loaded-at-boot bash -c "! grep -qw ecryptfs /proc/filesystems && [ ! -e /sys/fs/ecryptfs/version ]"
mkdir -p /tmp/empty && mount --bind /tmp/empty "$MODDIR/kernel/fs/ecryptfs"
check k.modprobe-fails-when-hidden bash -c "! modprobe ecryptfs"
$CLI doctor > /tmp/k.file-missing 2>&1; rc=$?
file_missing_fails() {
  equal_text 1 "$rc" && file_has /tmp/k.file-missing \
    '^\[FAIL\] kernel.ecryptfs: eCryptfs module missing: modules.dep of kernel .* lists .*/ecryptfs.ko, but the file is not there' &&
    grep -A1 '^\[FAIL\] kernel.ecryptfs' /tmp/k.file-missing | grep -q 'fix: Reinstall the kernel'
}
check k.file-missing-fails file_missing_fails
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
recover_without_module_fails() {
  fails_into /tmp/k.recover fed "$FXPASS" $CLI recover -m /tmp/fx && file_has /tmp/k.recover 'this kernel has no eCryptfs (ENODEV); nothing changed' && nothing_left
}
check k.recover-without-module-fails recover_without_module_fails
umount "$MODDIR/modules.dep"; umount "$MODDIR/kernel/fs/ecryptfs"
$CLI doctor > /tmp/k.loadable 2>&1
check k.loadable-warns grep -q '^\[WARN\] kernel.ecryptfs: eCryptfs is not loaded, but kernel .* has the module' /tmp/k.loadable
check k.modprobe modprobe ecryptfs

# f. the kernel-made fixture, recovered by its mount passphrase: contents as written in the VM that made it
check f.recover bash -c "echo '$FXPASS' | $CLI recover -m /tmp/fx > /tmp/f.out 2>&1 || show /tmp/f.out"
FMP=$(mp_of /tmp/f.out)
RANDOM_BIN_SHA=d20eb069d336a50abc7e0c0e4cd429ca1aff86847eca7c4a04ff36a62cd42b50
check f.contents equal_text "hello recovery $RANDOM_BIN_SHA" "$(cat "$FMP/hello.txt") $(sha256sum < "$FMP/sub/random.bin" | cut -c1-64)"
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
A_FILES="mkdir -p '$HA/Private/my docs' && printf 'letter from A\n' > '$HA/Private/my docs/letter.txt' && head -c 20000 /dev/urandom > $HA/Private/data.bin"
check a.write-files with_reference_private $A "$APW" "$A_FILES && $(private_sums $HA /tmp/a.sums)"
check a.names-encrypted bash -c "ls $HA/.Private | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && [ \$(wc -l < /tmp/a.sums) -eq 2 ]"
a_recovery() { recovery_is_unwrap $A "$APW" /tmp/a.recovery && file_has -E /tmp/a.recovery '^[0-9a-f]{32}$' && file_has /tmp/a.recovery.err OFFLINE; }
check a.recovery-equals-unwrap a_recovery
APASS=$(cat /tmp/a.recovery)
check a.copy-to-other-disk bash -c "mkdir $DISK/a && cp -a $HA/.Private $HA/.ecryptfs $DISK/a/ && rm -rf $HA"

check a.recover-wrapped bash -c "echo '$APW' | $CLI recover $DISK/a/.Private > /tmp/a.1 2>&1 || show /tmp/a.1"
AMP=$(mp_of /tmp/a.1)
check a.read-only-by-default bash -c "[ \"\$(mount_mode '$AMP')\" = ro ] && ! touch '$AMP/new' 2> /tmp/a.touch && grep -q 'Read-only file system' /tmp/a.touch"
check a.files-equal same_files "$AMP" /tmp/a.sums
check a.root-only-dir bash -c "[ \"\$(stat -c '%a %U' \$(dirname '$AMP'))\" = '700 root' ]"
check a.keys-in-root-keyring bash -c "root_has_key \$(sed -n 1p $DISK/a/.ecryptfs/Private.sig) && root_has_key \$(sed -n 2p $DISK/a/.ecryptfs/Private.sig)"
again_says_mounted() {
  fed unused $CLI recover $DISK/a > /tmp/a.2 2>&1 && file_has /tmp/a.2 "is already mounted on $AMP; nothing changed" &&
    equal_text 1 "$(grep -c ' - ecryptfs ' /proc/self/mountinfo)"
}
check a.again-says-mounted again_says_mounted
( cd "$AMP" && exec sleep 300 ) & holder=$!
sleep 1
unmount_refused_in_use() {
  fails_into /tmp/a.busy $CLI recover --unmount "$AMP" && file_has /tmp/a.busy 'is in use; nothing changed' &&
    file_has -E /tmp/a.busy "root +$holder +c +sleep" && equal_text ro "$(mount_mode "$AMP")"
}
check a.unmount-refused-while-in-use unmount_refused_in_use
kill $holder; wait $holder 2> /dev/null
unmount_cleans_up() {
  runs_into /tmp/a.3 $CLI recover --unmount "$AMP" &&
    file_has /tmp/a.3 "^Unmounted $AMP; removed keys .* from root.s keyring; removed /tmp/ecryptfs-recover-" && nothing_left
}
check a.unmount-cleans-up unmount_cleans_up
recover_mount_passphrase() {
  fed "$APASS" $CLI recover --mount-passphrase $DISK/a > /tmp/a.4 2>&1 && same_files "$(mp_of /tmp/a.4)" /tmp/a.sums &&
    $CLI recover --unmount "$(mp_of /tmp/a.4)" && nothing_left || show /tmp/a.4
}
check a.recover-mount-passphrase recover_mount_passphrase
wrong_mount_passphrase() {
  fails_into /tmp/a.6 fed 0123456789abcdef0123456789abcdef $CLI recover -m $DISK/a &&
    file_has /tmp/a.6 "wrong mount passphrase for $DISK/a/.Private" && nothing_left || show /tmp/a.6
}
check a.wrong-mount-passphrase wrong_mount_passphrase

# b. ecryptfs-setup-private --no-fnek; only .Private copied: the key is the mount passphrase, no FNEK (names in clear)
B=eatrb; BPW='B-login-pw-2'; HB=/home/$B
check b.useradd newuser $B "$BPW"
check b.setup-private su - $B -c "ecryptfs-setup-private --nopwcheck -n -l '$BPW' </dev/null"
B_FILES="mkdir $HB/Private/sub && printf 'from B\n' > $HB/Private/sub/b.txt && head -c 9000 /dev/urandom > $HB/Private/b.bin"
check b.write-files with_reference_private $B "$BPW" "$B_FILES && $(private_sums $HB /tmp/b.sums)"
check b.recovery-equals-unwrap recovery_is_unwrap $B "$BPW" /tmp/b.recovery
check b.copy-lower-only bash -c "mkdir $DISK/b && cp -a $HB/.Private $DISK/b/ && [ -e $DISK/b/.Private/sub/b.txt ]"
recover_no_fnek() {
  $CLI recover $DISK/b/.Private < /tmp/b.recovery > /tmp/b.1 2>&1 &&
    file_has /tmp/b.1 'file names not encrypted (judged by the names in the directory)' 'No wrapped-passphrase file next to' || show /tmp/b.1
}
check b.recover-no-fnek recover_no_fnek
check b.files-equal bash -c "same_files \"\$(mp_of /tmp/b.1)\" /tmp/b.sums"
check b.unmount bash -c "$CLI recover --unmount \"\$(mp_of /tmp/b.1)\" && nothing_left"

# ---------------------------------------------------------------------------------------------
# c. our setup-private (root -u, FNEK), files written through our unlock; the whole home copied; --rw.
use_our_module
C=eatrc; CPW='C-login-pw-3'; HC=/home/$C
check c.useradd newuser $C "$CPW"
check c.setup-private bash -c "printf '%s\n' '$CPW' | $CLI setup-private -u $C > /tmp/c.setup 2>&1 || show /tmp/c.setup"
check c.unlock bash -c "echo '$CPW' | $CLI unlock -u $C"
c_write_files() {
  as $C sh -c "printf 'from C\n' > $HC/Private/c.txt && head -c 5000 /dev/urandom > $HC/Private/c.bin" &&
    sums $HC/Private > /tmp/c.sums && equal_text 2 "$(wc -l < /tmp/c.sums)"
}
check c.write-files c_write_files
refuses_a_users_private() {
  fails_into /tmp/c.refused $CLI recover --unmount $HC/Private &&
    file_has /tmp/c.refused "a user's private directory (mounted with ecryptfs_unlink_sigs)" && grep -q ' - ecryptfs ' /proc/self/mountinfo
}
check c.unmount-refuses-a-users-private refuses_a_users_private
check c.lock bash -c "$CLI lock -u $C && no_ecryptfs_mounts"
check c.copy-home bash -c "cp -a $HC $DISK/c"
check c.recover-rw bash -c "echo '$CPW' | $CLI recover --rw $DISK/c > /tmp/c.1 2>&1 && grep -q 'mounted READ-WRITE' /tmp/c.1 || show /tmp/c.1"
CMP=$(mp_of /tmp/c.1)
check c.files-equal same_files "$CMP" /tmp/c.sums
check c.rw-writes bash -c "[ \"\$(mount_mode '$CMP')\" = rw ] && echo added > '$CMP/added.txt' && ls $DISK/c/.Private | grep -c '^ECRYPTFS_FNEK_ENCRYPTED\.' | grep -qx 3"
check c.unmount bash -c "$CLI recover --unmount '$CMP' && nothing_left"
written_file_kept() {
  fed "$CPW" $CLI recover $DISK/c/.Private > /tmp/c.2 2>&1 && equal_text added "$(cat "$(mp_of /tmp/c.2)/added.txt")" &&
    $CLI recover --unmount "$(mp_of /tmp/c.2)" && nothing_left
}
check c.written-file-kept written_file_kept
disk_is_not_a_private() {
  fails_into /tmp/c.3 fed x $CLI recover $DISK &&
    file_has -E /tmp/c.3 "is not an encrypted directory, but holds some further down: .*$DISK/a/.Private" &&
    file_has /tmp/c.3 "$DISK/c/.Private" && nothing_left || show /tmp/c.3
}
check c.disk-is-not-a-private disk_is_not_a_private

# ---------------------------------------------------------------------------------------------
# s. doctor and swap: none → ok; an unencrypted swap file → fail with the fix; zram → ok; all well → exit 0.
$CLI doctor > /tmp/s.none 2>&1
check s.no-swap-ok grep -q '^\[ok  \] swap: no swap in use' /tmp/s.none
dd if=/dev/zero of=$DISK/swapfile bs=1M count=16 status=none && chmod 600 $DISK/swapfile && mkswap -q $DISK/swapfile > /dev/null && swapon $DISK/swapfile
$CLI doctor > /tmp/s.file 2>&1; rc=$?
swap_file_fails() {
  grep -q "$DISK/swapfile" /proc/swaps && equal_text 1 "$rc" && file_has /tmp/s.file "^\[FAIL\] swap: swap $DISK/swapfile is not encrypted" &&
    grep -A1 '^\[FAIL\] swap' /tmp/s.file | grep -q 'fix: Encrypt it with a random key per boot: in /etc/crypttab'
}
check s.swap-file-fails swap_file_fails
swapoff $DISK/swapfile
check s.zram modprobe zram
echo 32M > /sys/block/zram0/disksize && mkswap -q /dev/zram0 > /dev/null && swapon /dev/zram0
$CLI doctor > /tmp/s.zram 2>&1; rc=$?
zram_ok_all_well() {
  grep -q '^/dev/zram0' /proc/swaps && file_has /tmp/s.zram '^\[ok  \] swap: /dev/zram0 is zram' '^\[ok  \] kernel.ecryptfs' &&
    equal_text 0 "$rc" && ! grep -q '^\[FAIL\]' /tmp/s.zram
}
check s.zram-ok-all-well zram_ok_all_well
swapoff /dev/zram0

echo "--- doctor, module file missing"; cat /tmp/k.file-missing
echo "--- doctor, swap file"; grep -A1 'swap' /tmp/s.file
echo "--- recover output"; cat /tmp/a.1
echo "--- memory"; free -m
exit $failed
