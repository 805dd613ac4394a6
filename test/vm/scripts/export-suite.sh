# Export (reading a .Private without the kernel module), guest half, in one fast-mode boot:
# Debian's kernel writes lower directories through `mount -i -t ecryptfs` for every cipher and
# key size below, with and without filename encryption: files of 0..8193 bytes and one of
# 10 MiB + 1 (aes-16 with names encrypted), a sparse file, a 143-byte name, a subdirectory, a
# symlink, modes and a time, and (names not encrypted) a plaintext file put into the lower
# directory (read through the mount with ecryptfs_passthrough). What the mount shows (sha256 of every file, type, mode,
# mtime, link target) and the lower directory are copied to /vmshare/export; the host half
# (test/vm/export.vm.test.ts) runs `ecryptfs-agent export` on the copies, without any kernel
# module, and compares. Then (o) migrate-out --to plain of a reference setup whose files the
# kernel wrote through a login. Run as root by export.vm.test.ts, which prepends lib.sh and REPO=.

OUT=/vmshare/export
PW='vm-export-mount-passphrase'
SPECS='aes:16 aes:24 aes:32 des3_ede:24 blowfish:16 blowfish:56 cast5:16 twofish:16 cast6:16'
mkdir -p $OUT /tmp/e
check e.modprobe modprobe ecryptfs
keyctl link @u @s > /dev/null 2>&1
# the two auth toks of $PW, made on the host (SIG, FNEK, FEK_TOK, FNEK_TOK prepended by the test):
# two KDFs under TCG would cost seconds; ecryptfs-add-passphrase --fnek gives the same sigs (mount suite)
add_toks() { echo "$FEK_TOK" | base64 -d | keyctl padd user "$SIG" @u && echo "$FNEK_TOK" | base64 -d | keyctl padd user "$FNEK" @u; }
check e.keys add_toks
seq 1 1500000 > /tmp/pattern   # deterministic content, 10.9 MB
LONG=$(printf 'n%.0s' $(seq 1 143))   # the longest name eCryptfs takes with filename encryption
export SIG FNEK LONG OUT

# the plaintext tree, made once; copied into each mount with cp -a (holes kept: --sparse=always)
mkdir -p /tmp/src/sub /tmp/big
for n in 0 1 4095 4096 4097 8191 8192 8193; do head -c $n /tmp/pattern > /tmp/src/size-$n; done
head -c 10485761 /tmp/pattern > /tmp/big/big
echo target > /tmp/src/sub/target.txt && ln -s sub/target.txt /tmp/src/link && head -c 100 /tmp/pattern > "/tmp/src/$LONG"
truncate -s 30000 /tmp/src/sparse && printf x | dd of=/tmp/src/sparse bs=1 seek=20000 conv=notrunc 2> /dev/null
chmod 0640 /tmp/src/size-1 && chmod 0751 /tmp/src/sub && touch -d '2001-02-03 04:05:06' /tmp/src/size-4096
# populate UPPER LOWER BIG fnek|plain: the tree written through the mount at UPPER; without name
# encryption also a plaintext file put into LOWER, read through the mount (ecryptfs_passthrough).
# (With name encryption the kernel looks a name up by its encrypted form: a plaintext lower name
# is listed but cannot be opened through the mount, so there is none in those directories.)
populate() {
  cp -a --sparse=always /tmp/src/. "$1/" || return 1
  [ "$3" = 1 ] && { cp -a /tmp/big/big "$1/big" || return 1; }
  [ "$4" = fnek ] && return 0
  printf 'plaintext, not encrypted\n' > "$2/passthrough.txt"
  [ "$(cat "$1/passthrough.txt")" = 'plaintext, not encrypted' ] || { echo "passthrough file not readable through the mount"; return 1; }
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
  populate $d/u $d/l "$4" "$3" && record $d/u $name || { umount -i $d/u; return 1; }
  umount -i $d/u || return 1
  # the kernel writes a hole as encrypted zero extents: the lower file is whole (8 KiB header + 8 extents)
  local sparse; sparse=$(find $d/l -maxdepth 1 -type f -size +30000c -size -50000c -printf '%s\n' | head -1)
  [ "$sparse" = 40960 ] || { echo "lower size of the sparse file: $sparse, want 40960"; return 1; }
  cp -a $d/l "$OUT/$name.lower"
}
# both of one cipher at once, each into its log and status file
both() { one $1 $2 fnek $3 > /tmp/e/$1-$2-fnek.log 2>&1; echo $? > /tmp/e/$1-$2-fnek.rc; }
result() { cat /tmp/e/$1.log; [ "$(cat /tmp/e/$1.rc)" = 0 ]; }
export -f populate record one result
for spec in $SPECS; do
  c=${spec%:*} kb=${spec#*:} big=0
  [ $spec = aes:16 ] && big=1
  both $c $kb $big & (one $c $kb plain 0 > /tmp/e/$c-$kb-plain.log 2>&1; echo $? > /tmp/e/$c-$kb-plain.rc)
  wait
  check "e.write-$c-$kb-fnek" result $c-$kb-fnek
  check "e.write-$c-$kb-plain" result $c-$kb-plain
done
check e.copied-out bash -c "[ \$(ls -d $OUT/*.lower | wc -l) = 18 ]"

# o. migrate-out --to plain, end to end: a private directory set up by the reference tools, files
#    written by the kernel through a login with our module, then migrated out (no module needed:
#    the host test kills it at every step); afterwards a login unlocks nothing and shows the files.
use_our_module
CLI=$REPO/bin/ecryptfs-agent; U=eatout; UPW='Out-pw 77'; HU=/home/$U
o_setup() { newuser $U "$UPW" && as $U env HOME=$HU keyctl session - ecryptfs-setup-private --nopwcheck -l "$UPW" -m out-mount-pass-9 > /tmp/o.setup 2>&1; }
o_login_writes() {
  fed "$UPW" pamtester eat-login $U authenticate open_session > /tmp/o.open 2>&1 && mounted $HU &&
    cp -a /tmp/src /tmp/o-src && chown -R $U: /tmp/o-src && as $U cp -a --sparse=always /tmp/o-src/. $HU/Private/ &&
    (cd $HU/Private && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > /tmp/o.sums &&
    pamtester eat-login $U close_session > /tmp/o.close 2>&1 && not_mounted $HU
}
check o.setup-reference o_setup
check o.login-writes-through-the-kernel o_login_writes
check o.migrate-out runs_into /tmp/o.mo bash -c "printf '%s\n' '$UPW' | $CLI migrate-out -u $U --to plain --yes"
check o.same-files-in-private bash -c "cd $HU/Private && sha256sum --quiet --strict -c /tmp/o.sums && [ \$(find . -type f | wc -l) = \$(wc -l < /tmp/o.sums) ]"
check o.all-owned-by-the-user bash -c "! find $HU/Private ! -user $U | grep ."
o_login_unlocks_nothing() {
  fed "$UPW" pamtester eat-login $U authenticate open_session close_session > /tmp/o.login 2>&1 && not_mounted $HU &&
    user_keyring_empty $U && [ -s $HU/Private/size-4097 ]
}
check o.login-unlocks-nothing o_login_unlocks_nothing
check o.finish-removes-the-ciphertext bash -c "$CLI migrate-out -u $U --finish > /tmp/o.fin 2>&1 && [ ! -e $HU/.Private ] && [ ! -e $HU/.ecryptfs.migrated-out ]"
