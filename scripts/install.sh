#!/bin/bash
# Installs (or removes) ecryptfs-agent from an already built checkout, on any distribution:
# the same files as the .deb (scripts/package.sh builds its package root with this script).
#
#   bash scripts/install.sh [--prefix /usr] [--destdir DIR] [--pam-dir DIR]
#                           [--systemd-dir DIR | --no-systemd] [--sysconfdir /etc]
#   bash scripts/install.sh --uninstall [same options]
#
# --prefix      /usr by default. The PAM module's built-in agent path is
#               /usr/lib/ecryptfs-agent/dist/agent/main.js: another prefix needs agent=PATH on
#               the PAM lines (printed at the end) and gets ExecStart= rewritten in the unit.
# --destdir     staging root for packagers (also taken from $DESTDIR); paths recorded and
#               printed are the ones without it.
# --pam-dir     where libpam loads modules from. Default: the directory of this system's
#               pam_unix.so (Debian /usr/lib/<multiarch>/security, Fedora /usr/lib64/security,
#               Arch /usr/lib/security, Gentoo /lib64/security); required when none is found.
# --systemd-dir the resident agent's units (packaging/systemd). Default: pkg-config's
#               systemdsystemunitdir, else $prefix/lib/systemd/system when systemd is present,
#               else none (the PAM module spawns the agent itself without them).
# --sysconfdir  /etc by default: only read (pam.d, to say which PAM lines are present).
#
# Everything is root-owned (when run as root; packaging tools set owners themselves), directories
# 0755, files 0644 or 0755: the PAM module refuses an agent that is not root-owned, is writable
# by group or others, or lies below such a directory.
#
# MANIFEST: $prefix/lib/ecryptfs-agent/MANIFEST lists what was installed ("f"/"l" paths) and
# the directories this script created ("d"); --uninstall removes exactly those, never anything
# in /etc/pam.d. Packagers delete the MANIFEST from their package root: the package manager
# tracks the files, and install.sh --uninstall then refuses to touch them.
#
# Needs the built tree (npm run build) and npm (the production dependency closure is what
# `npm ls --omit=dev` computes, copied from this checkout's node_modules: no network).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
PKG=ecryptfs-agent
PREFIX=/usr
DESTDIR=${DESTDIR:-}
PAMDIR=
SYSTEMDDIR=
NOSYSTEMD=
SYSCONFDIR=/etc
UNINSTALL=
usage() {
	echo "usage: $0 [--uninstall] [--prefix /usr] [--destdir DIR] [--pam-dir DIR] [--systemd-dir DIR | --no-systemd] [--sysconfdir /etc]" >&2
	exit 2
}
die() { echo "install: $*" >&2; exit 1; }
absolute() { case $2 in /*) ;; *) die "$1 must be an absolute path, not '$2'" ;; esac; }
while [ $# -gt 0 ]; do
	case $1 in
		--uninstall) UNINSTALL=1; shift ;;
		--prefix|--destdir|--pam-dir|--systemd-dir|--sysconfdir)
			[ $# -ge 2 ] || usage
			case $1 in
				--prefix) PREFIX=$2 ;;
				--destdir) DESTDIR=$2 ;;
				--pam-dir) PAMDIR=$2 ;;
				--systemd-dir) SYSTEMDDIR=$2 ;;
				--sysconfdir) SYSCONFDIR=$2 ;;
			esac
			shift 2 ;;
		--no-systemd) NOSYSTEMD=1; shift ;;
		*) usage ;;
	esac
done
[ -z "$NOSYSTEMD" ] || [ -z "$SYSTEMDDIR" ] || die "--systemd-dir and --no-systemd exclude each other"
absolute --prefix "$PREFIX"
absolute --sysconfdir "$SYSCONFDIR"
[ -z "$DESTDIR" ] || { absolute --destdir "$DESTDIR"; DESTDIR=${DESTDIR%/}; }
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/
LIBDIR=${PREFIX%/}/lib/$PKG
MANIFEST=$LIBDIR/MANIFEST
if [ "$(id -u)" != 0 ] && [ -z "$DESTDIR" ]; then
	die "run as root (or give --destdir for a package root)"
fi

# The three lines every stack needs (docs/install.md says where they go per distribution).
pam_lines() {
	local opt=
	[ "$PREFIX" = /usr ] || opt=" agent=$LIBDIR/dist/agent/main.js"
	printf '  auth     optional  pam_ecryptfs_agent.so unwrap%s\n' "$opt"
	printf '  session  optional  pam_ecryptfs_agent.so unwrap%s\n' "$opt"
	printf '  password optional  pam_ecryptfs_agent.so%s\n' "$opt"
}
# Files of $SYSCONFDIR/pam.d that name the module (read only).
pam_users() {
	grep -ls '^[[:space:]]*-\{0,1\}[a-z]*[[:space:]].*pam_ecryptfs_agent\.so' "$SYSCONFDIR"/pam.d/* 2>/dev/null || true
}
systemd_live() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
UNITS="ecryptfs-agent.socket ecryptfs-agent-user.socket"

# ---------------------------------------------------------------- uninstall
if [ -n "$UNINSTALL" ]; then
	[ -f "$DESTDIR$MANIFEST" ] || die "no $DESTDIR$MANIFEST: not installed by scripts/install.sh with --prefix $PREFIX (a distribution package is removed by its package manager)"
	# Every line must be "f|l|d /absolute/path" without '..': a damaged manifest must not make
	# rm wander off.
	if grep -vqE '^[fld] /[^[:cntrl:]]*$' "$DESTDIR$MANIFEST" || grep -qE '(^|/)\.\.(/|$)' "$DESTDIR$MANIFEST"; then
		die "$DESTDIR$MANIFEST has lines this script did not write; remove the files by hand"
	fi
	mapfile -t lines < "$DESTDIR$MANIFEST"
	if systemd_live && grep -q '^f .*/ecryptfs-agent\.service$' "$MANIFEST"; then
		# the units must not outlive their files, nor leave sockets.target.wants links behind
		systemctl disable --now $UNITS >/dev/null 2>&1 || true
		systemctl stop ecryptfs-agent.service >/dev/null 2>&1 || true
	fi
	gone=()
	for line in "${lines[@]}"; do
		path=$DESTDIR${line#? }
		case $line in
			f\ *) if [ -f "$path" ] && [ ! -L "$path" ]; then gone+=("$path"); fi ;;
			l\ *) if [ -L "$path" ]; then gone+=("$path"); fi ;;
		esac
	done
	rm -f -- "${gone[@]}" "$DESTDIR$MANIFEST"
	# the directories this script created, each before its parent (reverse order), if empty now
	while read -r path; do
		rmdir "$DESTDIR$path" 2>/dev/null || [ ! -d "$DESTDIR$path" ] || echo "install: kept $DESTDIR$path (not empty)" >&2
	done < <(printf '%s\n' "${lines[@]}" | sed -n 's/^d //p' | LC_ALL=C sort -r)
	if systemd_live; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
	echo "install: removed ecryptfs-agent from ${DESTDIR:-/}"
	users=$(pam_users)
	if [ -z "$DESTDIR" ] && [ -n "$users" ]; then
		echo "install: the PAM module is gone but these files still name it:" >&2
		grep -Hn 'pam_ecryptfs_agent\.so' $users >&2 || true
		echo "install: remove those lines (this script never edits $SYSCONFDIR/pam.d)" >&2
	fi
	exit 0
fi

# ---------------------------------------------------------------- install
cd "$REPO"
for f in build/Release/pam_ecryptfs_agent.so build/Release/ecryptfs_native.node dist/agent/main.js dist/agent/master.js dist/src/cli/main.js; do
	[ -e "$f" ] || die "$REPO/$f missing: run npm run build first (as the checkout's owner)"
done
# The agent ships as one file each (scripts/bundle-agent.js), not tsc's tree.
MARK="// ecryptfs-agent: bundled by scripts/bundle-agent.js from tsc's output"
grep -qx "$MARK" dist/agent/main.js && grep -qx "$MARK" dist/agent/master.js \
	|| die "the agent is not bundled (a plain tsc run?): run npm run build or node scripts/bundle-agent.js"
head -n1 dist/agent/main.js | grep -qx '#!/usr/bin/env node' || die "unexpected shebang in dist/agent/main.js"

if [ -z "$PAMDIR" ]; then
	# where this system's libpam keeps its own modules
	# (this machine's multiarch triplet; a foreign architecture's modules may be installed too)
	MA=$( (dpkg-architecture -qDEB_HOST_MULTIARCH || gcc -print-multiarch) 2>/dev/null || true)
	MA=${MA:-$(uname -m)-linux-gnu}
	for d in /usr/lib/$MA/security /lib/$MA/security /usr/lib64/security /lib64/security /usr/lib/security /lib/security; do
		if [ -e "$d/pam_unix.so" ]; then PAMDIR=$d; break; fi
	done
	[ -n "$PAMDIR" ] || die "cannot tell where PAM modules go here (no pam_unix.so found): give --pam-dir"
fi
absolute --pam-dir "$PAMDIR"
if [ -n "$NOSYSTEMD" ]; then
	SYSTEMDDIR=
elif [ -z "$SYSTEMDDIR" ]; then
	SYSTEMDDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
	if [ -z "$SYSTEMDDIR" ] && { [ -d /run/systemd/system ] || command -v systemctl >/dev/null; }; then
		SYSTEMDDIR=$PREFIX/lib/systemd/system
	fi
fi
[ -z "$SYSTEMDDIR" ] || absolute --systemd-dir "$SYSTEMDDIR"
P=${PREFIX%/}

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
S=$W/root   # the tree as it will be installed, built here first, then copied in one pass
LIB=$S$P/lib/$PKG

# --- PAM module
install -D -m 644 build/Release/pam_ecryptfs_agent.so "$S$PAMDIR/pam_ecryptfs_agent.so"

# --- agent + library: compiled JavaScript only (no tests, benchmarks, maps), same layout as
# the tree, because dist/src/os/native.js (and the agent bundle) load the addon from
# build/Release/ next to dist/. The agent is the one bundled file; dist/src is the CLI's.
# The agent is exec'd by the PAM module as root: a fixed interpreter, not /usr/bin/env.
install -D -m 755 dist/agent/main.js "$LIB/dist/agent/main.js"
sed -i '1s|.*|#!/usr/bin/node|' "$LIB/dist/agent/main.js"
# the resident agent's master: run as `node master.js` by ecryptfs-agent.service
install -D -m 644 dist/agent/master.js "$LIB/dist/agent/master.js"
(cd dist && find src -type f -name '*.js' -print0 | xargs -0 cp --parents -t "$LIB/dist")
find "$LIB/dist/src" -type d -exec chmod 755 {} + -o -type f -exec chmod 644 {} +
install -D -m 644 build/Release/ecryptfs_native.node "$LIB/build/Release/ecryptfs_native.node"

# The CLI: the project's own launcher (requires ../dist/src/cli/main.js), linked from bin/.
install -D -m 755 bin/ecryptfs-agent "$LIB/bin/ecryptfs-agent"
sed -i '1s|^#!/usr/bin/env node$|#!/usr/bin/node|' "$LIB/bin/ecryptfs-agent"
mkdir -p "$S$P/bin"
ln -s "../lib/$PKG/bin/ecryptfs-agent" "$S$P/bin/ecryptfs-agent"

# --- production node_modules: the dependency closure npm itself computes (winston & co.),
# copied from the installed tree, so installing needs no network. Top-level package dirs
# carry their own nested node_modules, which hold only their dependencies.
all=$(npm ls --omit=dev --all --parseable | tail -n +2 | sed "s|^$REPO/||" | sort -u)
mods=$(grep -E '^node_modules/(@[^/]+/)?[^/]+$' <<< "$all" || true)
[ -n "$mods" ] || die "npm ls found no production dependencies (npm ci first?)"
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
		if (!["MIT", "ISC"].includes(license)) { console.error(`install: ${name} has license ${license}; update packaging/copyright`); bad = 1; }
		if (!copyright.includes(`node_modules/${name}/*`)) { console.error(`install: ${name} missing from packaging/copyright`); bad = 1; }
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

# --- the resident agent's units; ExecStart= names the agent's path
if [ -n "$SYSTEMDDIR" ]; then
	for unit in ecryptfs-agent.socket ecryptfs-agent-user.socket ecryptfs-agent.service; do
		install -D -m 644 "packaging/systemd/$unit" "$S$SYSTEMDDIR/$unit"
	done
	if [ "$PREFIX" != /usr ]; then
		sed -i "s|/usr/lib/$PKG/|$P/lib/$PKG/|g; s|/usr/share/doc/$PKG/|$P/share/doc/$PKG/|g" "$S$SYSTEMDDIR/ecryptfs-agent.service"
	fi
fi

# --- man pages (uncompressed: each distribution's packaging compresses its own way), docs
node packaging/gen-man.js "$S$P/share/man" > /dev/null
install -D -m 644 packaging/copyright "$S$P/share/doc/$PKG/copyright"
install -m 644 README.md docs/*.md "$S$P/share/doc/$PKG/"

# ---------------------------------------------------------------- copy into place
OLD=
[ -f "$DESTDIR$MANIFEST" ] && OLD=$(cat "$DESTDIR$MANIFEST")
NEW=$W/MANIFEST
# directories created by an earlier run stay recorded as ours
grep '^d ' <<< "$OLD" > "$NEW" || true
(cd "$S" && find . -mindepth 1 -type d -printf '%P\n' | LC_ALL=C sort) > "$W/dirs"   # parents first
(cd "$S" && find . -mindepth 1 ! -type d -printf '%P\n' | LC_ALL=C sort) > "$W/files"
[ -z "$(cd "$S" && find . -name $'*\n*')" ] || die "a file name with a newline in the tree"
dirs=()
declare -A recorded=()
while read -r line; do recorded[$line]=1; done < "$NEW"
while read -r p; do
	if [ ! -d "$DESTDIR/$p" ]; then
		dirs+=("$DESTDIR/$p")
		[ -n "${recorded["d /$p"]:-}" ] || echo "d /$p" >> "$NEW"
	fi
done < "$W/dirs"
OWN=()
[ "$(id -u)" != 0 ] || OWN=(-o 0 -g 0)
[ ${#dirs[@]} -eq 0 ] || install -d -m 755 "${OWN[@]}" "${dirs[@]}"
# Files and links in one tar stream, modes kept, root's when run as root; directories that
# existed stay as they are. tar unlinks each old file first: a running process keeps its
# mapping of the old .so.
tar -C "$S" --no-recursion -T "$W/files" --owner=0 --group=0 --numeric-owner -cf - | tar -C "${DESTDIR:-/}" -xpf -
while read -r p; do
	if [ -L "$S/$p" ]; then echo "l /$p"; else echo "f /$p"; fi
done < "$W/files" >> "$NEW"
# files of an earlier install that this one no longer has
comm -23 <(grep '^[fl] ' <<< "$OLD" | LC_ALL=C sort) <(LC_ALL=C sort "$NEW") | while read -r kind path; do
	rm -f "$DESTDIR$path"
done
install -m 644 "${OWN[@]}" "$NEW" "$DESTDIR$MANIFEST"

echo "install: installed ecryptfs-agent into ${DESTDIR:-/} (prefix $PREFIX, PAM module in $PAMDIR${SYSTEMDDIR:+, units in $SYSTEMDDIR})"
if [ -z "$DESTDIR" ]; then
	[ -x /usr/bin/node ] || echo "install: WARNING: /usr/bin/node missing; the agent's interpreter is /usr/bin/node (Node >= 18.13)" >&2
	if [ -n "$SYSTEMDDIR" ] && systemd_live; then
		systemctl daemon-reload >/dev/null 2>&1 || true
		echo "install: the resident agent (optional): systemctl enable --now $UNITS"
	fi
	if [ -n "$(pam_users)" ]; then
		echo "install: $SYSCONFDIR/pam.d already names pam_ecryptfs_agent.so: $(pam_users | tr '\n' ' ')"
	else
		echo "install: now add these lines to your PAM stacks (docs/install.md says where, per distribution):"
		pam_lines
	fi
fi
