# `ecryptfs-agent mount` / `umount` (mounting any directory, as root) on Debian's kernel, in one
# fast-mode boot: every cipher × key size the kernel offers mounts and round-trips a file; the
# reference `mount -t ecryptfs` (ecryptfs-utils 111) and ours mount each other's directories (aes
# and blowfish, with filename encryption); the sig-cache warning for a new sig and not after
# recording; the interactive dialog through a pty; two mounts sharing one key; `keys` naming the
# mount that uses a sig and `forget` keeping it (unless --force); `umount --force` detaching a busy
# mount; the two keys of `add-passphrase --fnek` used by plain `mount -i` and by ours; bad input
# changes nothing.
# Run by test/vm/mount.vm.test.ts, which prepends lib.sh and REPO=<repo root>.

modprobe ecryptfs
CLI="$REPO/bin/ecryptfs-agent"
NODE_SRC="$REPO/dist/src"
B=/srv/eat-mount
mkdir -p $B
PW='vm-mount-pass-1'
printf '%s\n' "$PW" > /tmp/pw.line

mounted() { awk -v m="$1" '$5 == m && / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
# the per-superblock options of the eCryptfs mount on $1
opts_of() { awk -v m="$1" '$5 == m && / - ecryptfs / { print $NF }' /proc/self/mountinfo; }
in_u() { keyctl search @u user "$1" > /dev/null 2>&1; }
not_in_u() { ! in_u "$1"; }
ours() { "$CLI" mount "$@" --passphrase-stdin < /tmp/pw.line; }
# OpenPGP cipher code of the file key packet (Tag 3) in an eCryptfs header: byte 26 is 0x8c,
# then a one-byte length, the version 0x04, the cipher code.
header_code() { od -An -tx1 -j26 -N4 "$1" | awk '{ if ($1 == "8c" && $3 == "04") print $4; else print "bad:" $0 }'; }
export -f mounted not_mounted opts_of in_u not_in_u ours header_code
export CLI PW
SPW='vm-sig-pass-2'
XPW='vm-bad-pass-4'
# sigs_of PASSPHRASE...: their sigs (default salt), from our key derivation in one node start
sigs_of() {
  node -e "
const { buildPasswordAuthTok } = require('$NODE_SRC/formats/auth-tok.js');
const { DEFAULT_SALT } = require('$NODE_SRC/formats/kdf.js');
console.log(process.argv.slice(1).map((p) => buildPasswordAuthTok(Buffer.from(p), DEFAULT_SALT).sig).join(' '));
" "$@"
}
set -- $(sigs_of "$PW" "$SPW" "$XPW")
SIG=$1 SSIG=$2 XSIG=$3
export SIG SSIG XSIG SPW XPW

# ---------------------------------------------------------------------------------------------
# c. every cipher and key size the kernel offers (asked the way the dialog asks: /proc/crypto
#    plus modprobe crypto-NAME), each mounted by us, a file written (the lower file is ciphertext
#    whose key packet names that cipher), unmounted, mounted again with the same key, read back.
#    Unmounted and remounted with plain umount -i / mount -i to keep the suite fast: our umount
#    and our mount reading existing files have their own checks below.
node -e "
const c = require('$NODE_SRC/os/ciphers.js'); const k = c.systemKernelCiphers();
for (const d of k.available()) for (const n of c.keyBytesOffered(d, k.load(d.name))) console.log(d.name + ' ' + n);
" > /tmp/offered
ALL_SIX='aes:16 aes:32 aes:24 blowfish:16 blowfish:32 blowfish:56 des3_ede:24 twofish:16 twofish:32 cast6:16 cast6:32 cast5:16 '
check c.kernel-offers-all-six equal_text "$ALL_SIX" "$(awk '{ printf "%s:%s ", $1, $2 }' /tmp/offered)"
declare -A CODE=([aes:16]=07 [aes:24]=08 [aes:32]=09 [blowfish]=04 [des3_ede]=02 [cast5]=03 [twofish]=0a [cast6]=0b)
roundtrip() {
  local c=$1 kb=$2 d=$B/$1-$2 code=${CODE[$1:$2]:-${CODE[$1]}}
  mkdir -p $d/l $d/u
  ours $d/l $d/u --cipher $c --key-bytes $kb --no-passthrough --no-fnek --no-sig-cache > $d/out 2>&1 || { cat $d/out; return 1; }
  opts_of $d/u | grep -q "ecryptfs_sig=$SIG,ecryptfs_cipher=$c,ecryptfs_key_bytes=$kb," || { echo "options: $(opts_of $d/u)"; return 1; }
  { echo "plain text of $c-$kb"; head -c 3000 /dev/urandom | base64; } > $d/u/f.txt
  sha256sum < $d/u/f.txt > $d/sum
  umount -i $d/u && not_mounted $d/u || { echo "still mounted"; return 1; }
  ! grep -q "plain text of" $d/l/f.txt || { echo "lower file is plaintext"; return 1; }
  [ "$(header_code $d/l/f.txt)" = "$code" ] || { echo "header cipher code $(header_code $d/l/f.txt), want $code"; return 1; }
  mount -i -t ecryptfs $d/l $d/u -o ecryptfs_sig=$SIG,ecryptfs_cipher=$c,ecryptfs_key_bytes=$kb || return 1
  sha256sum < $d/u/f.txt | cmp -s - $d/sum || { echo "read back differs"; return 1; }
  umount -i $d/u
}
export -f roundtrip
export B
[ -s /tmp/offered ] || echo 'none 0' > /tmp/offered   # a check that fails rather than none at all
while read -r c kb; do
  check "c.$c-$kb" roundtrip "$c" "$kb"
done < /tmp/offered
keyctl purge user "$SIG" > /dev/null 2>&1   # left by umount -i; the interop checks below need it gone

# ---------------------------------------------------------------------------------------------
# i. interop with the reference `mount -t ecryptfs` (mount.ecryptfs + umount.ecryptfs helpers),
#    non-interactive form, filename encryption with the file key: both directions, aes and blowfish.
printf 'passphrase_passwd=%s\n' "$PW" > /tmp/pw.file
reference() { # reference CIPHER LOWER UPPER KEY-BYTES: mount.ecryptfs with the answers as options
  local key="key=passphrase:passphrase_passwd_file=/tmp/pw.file"
  mount -t ecryptfs "$2" "$3" -o "$key,ecryptfs_cipher=$1,ecryptfs_key_bytes=$4,ecryptfs_passthrough=n,ecryptfs_fnek_sig=$SIG,no_sig_cache" < /dev/null
}
# ours_fnek LOWER UPPER CIPHER KEY-BYTES: our mount with the same answers
ours_fnek() { ours "$1" "$2" --cipher "$3" --key-bytes "$4" --no-passthrough --fnek --no-sig-cache; }
export -f reference ours_fnek
for ck in aes:32 blowfish:56; do
  c=${ck%:*}; kb=${ck#*:}; d=$B/interop-$c; mkdir -p $d/l $d/u
  check i.$c-reference-mounts bash -c "reference $c $d/l $d/u $kb > /tmp/i.ref 2>&1 && mounted $d/u && echo 'from the reference' > $d/u/ref-file.txt"
  check i.$c-reference-options bash -c "opts_of $d/u | grep -q 'ecryptfs_fnek_sig=$SIG,ecryptfs_sig=$SIG,ecryptfs_cipher=$c,ecryptfs_key_bytes=$kb,'"
  check i.$c-reference-umount bash -c "umount $d/u && not_mounted $d/u && not_in_u $SIG"
  check i.$c-names-encrypted bash -c "ls $d/l | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && ! ls $d/l | grep -q ref-file"
  check i.$c-ours-reads-reference bash -c "ours_fnek $d/l $d/u $c $kb > /tmp/i.ours 2>&1 && grep -qx 'from the reference' $d/u/ref-file.txt && echo 'from ours' > $d/u/our-file.txt"
  check i.$c-same-options bash -c "opts_of $d/u | grep -q 'ecryptfs_fnek_sig=$SIG,ecryptfs_sig=$SIG,ecryptfs_cipher=$c,ecryptfs_key_bytes=$kb,'"
  check i.$c-ours-umount bash -c "'$CLI' umount $d/u > /tmp/i.umount 2>&1 && not_mounted $d/u && not_in_u $SIG"
  check i.$c-reference-reads-ours bash -c "reference $c $d/l $d/u $kb > /tmp/i.ref 2>&1 && grep -qx 'from ours' $d/u/our-file.txt && grep -qx 'from the reference' $d/u/ref-file.txt && umount $d/u"
done

# ---------------------------------------------------------------------------------------------
# s. the sig cache (root's ~/.ecryptfs/sig-cache.txt): a new sig is refused without a terminal,
#    the dialog on a pty warns and records, afterwards it does not warn. (That the reference helper
#    reads our records and we read its records is proven on the host: test/host/mount-sig-cache.test.ts.)
S=$B/sig; mkdir -p $S/l $S/u
rm -rf /root/.ecryptfs
new_sig_refused() {
  fails_into /tmp/s.out fed "$SPW" "$CLI" mount $S/l $S/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --passphrase-stdin &&
    file_has /tmp/s.out "signature $SSIG is not in /root/.ecryptfs/sig-cache.txt" && not_mounted $S/u && not_in_u $SSIG && [ ! -e /root/.ecryptfs ]
}
check s.new-sig-refused-without-terminal new_sig_refused
cat > /tmp/dialog.exp <<EXP
set timeout 120
log_user 1
spawn $CLI mount $S/l $S/u
expect "Selection \\\\\[passphrase\\\\\]: " { send "\r" }
expect "Passphrase: " { sleep 1; send "$SPW\r" }
expect "Selection \\\\\[aes\\\\\]: " { send "4\r" }
expect "Selection \\\\\[16\\\\\]: " { send "2\r" }
expect "passthrough (y/n) \\\\\[n\\\\\]: " { send "\r" }
expect "filename encryption (y/n) \\\\\[n\\\\\]: " { send "y\r" }
expect "Signature \\\\\[$SSIG\\\\\]: " { send "\r" }
expect "you have typed your" {} timeout { exit 3 }
expect "proceed with the mount (yes/no)? : " { send "yes\r" }
expect "in the future (yes/no)? : " { send "yes\r" }
expect eof
catch wait result
exit [lindex \$result 3]
EXP
check s.dialog-on-pty bash -c "expect /tmp/dialog.exp > /tmp/s.dialog 2>&1"
check s.dialog-menus-shown file_has -F /tmp/s.dialog ' 4) twofish: blocksize = 16; min keysize = 16; max keysize = 32' \
  ' 6) cast5: blocksize = 8; min keysize = 5; max keysize = 16' 'Select key bytes: '
check s.warning-shown file_has -F /tmp/s.dialog 'WARNING: Based on the contents of [/root/.ecryptfs/sig-cache.txt],' \
  'Successfully appended new sig to user sig cache file'
check s.dialog-mounted bash -c "mounted $S/u && opts_of $S/u | grep -q 'ecryptfs_sig=$SSIG,ecryptfs_cipher=twofish,ecryptfs_key_bytes=32,' && opts_of $S/u | grep -q 'ecryptfs_fnek_sig=$SSIG'"
check s.recorded-0600 equal_text "$SSIG 600 17 700" \
  "$(cat /root/.ecryptfs/sig-cache.txt) $(stat -c '%a %s' /root/.ecryptfs/sig-cache.txt) $(stat -c %a /root/.ecryptfs)"
check s.umount bash -c "'$CLI' umount $S/u > /dev/null && not_mounted $S/u && not_in_u $SSIG"
# twofish_fnek PASSPHRASE: our mount of $S with the dialog's answers above, as flags
twofish_fnek() { fed "$1" "$CLI" mount $S/l $S/u --cipher twofish --key-bytes 32 --no-passthrough --fnek --passphrase-stdin; }
no_warning_after_recording() {
  runs_into /tmp/s.again twofish_fnek "$SPW" && ! grep -q WARNING /tmp/s.again && mounted $S/u && "$CLI" umount $S/u > /dev/null
}
check s.no-warning-after-recording no_warning_after_recording
wrong_passphrase_warned() {
  fails_into /tmp/s.wrong twofish_fnek vm-sig-pass-3 && file_has /tmp/s.wrong 'never mounted with this key before' && not_mounted $S/u
}
check s.wrong-passphrase-warned wrong_passphrase_warned

# ---------------------------------------------------------------------------------------------
# u. two mounts sharing one key: unmounting one keeps the key and the other working; busy refused.
U=$B/shared; mkdir -p $U/l1 $U/u1 $U/l2 $U/u2
check u.mount-first ours $U/l1 $U/u1 --cipher aes --key-bytes 16 --no-passthrough --no-fnek --no-sig-cache
check u.mount-second bash -c "ours $U/l2 $U/u2 --cipher cast6 --key-bytes 16 --no-passthrough --fnek --no-sig-cache > /dev/null && echo one > $U/u1/a.txt && echo two > $U/u2/b.txt"
check u.umount-first-keeps-key bash -c "'$CLI' umount $U/u1 > /tmp/u.out 2>&1 && grep -q 'Kept key $SIG: still used by $U/u2' /tmp/u.out && in_u $SIG && not_mounted $U/u1"
check u.other-still-works bash -c "grep -qx two $U/u2/b.txt && echo three > $U/u2/c.txt && sync && echo 3 > /proc/sys/vm/drop_caches && grep -qx three $U/u2/c.txt && ls $U/u2 | grep -qx c.txt"
( cd $U/u2 && exec sleep 300 ) & holder=$!
sleep 1
check u.busy-refused-names-process bash -c "! '$CLI' umount $U/u2 > /tmp/u.busy 2>&1 && grep -Eq 'root +$holder c +sleep' /tmp/u.busy && mounted $U/u2 && in_u $SIG"
kill $holder; wait $holder 2>/dev/null
check u.umount-last-removes-key bash -c "'$CLI' umount $U/u2 > /tmp/u.out 2>&1 && grep -q \"Removed keys from root's keyring: $SIG\" /tmp/u.out && not_in_u $SIG && not_mounted $U/u2"

# ---------------------------------------------------------------------------------------------
# k. `keys` names the mount that uses each sig; `forget` keeps a sig a mount uses (named, or
#    when forgetting every unused one), `forget --force` unlinks it anyway, and the mount goes on
#    working without it in the keyring (the help: unlinking it does not lock the mount).
K=$B/keys; mkdir -p $K/l $K/u
check k.mount ours $K/l $K/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --no-sig-cache
keys_name_the_mount() { runs_into /tmp/k.keys "$CLI" keys && file_has -E /tmp/k.keys '^SIG +KEY +USED BY$' "^$SIG +[0-9a-f]{8,} +$K/u\$"; }
check k.keys-names-the-mount keys_name_the_mount
forget_refuses_a_used_sig() {
  fails_into /tmp/k.forget "$CLI" forget $SIG && file_has -F /tmp/k.forget "kept $SIG: still used by $K/u (use --force to unlink anyway)" && in_u $SIG
}
check k.forget-refuses-a-used-sig forget_refuses_a_used_sig
check k.forget-unused-keeps-it bash -c "runs_into /tmp/k.unused '$CLI' forget && ! grep -q $SIG /tmp/k.unused && in_u $SIG"
forget_force_unlinks() {
  runs_into /tmp/k.force "$CLI" forget --force $SIG && file_has -F /tmp/k.force "Removed auth tok with sig [$SIG] from the user keyring" && not_in_u $SIG
}
check k.forget-force-unlinks forget_force_unlinks
mount_works_without_key() {
  echo after-forget > $K/u/f.txt && sync && echo 3 > /proc/sys/vm/drop_caches && grep -qx after-forget $K/u/f.txt && mounted $K/u
}
check k.mount-works-without-the-key mount_works_without_key
check k.keys-no-longer-lists-it bash -c "runs_into /tmp/k.keys2 '$CLI' keys && ! grep -q $SIG /tmp/k.keys2"
check k.umount bash -c "'$CLI' umount $K/u > /tmp/k.umount 2>&1 && not_mounted $K/u && not_in_u $SIG"

# ---------------------------------------------------------------------------------------------
# f. `umount --force` detaches a busy mount lazily: gone from the mount table, its key unlinked,
#    and a process that holds a file open under it still reads that file to the end.
F=$B/force; mkdir -p $F/l $F/u
check f.mount bash -c "ours $F/l $F/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --no-sig-cache > /dev/null && echo 'held open' > $F/u/held.txt"
rm -f /tmp/f.go /tmp/f.read
( exec 3< $F/u/held.txt; cd /; while [ ! -e /tmp/f.go ]; do sleep 0.2; done; cat <&3 > /tmp/f.read ) & holder=$!
for _ in $(seq 1 50); do [ -e /proc/$holder/fd/3 ] && break; sleep 0.1; done
busy_refused() { fails_into /tmp/f.busy "$CLI" umount $F/u && file_has /tmp/f.busy "refusing to unmount $F/u" && mounted $F/u && in_u $SIG; }
check f.busy-refused busy_refused
force_detaches() {
  runs_into /tmp/f.force "$CLI" umount --force $F/u &&
    file_has -F /tmp/f.force "Unmounted $F/u (detached lazily" "Removed keys from root's keyring: $SIG"
}
check f.force-detaches-lazily force_detaches
check f.gone-from-mount-table not_mounted $F/u
check f.key-unlinked not_in_u $SIG
touch /tmp/f.go; wait $holder
check f.holder-reads-its-file grep -qx 'held open' /tmp/f.read

# ---------------------------------------------------------------------------------------------
# a. `add-passphrase --fnek` adds the file key and the filename key and prints what
#    ecryptfs-add-passphrase --fnek prints; plain `mount -i -t ecryptfs` mounts with those two
#    keys (names encrypted); our umount keeps them (no ecryptfs_unlink_sigs on that mount); our
#    mount reads the directory back with --fnek-sig naming the added filename key, and its umount
#    unlinks both.
A=$B/addpass; mkdir -p $A/l $A/u; APW='vm-add-pass-5'
add_passphrase_fnek() {
  printf '%s' "$APW" | "$CLI" add-passphrase --fnek - > /tmp/a.ours 2>&1 || { cat /tmp/a.ours; return 1; }
  equal_text 2 "$(grep -c '^Inserted auth tok with sig \[[0-9a-f]\{16\}\] into the user session keyring$' /tmp/a.ours)"
}
check a.add-passphrase-fnek add_passphrase_fnek
added_sig() { sed -n 's/^Inserted auth tok with sig \[\([0-9a-f]*\)\].*/\1/p' /tmp/a.ours | sed -n "$1p"; }
ASIG=$(added_sig 1) AFNEK=$(added_sig 2)
check a.same-lines-as-reference bash -c "printf '%s' '$APW' | ecryptfs-add-passphrase --fnek - > /tmp/a.ref 2>&1 && diff /tmp/a.ref /tmp/a.ours"
both_unused() { runs_into /tmp/a.keys "$CLI" keys && file_has -E /tmp/a.keys "^$ASIG +[0-9a-f]{8,} +\(no mount\)\$" "^$AFNEK +[0-9a-f]{8,} +\(no mount\)\$"; }
check a.keys-lists-both-unused both_unused
mount_i_with_its_keys() {
  mount -i -t ecryptfs $A/l $A/u -o ecryptfs_sig=$ASIG,ecryptfs_fnek_sig=$AFNEK,ecryptfs_cipher=aes,ecryptfs_key_bytes=16 &&
    mounted $A/u && echo 'through mount -i' > "$A/u/a named file.txt"
}
check a.mount-i-with-its-keys mount_i_with_its_keys
check a.names-encrypted bash -c "ls $A/l | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && ! ls $A/l | grep -q named"
both_used() { runs_into /tmp/a.keys2 "$CLI" keys && file_has -E /tmp/a.keys2 "^$ASIG +[0-9a-f]{8,} +$A/u\$" "^$AFNEK +[0-9a-f]{8,} +$A/u\$"; }
check a.keys-names-the-mount-for-both both_used
our_umount_keeps_keys() {
  runs_into /tmp/a.umount "$CLI" umount $A/u && file_has /tmp/a.umount 'Its keys stay in the keyring' && not_mounted $A/u && in_u $ASIG && in_u $AFNEK
}
check a.our-umount-keeps-keys-of-mount-i our_umount_keeps_keys
ours_with_fnek_sig() {
  runs_into /tmp/a.mount fed "$APW" "$CLI" mount $A/l $A/u --cipher aes --key-bytes 16 --no-passthrough --fnek-sig $AFNEK --passphrase-stdin --no-sig-cache &&
    opts_of $A/u | grep -q "ecryptfs_fnek_sig=$AFNEK,ecryptfs_sig=$ASIG," && grep -qx 'through mount -i' "$A/u/a named file.txt"
}
check a.ours-with-fnek-sig-reads-it ours_with_fnek_sig
umount_unlinks_both() {
  runs_into /tmp/a.umount2 "$CLI" umount $A/u && file_has /tmp/a.umount2 "Removed keys from root's keyring: $ASIG, $AFNEK" &&
    not_mounted $A/u && not_in_u $ASIG && not_in_u $AFNEK
}
check a.umount-unlinks-both umount_unlinks_both

# ---------------------------------------------------------------------------------------------
# p. plaintext passthrough: a plain file put into LOWER reads as it is with it, not without.
P=$B/pass; mkdir -p $P/l $P/u; echo 'plain file' > $P/l/plain.txt
passthrough_reads_plain() {
  ours $P/l $P/u --cipher aes --key-bytes 16 --passthrough --no-fnek --no-sig-cache > /dev/null &&
    opts_of $P/u | grep -q ecryptfs_passthrough && grep -qx 'plain file' $P/u/plain.txt && umount -i $P/u
}
check p.passthrough-reads-plain passthrough_reads_plain
# the control: the same key without passthrough cannot read it (plain mount -i, key still in @u)
without_passthrough_not_readable() {
  mount -i -t ecryptfs $P/l $P/u -o ecryptfs_sig=$SIG,ecryptfs_cipher=aes,ecryptfs_key_bytes=16 || return 1
  ! cat $P/u/plain.txt > /dev/null 2>&1; local rc=$?
  umount -i $P/u; return $rc
}
check p.without-passthrough-not-readable without_passthrough_not_readable
keyctl purge user "$SIG" > /dev/null 2>&1

# ---------------------------------------------------------------------------------------------
# x. bad input: a clear message, nothing mounted, no key, no sig recorded.
X=$B/bad; mkdir -p $X/l $X/u; ln -s $X/u $X/link
cache_before=$(sha256sum < /root/.ecryptfs/sig-cache.txt)
refused() { # EXIT-CODE MESSAGE-REGEX ARGS...
  local want=$1 re=$2; shift 2
  printf '%s\n' "$XPW" | "$CLI" mount "$@" --passphrase-stdin --yes > /tmp/x.out 2>&1; local rc=$?
  [ $rc -eq $want ] || { echo "exit $rc, want $want: $(cat /tmp/x.out)"; return 1; }
  grep -Eq "$re" /tmp/x.out || { echo "message: $(cat /tmp/x.out)"; return 1; }
  grep -q '^hint: ' /tmp/x.out || { echo "no hint"; return 1; }
  ! grep ' - ecryptfs ' /proc/self/mountinfo | grep -q "$X" || { echo mounted; return 1; }
  not_in_u $XSIG || { echo "key left"; return 1; }
  [ "$(sha256sum < /root/.ecryptfs/sig-cache.txt)" = "$cache_before" ] || { echo "sig cache changed"; return 1; }
}
export -f refused
export X cache_before
check x.unknown-cipher refused 2 'unknown cipher "serpent"' $X/l $X/u --cipher serpent --key-bytes 16 --no-passthrough --no-fnek
check x.invalid-key-bytes refused 2 '24 key bytes are not valid for twofish: use 16 or 32' $X/l $X/u --cipher twofish --key-bytes 24 --no-passthrough --no-fnek
check x.lower-missing refused 1 'lower directory /srv/eat-mount/bad/nope does not exist' $X/nope $X/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek
check x.upper-symlink refused 1 'link is a symbolic link; the mount point itself must be a real directory' $X/l $X/link --cipher aes --key-bytes 16 --no-passthrough --no-fnek
check x.lower-is-upper refused 2 'the lower directory and the mount point are the same directory' $X/l $X/l --cipher aes --key-bytes 16 --no-passthrough --no-fnek
check x.fnek-key-missing refused 1 'no key with the FNEK signature 0123456789abcdef' $X/l $X/u --cipher aes --key-bytes 16 --no-passthrough --fnek-sig 0123456789abcdef
already_mounted_refused() {
  local aes16="--cipher aes --key-bytes 16 --no-passthrough --no-fnek --no-sig-cache"
  ours $X/l $X/u $aes16 > /dev/null || return 1
  fails_into /tmp/x.twice fed "$PW" "$CLI" mount $X/l $X/u $aes16 --passphrase-stdin && file_has /tmp/x.twice 'already has an eCryptfs mount' &&
    equal_text 1 "$(grep -c " $X/u .* - ecryptfs " /proc/self/mountinfo)" && "$CLI" umount $X/u > /dev/null && not_in_u $SIG
}
check x.already-mounted already_mounted_refused
check x.umount-not-ecryptfs bash -c "! '$CLI' umount $X/u > /tmp/x.um 2>&1 && grep -q 'is not an eCryptfs mount' /tmp/x.um"

echo "--- dialog transcript"; cat /tmp/s.dialog
exit $failed
