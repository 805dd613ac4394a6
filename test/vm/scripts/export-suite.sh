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
ln /tmp/src/size-4097 /tmp/src/sub/hardlink-4097   # cp -a keeps it: the kernel links the lower file
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
# reference_setup USER PASSWORD HOME MOUNT-PASSPHRASE: ecryptfs-setup-private's ~/Private for USER
reference_setup() { as $1 env HOME=$3 keyctl session - ecryptfs-setup-private --nopwcheck -l "$2" -m "$4" > /tmp/setup.$1 2>&1 || { cat /tmp/setup.$1; return 1; }; }
# login_writes USER PASSWORD HOME SUMS: a login with our module mounts ~/Private, the kernel writes
# /tmp/src into it (as USER), SUMS gets the sha256 of every file, the logout unmounts
login_writes() {
  fed "$2" pamtester eat-login $1 authenticate open_session > /tmp/open.$1 2>&1 && mounted $3 &&
    rm -rf /tmp/src.$1 && cp -a /tmp/src /tmp/src.$1 && chown -R $1: /tmp/src.$1 && as $1 cp -a --sparse=always /tmp/src.$1/. $3/Private/ &&
    (cd $3/Private && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > $4 &&
    pamtester eat-login $1 close_session > /tmp/close.$1 2>&1 && not_mounted $3
}
o_setup() { newuser $U "$UPW" && reference_setup $U "$UPW" $HU out-mount-pass-9; }
check o.setup-reference o_setup
check o.login-writes-through-the-kernel login_writes $U "$UPW" $HU /tmp/o.sums
check o.migrate-out runs_into /tmp/o.mo bash -c "printf '%s\n' '$UPW' | $CLI migrate-out -u $U --to plain --yes"
check o.same-files-in-private bash -c "cd $HU/Private && sha256sum --quiet --strict -c /tmp/o.sums && [ \$(find . -type f | wc -l) = \$(wc -l < /tmp/o.sums) ]"
check o.all-owned-by-the-user bash -c "! find $HU/Private ! -user $U | grep ."
check o.hard-link-kept test $HU/Private/size-4097 -ef $HU/Private/sub/hardlink-4097
o_login_unlocks_nothing() {
  fed "$UPW" pamtester eat-login $U authenticate open_session close_session > /tmp/o.login 2>&1 && not_mounted $HU &&
    user_keyring_empty $U && [ -s $HU/Private/size-4097 ]
}
check o.login-unlocks-nothing o_login_unlocks_nothing
check o.finish-removes-the-ciphertext bash -c "$CLI migrate-out -u $U --finish > /tmp/o.fin 2>&1 && [ ! -e $HU/.Private ] && [ ! -e $HU/.ecryptfs.migrated-out ]"

# f. migrate-out --to fscrypt, end to end: the home on an ext4 image (a loop device), ~/Private set
#    up by the reference tools and written by the kernel through a login. Refused, nothing changed,
#    while fscrypt is missing and while the ext4 lacks "encrypt"; then Debian's fscrypt and
#    libpam-fscrypt installed in the guest (pam-auth-update adds pam_fscrypt to common-*), and the
#    plan names the fscrypt setup it will run. Migrated; then, from a copy of the home as it was,
#    killed at three of its journal steps (SIGKILL at the Nth rename, strace) and resumed to the same
#    end. A console login through pam_fscrypt shows the same files; its logout locks them again.
F=eatfs; FPW='Fs-pw 31'; FH=/srv/fshome/$F; FJ=/var/lib/ecryptfs-agent/migrate-out/$F.json
f_ext4() { modprobe loop && modprobe ext4 && truncate -s 96M /tmp/fs.img && mkfs.ext4 -q /tmp/fs.img && mkdir -p /srv/fshome && mount -o loop /tmp/fs.img /srv/fshome; }
check f.ext4-image-without-encrypt f_ext4
f_setup() { useradd -m -d $FH -s /bin/bash $F && set_password $F "$FPW" && reference_setup $F "$FPW" $FH fs-mount-pass-3; }
check f.setup-reference f_setup
check f.login-writes-through-the-kernel login_writes $F "$FPW" $FH /tmp/f.sums
# f_refused TEXT: migrate-out --to fscrypt --yes refused with TEXT, nothing of the user's changed
f_refused() {
  ! fed "$FPW" $CLI migrate-out -u $F --to fscrypt --yes > /tmp/f.refused 2>&1 && grep -q -- "$1" /tmp/f.refused &&
    [ ! -e $FH/Private.migrate-out ] && [ ! -e $FJ ] && [ -f $FH/.ecryptfs/Private.sig ] || { cat /tmp/f.refused; return 1; }
}
check f.refused-without-fscrypt f_refused 'fscrypt is not installed'
check f.install-fscrypt runs_into /tmp/f.dpkg dpkg -i $FSCRYPT_DEBS
check f.pam-auth-update-adds-pam-fscrypt grep -q '^session.*pam_fscrypt.so' /etc/pam.d/common-session
check f.refused-without-encrypt-feature f_refused 'lacks the ext4 "encrypt" feature'
check f.refusal-names-tune2fs grep -q 'tune2fs -O encrypt /dev/loop' /tmp/f.refused
check f.tune2fs-encrypt-while-mounted runs_into /tmp/f.tune2fs tune2fs -O encrypt "$(findmnt -n -o SOURCE /srv/fshome)"
f_plan() {
  ! $CLI migrate-out -u $F --to fscrypt > /tmp/f.plan 2>&1 && grep -q 'First: fscrypt setup --quiet' /tmp/f.plan &&
    grep -q 'First: fscrypt setup /srv/fshome --quiet' /tmp/f.plan && grep -q 'Nothing was changed' /tmp/f.plan && [ ! -e /etc/fscrypt.conf ] || { cat /tmp/f.plan; return 1; }
}
check f.plan-names-the-fscrypt-setup f_plan
cp -a $FH /tmp/f.home
# f_migrated: the eCryptfs config aside, no staging left, ~/Private an fscrypt directory, locked,
# holding the files and fscrypt's recovery readme (names unreadable while locked: counted)
f_migrated() {
  [ -f $FH/.ecryptfs.migrated-out/Private.sig ] && [ ! -e $FH/.ecryptfs ] && [ ! -e $FH/Private.migrate-out ] &&
    fscrypt status $FH/Private > /tmp/f.status 2>&1 && grep -q 'Unlocked: No' /tmp/f.status &&
    [ "$(ls -A $FH/Private | wc -l)" = "$(( $(ls -A /tmp/src | wc -l) + 1 ))" ] && [ "$(chage -l $F | grep 'Account expires')" = "$(chage -l root | grep 'Account expires')" ] ||
    { cat /tmp/f.status; ls -la $FH $FH/Private; chage -l $F; return 1; }
}
# (on failure the last lines first: check shows 600 characters)
f_migrate() { fed "$FPW" $CLI migrate-out -u $F --to fscrypt --yes > /tmp/f.out 2>&1 && f_migrated || { tail -n 3 /tmp/f.out; free -m; df -h /tmp / /srv/fshome; return 1; }; }
check f.migrate-out f_migrate
check f.output-names-the-recovery-readme grep -q "recovery passphrase into $FH/Private/fscrypt_recovery_readme.txt" /tmp/f.out
check f.fscrypt-set-up-on-both grep -q '"policy_version": "2"' /etc/fscrypt.conf
# f_killed K: the home as it was before; a run SIGKILLed at its Kth rename (1 = the journal with
# the account lock, 2 = exported, 3 = verified, 4 = ~/.ecryptfs aside, 5 = the copy into place, 6 =
# switched); ~/.Private whole; then a run resumes to the same end
f_killed() {
  # the image lives in the guest's RAM (tmpfs): blocks freed by the last run are given back
  rm -rf $FH && { fstrim /srv/fshome || true; } && cp -a /tmp/f.home $FH && rm -f $FJ || return 1
  fed "$FPW" strace -qq -o /dev/null -e trace=rename -e inject=rename:signal=KILL:when=$1 $CLI migrate-out -u $F --to fscrypt --yes > /tmp/f.k 2>&1
  local rc=$?; [ $rc = 137 ] || { echo "kill point $1: exit $rc"; cat /tmp/f.k; return 1; }
  [ "$(ls $FH/.Private | wc -l)" = "$(ls /tmp/f.home/.Private | wc -l)" ] || { echo "kill point $1: ~/.Private changed"; return 1; }
  echo "FIGURE kill point $1: journal $(grep -o '"phase": "[a-z]*"' $FJ), staging $([ -e $FH/Private.migrate-out ] && echo present || echo absent)" >> /tmp/f.figures
  f_migrate
}
check f.killed-after-export-resumes f_killed 2
# between two runs the account is not locked: a symlink the user put where the staging directory
# was is not followed by fscrypt (run as root), and nothing is changed
f_symlink() {
  rm -rf $FH && cp -a /tmp/f.home $FH && rm -f $FJ || return 1
  fed "$FPW" strace -qq -o /dev/null -e trace=rename -e inject=rename:signal=KILL:when=2 $CLI migrate-out -u $F --to fscrypt --yes > /tmp/f.k 2>&1
  mkdir /tmp/f.target && chown $F: /tmp/f.target && mv $FH/Private.migrate-out /tmp/f.aside && as $F ln -s /tmp/f.target $FH/Private.migrate-out || return 1
  ! fed "$FPW" $CLI migrate-out -u $F --to fscrypt --yes > /tmp/f.sym 2>&1 && grep -q 'is not a directory of eatfs.s (a symbolic link): fscrypt is not run on it' /tmp/f.sym &&
    [ -z "$(ls -A /tmp/f.target)" ] && ! fscrypt status /tmp/f.target > /dev/null 2>&1 && [ -f $FH/.ecryptfs/Private.sig ] || { cat /tmp/f.sym; return 1; }
}
check f.symlinked-staging-refused f_symlink
check f.killed-after-verify-resumes f_killed 3
check f.killed-before-the-copy-takes-its-place-resumes f_killed 5
cat /tmp/f.figures
# fscrypt allows one login protector per user: the runs after the first used theirs
check f.one-login-protector-reused bash -c "fscrypt status / > /tmp/f.root; [ \$(grep -c 'login protector for $F\$' /tmp/f.root) = 1 ] || { cat /tmp/f.root; exit 1; }"
f_login() {
  login_as $F "$FPW" "cd ~/Private && sha256sum --quiet --strict -c /tmp/f.sums && test -s fscrypt_recovery_readme.txt && test size-4097 -ef sub/hardlink-4097 && echo SUMS-$OK42" /tmp/f.login &&
    grep -q 'SUMS-42' /tmp/f.login &&
    not_mounted $FH && fscrypt status $FH/Private | grep -q 'Unlocked: No' || { cat /tmp/f.login; fscrypt status $FH/Private; return 1; }
}
check f.login-through-pam-fscrypt-shows-the-files-and-logout-locks f_login
check f.finish-removes-the-ciphertext bash -c "$CLI migrate-out -u $F --finish > /tmp/f.fin 2>&1 && [ ! -e $FH/.Private ] && [ ! -e $FH/.ecryptfs.migrated-out ]"
