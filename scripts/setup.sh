#!/bin/bash
# Installs everything ecryptfs-agent needs on Debian 12 (as root) and builds it:
# Debian packages (build tools, libpam headers, the reference peer ecryptfs-utils, keyutils,
# pamtester, qemu and friends for the VM suite), npm dependencies, the native addon, the PAM
# module and the TypeScript. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (apt-get, real keyring, PAM)" >&2
  exit 1
fi

PACKAGES=(
  # build
  g++ make python3 libpam0g-dev
  # runtime and the reference peer
  keyutils ecryptfs-utils
  # PAM clients for tests
  pamtester expect sshpass
  # test tools: process and syscall inspection; rsync for the reference ecryptfs-migrate-home (VM suite);
  # e2fsprogs for ext4 images (migrate-out --to fscrypt; fscrypt itself is installed only in the guest)
  strace psmisc lsof rsync e2fsprogs
  # VM suite: Debian's kernel under qemu
  qemu-system-x86 busybox-static kmod cpio xz-utils zstd
  # systemd-mode VM (sshd logins, logind, the systemd user manager)
  systemd systemd-sysv dbus libpam-systemd openssh-server openssh-client
  # Gentoo-stack VM suite: pam_passwdqc and its /etc/passwdqc.conf (pam_faillock is in libpam-modules)
  libpam-passwdqc passwdqc
  # packaging: the .deb, its checks and man pages
  dpkg-dev lintian man-db groff-base
  # the RPM built from the same file list (scripts/build-rpm.sh, test/host/install.test.ts)
  rpm
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # ecryptfs-utils' postinst runs pam-auth-update and adds pam_ecryptfs to the host's
  # common-* stacks; our tests use their own service files, so that is harmless here.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# libpam-passwdqc's postinst enables its pam-auth-update profile, which puts pam_passwdqc into the
# host's common-password (so into every VM guest's su/passwd/chpasswd, with other prompts).
# Only the Gentoo suite uses it, from its own stack: keep it out of Debian's (idempotent).
if grep -q pam_passwdqc /etc/pam.d/common-password 2>/dev/null; then pam-auth-update --disable passwdqc; fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
