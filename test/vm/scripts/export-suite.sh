# Export (reading a .Private without the kernel module), guest half, in one fast-mode boot:
# Debian's kernel writes lower directories through `mount -i -t ecryptfs` for every cipher and
# key size below, with and without filename encryption: files of 0..8193 bytes and one of
# 10 MiB + 1 (aes-16 with names encrypted), a sparse file, a 143-byte name, a subdirectory, a
# symlink, modes and a time, and a plaintext file put into the lower directory (read through the
# mount with ecryptfs_passthrough). What the mount shows (sha256 of every file, type, mode,
# mtime, link target) and the lower directory are copied to /vmshare/export; the host half
# (test/vm/export.vm.test.ts) runs `ecryptfs-agent export` on the copies, without any kernel
# module, and compares. Run as root by export.vm.test.ts, which prepends lib.sh and REPO=.

OUT=/vmshare/export
PW='vm-export-mount-passphrase'
SPECS='aes:16 aes:24 aes:32 des3_ede:24 blowfish:16 blowfish:56 cast5:16 twofish:16 cast6:16'
mkdir -p $OUT /tmp/e
check e.modprobe modprobe ecryptfs
keyctl link @u @s > /dev/null 2>&1
printf '%s' "$PW" | ecryptfs-add-passphrase --fnek - > /tmp/keys 2>&1
SIG=$(sed -n '1s/.*\[\([0-9a-f]*\)\].*/\1/p' /tmp/keys) FNEK=$(sed -n '2s/.*\[\([0-9a-f]*\)\].*/\1/p' /tmp/keys)
check e.keys bash -c "[ -n '$SIG' ] && [ -n '$FNEK' ] || cat /tmp/keys"
seq 1 1500000 > /tmp/pattern   # deterministic content, 10.9 MB
LONG=$(printf 'n%.0s' $(seq 1 143))   # the longest name eCryptfs takes with filename encryption
export SIG FNEK LONG OUT

# populate UPPER LOWER BIG: the files above, written through the mount at UPPER
populate() {
  local u=$1 n
  for n in 0 1 4095 4096 4097 8191 8192 8193; do head -c $n /tmp/pattern > "$u/size-$n" || return 1; done
  [ "$3" = 1 ] && { head -c 10485761 /tmp/pattern > "$u/big" || return 1; }
  mkdir "$u/sub" && echo target > "$u/sub/target.txt" && ln -s sub/target.txt "$u/link" || return 1
  head -c 100 /tmp/pattern > "$u/$LONG" || return 1
  truncate -s 30000 "$u/sparse" && printf x | dd of="$u/sparse" bs=1 seek=20000 conv=notrunc 2> /dev/null || return 1
  chmod 0640 "$u/size-1" && chmod 0751 "$u/sub" && touch -d '2001-02-03 04:05:06' "$u/size-4096" || return 1
  printf 'plaintext, not encrypted\n' > "$2/passthrough.txt"
  [ "$(cat "$u/passthrough.txt")" = 'plaintext, not encrypted' ] || { echo "passthrough file not readable through the mount"; return 1; }
}
# record UPPER NAME: what the mount shows, in the form the host half computes it again
record() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > "$OUT/$2.sums" &&
    (cd "$1" && find . -mindepth 1 -printf '%p %y %m %Ts %l\n' | LC_ALL=C sort) > "$OUT/$2.meta"
}
# one CIPHER KEYBYTES fnek|plain BIG: mount, populate, record, unmount, copy the lower directory out
one() {
  local name=$1-$2-$3 d=/tmp/e/$1-$2-$3 o
  mkdir -p $d/l $d/u
  o="ecryptfs_sig=$SIG,ecryptfs_cipher=$1,ecryptfs_key_bytes=$2,ecryptfs_passthrough"
  [ "$3" = fnek ] && o="$o,ecryptfs_fnek_sig=$FNEK"
  mount -i -t ecryptfs $d/l $d/u -o "$o" || return 1
  populate $d/u $d/l "$4" && record $d/u $name || { umount -i $d/u; return 1; }
  umount -i $d/u || return 1
  # the kernel writes a hole as encrypted zero extents: the lower file is whole (8 KiB header + 8 extents)
  local sparse; sparse=$(find $d/l -maxdepth 1 -type f -size +30000c -size -50000c -printf '%s\n' | head -1)
  [ "$sparse" = 40960 ] || { echo "lower size of the sparse file: $sparse, want 40960"; return 1; }
  cp -a $d/l "$OUT/$name.lower"
}
export -f populate record one
for spec in $SPECS; do
  c=${spec%:*} kb=${spec#*:}
  for fn in fnek plain; do
    big=0; [ "$spec/$fn" = aes:16/fnek ] && big=1
    check "e.write-$c-$kb-$fn" one $c $kb $fn $big
  done
done
check e.copied-out bash -c "[ \$(ls -d $OUT/*.lower | wc -l) = 18 ]"
