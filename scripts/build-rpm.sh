#!/bin/bash
# Builds build/rpm/ecryptfs-agent-<version>-1.<arch>.rpm with rpmbuild (Debian's rpm package)
# from this already built checkout: packaging/rpm/ecryptfs-agent.spec with prebuilt_tree set,
# so %build is skipped and %install runs scripts/install.sh from here. No network, no
# BuildRequires check (--nodeps: this host's rpm database is empty).
# Debian's brp-compress is a bash script run by sh (read -d): run by bash, it compresses the man
# pages as on Fedora.
#
#   bash scripts/build-rpm.sh [--out DIR]
#
# Prints the path of the .rpm on the last line.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUT=$REPO/build/rpm
while [ $# -gt 0 ]; do
	case $1 in
		--out) OUT=$2; shift 2 ;;
		*) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
	esac
done
command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild missing (apt-get install rpm)" >&2; exit 1; }
version=$(node -p "require('./package.json').version")
spec=$(rpmspec -q --qf '%{VERSION}\n' packaging/rpm/ecryptfs-agent.spec 2>/dev/null | head -n1)
[ "$spec" = "$version" ] || { echo "build-rpm: package.json says $version, the spec $spec" >&2; exit 1; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
# rpmbuild's own tree in a temporary directory; the build user's ~/.rpmmacros stay out of it.
rpmbuild -bb --nodeps --quiet \
	--define "_topdir $W" --define "_rpmdir $W/RPMS" --define "prebuilt_tree $REPO" \
	--define "_build_id_links none" --define "__brp_compress /bin/bash /usr/lib/rpm/brp-compress %{_prefix}" \
	packaging/rpm/ecryptfs-agent.spec >&2
rpm=$(find "$W/RPMS" -name "ecryptfs-agent-$version-*.rpm")
[ -n "$rpm" ] || { echo "build-rpm: rpmbuild made no package" >&2; exit 1; }
mv "$rpm" "$OUT/"
echo "$OUT/$(basename "$rpm")"
