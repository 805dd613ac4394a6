# `ecryptfs-agent mount` / `umount` (issue 7) on Debian's kernel, as root, in one fast-mode boot:
# every cipher × key size the kernel offers mounts and round-trips a file; the reference
# `mount -t ecryptfs` (ecryptfs-utils 111) and ours mount each other's directories (aes and
# blowfish, with filename encryption); the sig-cache warning for a new sig and not after recording;
# the interactive dialog through a pty; two mounts sharing one key; bad input changes nothing.
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
# The sigs of these passphrases (default salt), from our key derivation in one node start.
set -- $(node -e "const a=require('$NODE_SRC/auth-tok.js'),k=require('$NODE_SRC/kdf.js');console.log(process.argv.slice(1).map((p)=>a.buildPasswordAuthTok(Buffer.from(p),k.DEFAULT_SALT).sig).join(' '))" "$PW" "$SPW" "$XPW")
SIG=$1 SSIG=$2 XSIG=$3
export SIG SSIG XSIG SPW XPW

# ---------------------------------------------------------------------------------------------
# c. every cipher and key size the kernel offers (asked the way the dialog asks: /proc/crypto
#    plus modprobe crypto-NAME), each mounted by us, a file written (the lower file is ciphertext
#    whose key packet names that cipher), unmounted, mounted again with the same key, read back.
#    Unmounted and remounted with plain umount -i / mount -i to keep the suite fast: our umount
#    and our mount reading existing files have their own checks below.
node -e "
const c = require('$NODE_SRC/ciphers.js'); const k = c.systemKernelCiphers();
for (const d of k.available()) for (const n of c.keyBytesOffered(d, k.load(d.name))) console.log(d.name + ' ' + n);
" > /tmp/offered
check c.kernel-offers-all-six bash -c "[ \"\$(awk '{ printf \"%s:%s \", \$1, \$2 }' /tmp/offered)\" = 'aes:16 aes:32 aes:24 blowfish:16 blowfish:32 blowfish:56 des3_ede:24 twofish:16 twofish:32 cast6:16 cast6:32 cast5:16 ' ]"
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
reference() { mount -t ecryptfs "$2" "$3" -o "key=passphrase:passphrase_passwd_file=/tmp/pw.file,ecryptfs_cipher=$1,ecryptfs_key_bytes=$4,ecryptfs_passthrough=n,ecryptfs_fnek_sig=$SIG,no_sig_cache" < /dev/null; }
export -f reference
for ck in aes:32 blowfish:56; do
  c=${ck%:*}; kb=${ck#*:}; d=$B/interop-$c; mkdir -p $d/l $d/u
  check i.$c-reference-mounts bash -c "reference $c $d/l $d/u $kb > /tmp/i.ref 2>&1 && mounted $d/u && echo 'from the reference' > $d/u/ref-file.txt"
  check i.$c-reference-options bash -c "opts_of $d/u | grep -q 'ecryptfs_fnek_sig=$SIG,ecryptfs_sig=$SIG,ecryptfs_cipher=$c,ecryptfs_key_bytes=$kb,'"
  check i.$c-reference-umount bash -c "umount $d/u && not_mounted $d/u && not_in_u $SIG"
  check i.$c-names-encrypted bash -c "ls $d/l | grep -q '^ECRYPTFS_FNEK_ENCRYPTED\.' && ! ls $d/l | grep -q ref-file"
  check i.$c-ours-reads-reference bash -c "ours $d/l $d/u --cipher $c --key-bytes $kb --no-passthrough --fnek --no-sig-cache > /tmp/i.ours 2>&1 && grep -qx 'from the reference' $d/u/ref-file.txt && echo 'from ours' > $d/u/our-file.txt"
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
check s.new-sig-refused-without-terminal bash -c "! (printf '%s\n' '$SPW' | '$CLI' mount $S/l $S/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --passphrase-stdin > /tmp/s.out 2>&1) && grep -q 'signature $SSIG is not in /root/.ecryptfs/sig-cache.txt' /tmp/s.out && not_mounted $S/u && not_in_u $SSIG && [ ! -e /root/.ecryptfs ]"
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
check s.dialog-menus-shown bash -c "grep -q ' 4) twofish: blocksize = 16; min keysize = 16; max keysize = 32' /tmp/s.dialog && grep -q ' 6) cast5: blocksize = 8; min keysize = 5; max keysize = 16' /tmp/s.dialog && grep -q 'Select key bytes: ' /tmp/s.dialog"
check s.warning-shown bash -c "grep -q 'WARNING: Based on the contents of \[/root/.ecryptfs/sig-cache.txt\],' /tmp/s.dialog && grep -q 'Successfully appended new sig to user sig cache file' /tmp/s.dialog"
check s.dialog-mounted bash -c "mounted $S/u && opts_of $S/u | grep -q 'ecryptfs_sig=$SSIG,ecryptfs_cipher=twofish,ecryptfs_key_bytes=32,' && opts_of $S/u | grep -q 'ecryptfs_fnek_sig=$SSIG'"
check s.recorded-0600 bash -c "[ \"\$(cat /root/.ecryptfs/sig-cache.txt)\" = '$SSIG' ] && [ \"\$(stat -c '%a %s' /root/.ecryptfs/sig-cache.txt)\" = '600 17' ] && [ \"\$(stat -c %a /root/.ecryptfs)\" = 700 ]"
check s.umount bash -c "'$CLI' umount $S/u > /dev/null && not_mounted $S/u && not_in_u $SSIG"
check s.no-warning-after-recording bash -c "printf '%s\n' '$SPW' | '$CLI' mount $S/l $S/u --cipher twofish --key-bytes 32 --no-passthrough --fnek --passphrase-stdin > /tmp/s.again 2>&1 && ! grep -q WARNING /tmp/s.again && mounted $S/u && '$CLI' umount $S/u > /dev/null"
check s.wrong-passphrase-warned bash -c "! (printf 'vm-sig-pass-3\n' | '$CLI' mount $S/l $S/u --cipher twofish --key-bytes 32 --no-passthrough --fnek --passphrase-stdin > /tmp/s.wrong 2>&1) && grep -q 'never mounted with this key before' /tmp/s.wrong && not_mounted $S/u"

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
# p. plaintext passthrough: a plain file put into LOWER reads as it is with it, not without.
P=$B/pass; mkdir -p $P/l $P/u; echo 'plain file' > $P/l/plain.txt
check p.passthrough-reads-plain bash -c "ours $P/l $P/u --cipher aes --key-bytes 16 --passthrough --no-fnek --no-sig-cache > /dev/null && opts_of $P/u | grep -q ecryptfs_passthrough && grep -qx 'plain file' $P/u/plain.txt && umount -i $P/u"
# the control: the same key without passthrough cannot read it (plain mount -i, key still in @u)
check p.without-passthrough-not-readable bash -c "mount -i -t ecryptfs $P/l $P/u -o ecryptfs_sig=$SIG,ecryptfs_cipher=aes,ecryptfs_key_bytes=16 && ! cat $P/u/plain.txt > /dev/null 2>&1; rc=\$?; umount -i $P/u; exit \$rc"
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
check x.already-mounted bash -c "ours $X/l $X/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --no-sig-cache > /dev/null && ! (printf '%s\n' '$PW' | '$CLI' mount $X/l $X/u --cipher aes --key-bytes 16 --no-passthrough --no-fnek --passphrase-stdin --no-sig-cache > /tmp/x.twice 2>&1) && grep -q 'already has an eCryptfs mount' /tmp/x.twice && [ \$(grep -c \" $X/u .* - ecryptfs \" /proc/self/mountinfo) -eq 1 ] && '$CLI' umount $X/u > /dev/null && not_in_u $SIG"
check x.umount-not-ecryptfs bash -c "! '$CLI' umount $X/u > /tmp/x.um 2>&1 && grep -q 'is not an eCryptfs mount' /tmp/x.um"

echo "--- dialog transcript"; cat /tmp/s.dialog
exit $failed
