#!/bin/bash
# Builds build/deb/ecryptfs-agent_<version>_<arch>.deb from the already built tree, with
# plain dpkg tools (dpkg-shlibdeps, dpkg-gencontrol, dpkg-deb) in a debhelper-like layout.
#
#   bash scripts/package.sh [--version VERSION] [--out DIR]
#
# VERSION defaults to package.json's and must then be the top entry of packaging/changelog.
# A different --version (test builds, e.g. the upgrade test) gets a generated changelog entry.
# Prints the path of the .deb on the last line.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PKG=ecryptfs-agent
OUT=$REPO/build/deb
VERSION=$(node -p "require('./package.json').version")
OVERRIDE=
while [ $# -gt 0 ]; do
	case $1 in
		--version) VERSION=$2; OVERRIDE=1; shift 2 ;;
		--out) OUT=$2; shift 2 ;;
		*) echo "usage: $0 [--version VERSION] [--out DIR]" >&2; exit 2 ;;
	esac
done

# Build only what is missing: other people's work in this tree must not be rebuilt under them.
for f in build/Release/pam_ecryptfs_agent.so build/Release/ecryptfs_native.node dist/agent/main.js dist/src/cli/main.js; do
	if [ ! -e "$f" ]; then echo "package: $f missing; running npm run build" >&2; npm run build; break; fi
done
# The agent ships as one file (scripts/bundle-agent.js): bundle tsc's output if a plain tsc
# run left it unbundled, so that the tests after this run what the package holds.
MARK="// ecryptfs-agent: bundled by scripts/bundle-agent.js from tsc's output"
if ! grep -qx "$MARK" dist/agent/main.js || ! grep -qx "$MARK" dist/agent/master.js; then
	echo "package: the agent is not bundled; running scripts/bundle-agent.js" >&2
	node scripts/bundle-agent.js >&2
fi

ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# debhelper's layout: dpkg-shlibdeps and dpkg-gencontrol find debian/control and the
# package root where they expect them.
ROOT=$W/debian/$PKG
LIB=$ROOT/usr/lib/$PKG
DOC=$ROOT/usr/share/doc/$PKG
mkdir -p "$W/debian" "$ROOT/DEBIAN" "$LIB" "$DOC"
cp packaging/control "$W/debian/control"

# --- changelog: the version packaged must be the changelog's
cp packaging/changelog "$W/debian/changelog"
top=$(dpkg-parsechangelog -l packaging/changelog -SVersion)
if [ "$top" != "$VERSION" ]; then
	if [ -z "$OVERRIDE" ]; then
		echo "package: package.json says $VERSION but packaging/changelog starts with $top; add an entry" >&2
		exit 1
	fi
	{
		printf '%s (%s) unstable; urgency=medium\n\n  * Build of version %s (scripts/package.sh --version).\n\n' "$PKG" "$VERSION" "$VERSION"
		printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l packaging/changelog -SMaintainer)" "$(date -R)"
		cat packaging/changelog
	} > "$W/debian/changelog"
fi
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$W/debian/changelog" -STimestamp)
export SOURCE_DATE_EPOCH

# --- the files every distribution gets: the neutral install into the package root (the RPM,
# PKGBUILD and ebuild use it too, so the packages cannot drift apart). dpkg tracks the files;
# the MANIFEST is for install.sh --uninstall of an unpackaged install only.
bash scripts/install.sh --destdir "$ROOT" --prefix /usr --pam-dir "/usr/lib/$MA/security" \
	--systemd-dir /lib/systemd/system --sysconfdir /etc > /dev/null
rm "$LIB/MANIFEST"

# Strip like dh_strip (the build keeps symbols for debugging).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	"$ROOT/usr/lib/$MA/security/pam_ecryptfs_agent.so" "$LIB/build/Release/ecryptfs_native.node"

# --- Debian only: the pam-auth-update profile, lintian overrides, the Debian changelog,
# compression like dh_compress (man pages, changelogs, other docs above 4 KiB)
install -D -m 644 packaging/pam-config "$ROOT/usr/share/pam-configs/$PKG"
install -D -m 644 packaging/lintian-overrides "$ROOT/usr/share/lintian/overrides/$PKG"
gzip -9n "$ROOT/usr/share/man/man1/ecryptfs-agent.1" "$ROOT/usr/share/man/man8/pam_ecryptfs_agent.8"
# A native package (no Debian revision): lintian wants changelog.gz, not changelog.Debian.gz.
install -m 644 "$W/debian/changelog" "$DOC/changelog"
find "$DOC" -type f \( -name changelog -o -size +4k \) -not -name copyright -exec gzip -9n {} +

# --- maintainer scripts and control
install -m 755 packaging/postinst packaging/prerm packaging/postrm "$ROOT/DEBIAN/"
(
	cd "$W"
	touch debian/substvars
	# napi_* and OpenSSL symbols of the addon come from the node process itself, not from a
	# library, so "symbol not found" warnings (bit 1) are expected; keep the others.
	dpkg-shlibdeps --warnings=6 -Tdebian/substvars "debian/$PKG/usr/lib/$MA/security/pam_ecryptfs_agent.so" \
		"debian/$PKG/usr/lib/$PKG/build/Release/ecryptfs_native.node"
	dpkg-gencontrol -p"$PKG" -P"debian/$PKG" -v"$VERSION" -Tdebian/substvars -fdebian/files
)
(cd "$ROOT" && find lib usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 644 "$ROOT/DEBIAN/md5sums" "$ROOT/DEBIAN/control"

mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_${ARCH}.deb
# --root-owner-group: every file root:root whoever builds; mtimes clamped to SOURCE_DATE_EPOCH.
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" > /dev/null
echo "$DEB"
