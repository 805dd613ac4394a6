# Reference peer (ecryptfs-utils' own pam_ecryptfs) inside the VM: the baseline later suites build on.
# Prints "CHECK <name> ok" or "CHECK <name> FAIL <why>" per step; exits non-zero if any failed.
# Run as root inside the fast-mode VM (test/vm/harness.vm.test.ts).
# check, use_reference_module: test/vm/scripts/lib.sh, which the harness prepends.

# --- (c) the kernel module
check c.modprobe modprobe ecryptfs
check c.version-readable test -r /sys/fs/ecryptfs/version
echo "ecryptfs version: $(cat /sys/fs/ecryptfs/version 2>&1)"
check c.fnek-supported sh -c 'test $(( $(cat /sys/fs/ecryptfs/version) & 0x100 )) -ne 0'
check c.listed-in-filesystems grep -qw ecryptfs /proc/filesystems

# --- (d) ecryptfs-setup-private + pam_ecryptfs through pamtester
U=eatref
PW='Ref-pass-0815'
PLAIN='eatvm-plaintext-marker-7f3a91'
check d.useradd useradd -m -s /bin/bash "$U"
check d.chpasswd sh -c "echo '$U:$PW' | chpasswd"
H=$(getent passwd "$U" | cut -d: -f6)
# Must run as the user (as root with -u it leaves root-owned files). -l skips the password prompt;
# stdin is /dev/null, so the empty mount passphrase answer makes it generate a random one.
check d.setup-private su - "$U" -c "ecryptfs-setup-private --nopwcheck -l '$PW' </dev/null"
check d.wrapped-passphrase test -s "$H/.ecryptfs/wrapped-passphrase"
check d.auto-mount test -e "$H/.ecryptfs/auto-mount"
check d.sig-file sh -c "test \$(wc -l < '$H/.ecryptfs/Private.sig') -eq 2"
check d.not-mounted-after-setup sh -c "! grep -q ' $H/Private ' /proc/self/mountinfo"

use_reference_module

mounted() { awk -v m="$H/Private" '$5 == m && $0 ~ / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
check d.open-session sh -c "echo '$PW' | pamtester eat-ref '$U' authenticate open_session"
check d.mounted mounted
check d.write-plaintext su "$U" -c "printf '%s\n' '$PLAIN' > ~/Private/secret.txt"
check d.read-back su "$U" -c "grep -qx '$PLAIN' ~/Private/secret.txt"
lower=$(find "$H/.Private" -type f | head -n1)
echo "lower file: $lower ($(stat -c %s "$lower" 2>&1) bytes)"
check d.lower-name-encrypted sh -c "case '$lower' in */ECRYPTFS_FNEK_ENCRYPTED.*) true ;; *) false ;; esac"
check d.lower-no-plaintext sh -c "! grep -q '$PLAIN' '$lower'"
# Header bytes 8..15: m1, m1 ^ 0x3c81b7f5 (MAGIC_ECRYPTFS_MARKER, big-endian).
magic_ok() {
  local h; h=$(od -An -tx1 -j8 -N8 "$lower" | tr -d ' \n')
  [ $(( 0x${h:0:8} ^ 0x${h:8:8} )) -eq $(( 0x3c81b7f5 )) ]
}
check d.lower-ecryptfs-magic magic_ok
check d.close-session pamtester eat-ref "$U" close_session
check d.unmounted sh -c "! grep -q ' $H/Private ' /proc/self/mountinfo"
# A second login unwraps and mounts again and decrypts what the first one wrote.
check d.reopen-session sh -c "echo '$PW' | pamtester eat-ref '$U' authenticate open_session"
check d.decrypts-after-remount su "$U" -c "grep -qx '$PLAIN' ~/Private/secret.txt"
check d.reclose-session pamtester eat-ref "$U" close_session
check d.unmounted-again sh -c "! grep -q ' $H/Private ' /proc/self/mountinfo"
exit $failed
