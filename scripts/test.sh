#!/bin/bash
# One command: set up everything on a fresh Debian 12 (as root) and run every test suite
# (unit, host: real keyring and PAM, vm: Debian's kernel with eCryptfs under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
