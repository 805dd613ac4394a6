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

# --- PAM module
install -D -m 644 build/Release/pam_ecryptfs_agent.so "$ROOT/usr/lib/$MA/security/pam_ecryptfs_agent.so"

# --- agent + library: compiled JavaScript only (no tests, benchmarks, maps), same layout as
# the tree, because dist/src/os/native.js (and the agent bundle) load the addon from
# build/Release/ next to dist/. The agent is the one bundled file; dist/src is the CLI's.
install -D -m 644 dist/agent/main.js "$LIB/dist/agent/main.js"
# the resident agent's master: run as `node master.js` by ecryptfs-agent.service
install -D -m 644 dist/agent/master.js "$LIB/dist/agent/master.js"
for unit in ecryptfs-agent.socket ecryptfs-agent-user.socket ecryptfs-agent.service; do
	install -D -m 644 "packaging/systemd/$unit" "$ROOT/lib/systemd/system/$unit"
done
(cd dist && find src -type f -name '*.js') | while read -r f; do
	install -D -m 644 "dist/$f" "$LIB/dist/$f"
done
install -D -m 644 build/Release/ecryptfs_native.node "$LIB/build/Release/ecryptfs_native.node"
# The agent is exec'd by the PAM module (root-owned, 755 checked there); a fixed interpreter
# instead of /usr/bin/env: the agent runs as root.
head -n1 "$LIB/dist/agent/main.js" | grep -qx '#!/usr/bin/env node' || { echo "package: unexpected agent shebang" >&2; exit 1; }
sed -i '1s|.*|#!/usr/bin/node|' "$LIB/dist/agent/main.js"
chmod 755 "$LIB/dist/agent/main.js"

# The CLI: the project's own launcher (requires ../dist/src/cli/main.js), linked from /usr/bin.
install -D -m 755 bin/ecryptfs-agent "$LIB/bin/ecryptfs-agent"
sed -i '1s|^#!/usr/bin/env node$|#!/usr/bin/node|' "$LIB/bin/ecryptfs-agent"
mkdir -p "$ROOT/usr/bin"
ln -s "../lib/$PKG/bin/ecryptfs-agent" "$ROOT/usr/bin/ecryptfs-agent"

# --- production node_modules: the dependency closure npm itself computes (winston & co.),
# copied from the installed tree, so packaging needs no network. Top-level package dirs
# carry their own nested node_modules, which hold only their dependencies.
all=$(npm ls --omit=dev --all --parseable | tail -n +2 | sed "s|^$REPO/||" | sort -u)
mods=$(grep -E '^node_modules/(@[^/]+/)?[^/]+$' <<< "$all" || true)
[ -n "$mods" ] || { echo "package: npm ls found no production dependencies" >&2; exit 1; }
for m in $mods; do
	mkdir -p "$LIB/$(dirname "$m")"
	cp -R "$m" "$LIB/$m"
done
# Every bundled module (nested ones too) must be covered by packaging/copyright, with a
# license that file carries.
node -e '
	const fs = require("node:fs");
	const copyright = fs.readFileSync("packaging/copyright", "utf8");
	let bad = 0;
	for (const dir of process.argv.slice(1)) {
		const { name, license } = JSON.parse(fs.readFileSync(dir + "/package.json", "utf8"));
		if (!["MIT", "ISC"].includes(license)) { console.error(`package: ${name} has license ${license}; update packaging/copyright`); bad = 1; }
		if (!copyright.includes(`node_modules/${name}/*`)) { console.error(`package: ${name} missing from packaging/copyright`); bad = 1; }
	}
	process.exit(bad);' $all
# Not needed at run time: docs, type declarations, sources maps, npm's and CI's metadata.
find "$LIB/node_modules" -type f \( -iname '*.md' -not -iname 'license*' -o -name '*.d.ts' -o -name '*.map' \
	-o -name '*.ts' -o -name '.npmignore' -o -name '.gitattributes' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '.editorconfig' \
	-o -name 'tsconfig.json' -o -name '.prettierrc*' \) -delete
find "$LIB/node_modules" -type d \( -name .github -o -name test -o -name tests \) -prune -exec rm -rf {} +
find "$LIB/node_modules" -type d -empty -delete
# npm's tarballs carry odd modes (e.g. 0664, executables without shebang): normalise.
find "$LIB/node_modules" -type d -exec chmod 755 {} + -o -type f -exec chmod 644 {} +

# Strip like dh_strip (the build keeps symbols for debugging).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	"$ROOT/usr/lib/$MA/security/pam_ecryptfs_agent.so" "$LIB/build/Release/ecryptfs_native.node"

# --- pam-auth-update profile, man pages, docs
install -D -m 644 packaging/pam-config "$ROOT/usr/share/pam-configs/$PKG"
install -D -m 644 packaging/lintian-overrides "$ROOT/usr/share/lintian/overrides/$PKG"
node packaging/gen-man.js "$ROOT/usr/share/man" > /dev/null
gzip -9n "$ROOT/usr/share/man/man1/ecryptfs-agent.1" "$ROOT/usr/share/man/man8/pam_ecryptfs_agent.8"
install -m 644 packaging/copyright "$DOC/copyright"
install -m 644 README.md docs/*.md "$DOC/"
# A native package (no Debian revision): lintian wants changelog.gz, not changelog.Debian.gz.
install -m 644 "$W/debian/changelog" "$DOC/changelog"
# Compress like dh_compress: changelogs always, other docs above 4 KiB.
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
