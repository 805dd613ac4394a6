#!/bin/bash
# One command: set up everything on a fresh Debian 12 (as root) and show a full login →
# unlock → logout demo through the real PAM module. Runs in a VM with Debian's kernel when
# this kernel lacks eCryptfs, directly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/test/vm/demo.js
