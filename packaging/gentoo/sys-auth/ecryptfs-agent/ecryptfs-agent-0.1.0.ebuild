# Gentoo recipe (a local overlay: packaging/gentoo). The files come from scripts/install.sh,
# like the .deb's and the RPM's.
#
# There is no release URL: put a tarball of the checkout into DISTDIR,
#   git archive --prefix=ecryptfs-agent-0.1.0/ -o "$(portageq distdir)/ecryptfs-agent-0.1.0.tar.gz" HEAD
# src_compile runs npm ci, which downloads the npm dependencies: portage's network-sandbox
# forbids that, so this package needs FEATURES="-network-sandbox" (package.env).

EAPI=8

PYTHON_COMPAT=( python3_{10..13} )
inherit pam python-any-r1 systemd

DESCRIPTION="Login-time unlocking of eCryptfs private directories (PAM module and session agent)"
# no project homepage yet (pkgcheck will say so)
SRC_URI="${P}.tar.gz"
# the agent and library GPL-2+; the bundled npm modules MIT and ISC (copyright file)
LICENSE="GPL-2+ MIT ISC"
SLOT="0"
KEYWORDS="~amd64"
RESTRICT="fetch"

RDEPEND="
	>=net-libs/nodejs-18.13
	sys-libs/pam
"
DEPEND="sys-libs/pam"
BDEPEND="
	${PYTHON_DEPS}
	>=net-libs/nodejs-18.13[npm]
"

pkg_nofetch() {
	einfo "Make ${P}.tar.gz from a checkout and put it into your DISTDIR:"
	einfo "  git archive --prefix=${P}/ -o \"\$(portageq distdir)/${P}.tar.gz\" HEAD"
}

pkg_pretend() {
	if has network-sandbox ${FEATURES}; then
		eerror "npm ci downloads the npm dependencies in src_compile; set FEATURES=\"-network-sandbox\""
		eerror "for ${CATEGORY}/${PN} in /etc/portage/package.env"
		die "network-sandbox is on"
	fi
}

src_compile() {
	npm ci --no-audit --no-fund || die "npm ci failed"
	npm run build || die "npm run build failed"
}

src_install() {
	bash scripts/install.sh --destdir "${D}" --prefix "${EPREFIX}/usr" --pam-dir "$(getpam_mod_dir)" \
		--systemd-dir "$(systemd_get_systemunitdir)" --sysconfdir "${EPREFIX}/etc" || die "install.sh failed"
	# portage owns the files; install.sh --uninstall is for unpackaged installs only
	rm "${ED}/usr/lib/${PN}/MANIFEST" || die
}

pkg_postinst() {
	elog "The PAM module is installed but not yet in any stack. Add to /etc/pam.d/system-auth"
	elog "(included by login, sshd, su and the display managers):"
	elog "  right after 'auth [default=die] pam_faillock.so authfail', the last auth line"
	elog "  (never between pam_unix and that line: its success=1 jump would skip ours and land"
	elog "  on authfail, which refuses the good login):"
	elog "    auth      optional  pam_ecryptfs_agent.so unwrap"
	elog "  after the pam_unix password line:"
	elog "    password  optional  pam_ecryptfs_agent.so"
	elog "  after the pam_unix session line:"
	elog "    session   optional  pam_ecryptfs_agent.so unwrap"
	elog "'ecryptfs-agent doctor' checks that each line is reached."
	elog "pambase regenerates system-auth on updates: keep the change through etc-update or"
	elog "dispatch-conf. Resident agent (optional, systemd):"
	elog "    systemctl enable --now ecryptfs-agent.socket ecryptfs-agent-user.socket"
	elog "See install.md in ${EROOT}/usr/share/doc/${PN}/ (portage compresses it)."
}

pkg_prerm() {
	if [[ -z ${REPLACED_BY_VERSION} ]] && grep -qs pam_ecryptfs_agent "${EROOT}"/etc/pam.d/*; then
		ewarn "Remove the pam_ecryptfs_agent.so lines from ${EROOT}/etc/pam.d:"
		ewarn "$(grep -ns pam_ecryptfs_agent "${EROOT}"/etc/pam.d/*)"
	fi
}
