/**
 * The distro-neutral install (scripts/install.sh) and what is built from it: into a temporary
 * DESTDIR (owners, modes, shebangs, the MANIFEST), --uninstall (exactly what was installed goes),
 * the RPM built by rpmbuild (scripts/build-rpm.sh) against the .deb (scripts/package.sh), and the
 * Arch and Gentoo recipes, which can only be syntax-checked here (no makepkg, no portage).
 * Never installs into / (this host's PAM stacks and /usr are shared): the VM suites do that.
 * Needs dpkg-dev and rpm (scripts/setup.sh). About 30 s, most of it rpmbuild.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..', '..');
const INSTALL = join(REPO, 'scripts', 'install.sh');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const MULTIARCH = execFileSync('dpkg-architecture', ['-qDEB_HOST_MULTIARCH'], { encoding: 'utf8' }).trim();
const PAMDIR = `/usr/lib/${MULTIARCH}/security`;
const LIB = '/usr/lib/ecryptfs-agent';
/** package.sh's options: the .deb's layout */
const DEB_LAYOUT = ['--prefix', '/usr', '--pam-dir', PAMDIR, '--systemd-dir', '/lib/systemd/system'];

let work = '';

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, cwd: opts.cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function install(destdir: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return run('bash', [INSTALL, '--destdir', destdir, ...args]);
}

/** Every path below root, relative with a leading '/', parents first. */
function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const p = `${rel}/${name}`;
    out.push(p);
    if (lstatSync(join(root, p)).isDirectory()) out.push(...walk(root, p));
  }
  return out;
}

function manifest(destdir: string): string[] {
  return readFileSync(join(destdir, LIB, 'MANIFEST'), 'utf8').trim().split('\n');
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'eat-install-'));
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// The tests below share trees, in this order: MAIN is installed once with the .deb's layout,
// installed over, tampered with, then uninstalled (install.sh takes seconds: npm ls, the copy).
let MAIN = '';
let OPT = '';

test('install.sh into a DESTDIR: root-owned, directories 0755, fixed interpreters, and a MANIFEST of exactly what it wrote', () => {
  MAIN = join(work, 'main');
  const d = MAIN;
  const r = install(d, ...DEB_LAYOUT);
  assert.equal(r.status, 0, r.stderr);
  const paths = walk(d);
  assert.ok(paths.length > 400, `only ${paths.length} paths`);
  const executable = new Set([`${LIB}/dist/agent/main.js`, `${LIB}/bin/ecryptfs-agent`]);
  for (const p of paths) {
    const st = lstatSync(join(d, p));
    assert.equal(`${st.uid}:${st.gid}`, '0:0', p);
    if (st.isSymbolicLink()) continue;
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) assert.equal(mode, '755', p);
    else assert.equal(mode, executable.has(p) ? '755' : '644', p);
  }
  for (const p of executable) assert.equal(readFileSync(join(d, p), 'utf8').split('\n')[0], '#!/usr/bin/node', p);
  assert.equal(readlinkSync(join(d, 'usr/bin/ecryptfs-agent')), '../lib/ecryptfs-agent/bin/ecryptfs-agent');
  assert.ok(existsSync(join(d, PAMDIR, 'pam_ecryptfs_agent.so')));
  assert.match(readFileSync(join(d, 'lib/systemd/system/ecryptfs-agent.service'), 'utf8'),
    /^ExecStart=\/usr\/bin\/node \/usr\/lib\/ecryptfs-agent\/dist\/agent\/master\.js$/m);
  // the MANIFEST: every file and link (but itself), and every directory, since DESTDIR was empty
  const kind = (p: string): string => {
    const st = lstatSync(join(d, p));
    return st.isSymbolicLink() ? 'l' : st.isDirectory() ? 'd' : 'f';
  };
  const listed = paths.filter((p) => p !== `${LIB}/MANIFEST`).map((p) => `${kind(p)} ${p}`);
  assert.deepEqual([...manifest(d)].sort(), listed.sort());
  // the installed tree runs on its own: the launcher, the library and winston load from it
  const cli = run(join(d, 'usr/bin/ecryptfs-agent'), ['--help']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /ecryptfs-agent/);
});

test('installing over an earlier install removes the files the new one no longer has', () => {
  const d = MAIN;
  writeFileSync(join(d, LIB, 'dist/src/gone.js'), '');
  appendFileSync(join(d, LIB, 'MANIFEST'), `f ${LIB}/dist/src/gone.js\n`);
  assert.equal(install(d, ...DEB_LAYOUT).status, 0);
  assert.ok(!existsSync(join(d, LIB, 'dist/src/gone.js')));
  assert.ok(!manifest(d).includes(`f ${LIB}/dist/src/gone.js`));
  // the directories the first run created are still recorded as its own
  assert.ok(manifest(d).includes('d /usr/lib/ecryptfs-agent'));
  assert.ok(manifest(d).includes('d /usr'));
});

test('--uninstall refuses a MANIFEST it did not write and removes nothing', () => {
  const d = MAIN;
  const list = join(d, LIB, 'MANIFEST');
  const saved = readFileSync(list, 'utf8');
  const before = walk(d);
  for (const bad of ['f /usr/lib/ecryptfs-agent/../../../etc/passwd\n', 'f usr/lib/relative\n', 'x /usr/lib/unknown\n']) {
    writeFileSync(list, saved + bad);
    const r = install(d, '--uninstall', ...DEB_LAYOUT);
    assert.notEqual(r.status, 0, bad);
    assert.deepEqual(walk(d), before, bad);
  }
  writeFileSync(list, saved);
});

test('another prefix: ExecStart= follows the agent; --no-systemd installs no unit', () => {
  OPT = join(work, 'opt');
  const d = OPT;
  assert.equal(install(d, '--prefix', '/opt/eca', '--pam-dir', '/lib/security', '--systemd-dir', '/etc/systemd/system').status, 0);
  const unit = readFileSync(join(d, 'etc/systemd/system/ecryptfs-agent.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/node \/opt\/eca\/lib\/ecryptfs-agent\/dist\/agent\/master\.js$/m);
  assert.doesNotMatch(unit, /\/usr\/lib\/ecryptfs-agent/);
  assert.ok(existsSync(join(d, 'lib/security/pam_ecryptfs_agent.so')));
  assert.ok(existsSync(join(d, 'opt/eca/lib/ecryptfs-agent/dist/agent/main.js')));
  const n = join(work, 'nosystemd');
  assert.equal(install(n, '--pam-dir', '/lib/security', '--no-systemd').status, 0);
  assert.deepEqual(walk(n).filter((p) => p.includes('systemd')), []);
  assert.ok(walk(n).length > 400);
});

test('install.sh refuses contradictory or relative options', () => {
  const d = join(work, 'bad');
  for (const args of [
    ['--no-systemd', '--systemd-dir', '/x'],
    ['--pam-dir', 'lib/security'],
    ['--prefix', 'usr', '--pam-dir', '/lib/security'],
    ['--frobnicate'],
  ]) {
    const r = install(d, ...args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.ok(!existsSync(d), `${args.join(' ')} wrote something`);
  }
});

test('--uninstall removes exactly what was installed: foreign files and their directories stay', () => {
  // with the options of the install (the MANIFEST is found through --prefix): nothing left at all
  const r0 = install(OPT, '--uninstall', '--prefix', '/opt/eca');
  assert.equal(r0.status, 0, r0.stderr);
  assert.deepEqual(readdirSync(OPT), []);
  const d = MAIN;
  writeFileSync(join(d, 'usr/share/man/man1/other.1'), 'not ours\n');
  const r = install(d, '--uninstall', ...DEB_LAYOUT);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /kept .*\/usr\/share\/man\/man1 \(not empty\)/);
  assert.deepEqual(walk(d), ['/usr', '/usr/share', '/usr/share/man', '/usr/share/man/man1', '/usr/share/man/man1/other.1']);
  // nothing installed now: refuses, says why
  const again = install(d, '--uninstall');
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /MANIFEST/);
});

/** Files and links of a package as "mode path[ -> target]", directories left out: rpm lists only
 * the directories it owns, dpkg every one. Paths normalised to the RPM's layout. */
function normalise(mode: string, path: string, link: string | undefined, libdir: string): string {
  const p = path
    .replace(/^\.\//, '/')
    .replace(/^\/lib\/systemd\//, '/usr/lib/systemd/') // Debian 12's units are below /lib
    .replace(`/usr/lib/${MULTIARCH}/security/`, `${libdir}/security/`) // multiarch vs lib64
    .replace(/^(\/usr\/share\/(?:doc|man)\/.*)\.gz$/, '$1'); // dh_compress and brp-compress differ
  return `${mode} ${p}${link ? ` -> ${link}` : ''}`;
}

test('the RPM, built by rpmbuild from the same install.sh, has the .deb\'s files but the Debian-only ones', () => {
  const debR = run('bash', [join(REPO, 'scripts', 'package.sh'), '--out', join(work, 'deb')]);
  assert.equal(debR.status, 0, debR.stderr);
  const rpmR = run('bash', [join(REPO, 'scripts', 'build-rpm.sh'), '--out', join(work, 'rpm')]);
  assert.equal(rpmR.status, 0, rpmR.stderr);
  const deb = debR.stdout.trim().split('\n').pop() ?? '';
  const rpm = rpmR.stdout.trim().split('\n').pop() ?? '';
  assert.match(rpm, new RegExp(`/ecryptfs-agent-${VERSION.replace(/\./g, '\\.')}-1\\.[a-z0-9_]+\\.rpm$`));
  const libdir = execFileSync('rpm', ['--eval', '%{_libdir}'], { encoding: 'utf8' }).trim();

  const debFiles = new Set<string>();
  for (const line of execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).trim().split('\n')) {
    const m = /^(\S+) (\S+)\s+\d+ \S+ \S+ (\.\/\S*?)\/?(?: -> (\S+))?$/.exec(line);
    assert.ok(m, line);
    if (!m[1]?.startsWith('d')) debFiles.add(normalise(m[1] as string, m[3] as string, m[4], libdir));
  }
  const rpmFiles = new Set<string>();
  const qf = '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES} %{FILELINKTOS}\n]';
  for (const line of execFileSync('rpm', ['-qp', '--qf', qf, rpm], { encoding: 'utf8' }).trim().split('\n')) {
    const [mode, owner, path, link] = line.split(' ') as [string, string, string, string | undefined];
    assert.equal(owner, 'root:root', path);
    if (!mode.startsWith('d')) rpmFiles.add(normalise(mode, path, link || undefined, libdir));
  }
  // rpm -qlp names the same files as the listing above
  const qlp = execFileSync('rpm', ['-qlp', rpm], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(qlp.length, execFileSync('rpm', ['-qp', '--qf', qf, rpm], { encoding: 'utf8' }).trim().split('\n').length);

  // documented in docs/install.md as the .deb's own
  const debianOnly = [
    '-rw-r--r-- /usr/share/pam-configs/ecryptfs-agent',
    '-rw-r--r-- /usr/share/lintian/overrides/ecryptfs-agent',
    '-rw-r--r-- /usr/share/doc/ecryptfs-agent/changelog',
  ];
  for (const f of debianOnly) assert.ok(debFiles.delete(f), `${f} not in the .deb`);
  const onlyDeb = [...debFiles].filter((f) => !rpmFiles.has(f));
  const onlyRpm = [...rpmFiles].filter((f) => !debFiles.has(f));
  assert.deepEqual({ onlyDeb, onlyRpm }, { onlyDeb: [], onlyRpm: [] });
  assert.ok(rpmFiles.size > 400, `only ${rpmFiles.size} files`);

  const requires = execFileSync('rpm', ['-qp', '--requires', rpm], { encoding: 'utf8' }).split('\n');
  for (const want of ['nodejs >= 18.13', 'pam', '/usr/bin/node', 'libpam.so.0()(64bit)']) assert.ok(requires.includes(want), want);
});

/** docs/install.md's section for one distribution: from its "### " heading to the next heading. */
function docsSection(heading: string): string {
  const md = readFileSync(join(REPO, 'docs', 'install.md'), 'utf8');
  const start = md.indexOf(`\n### ${heading}`);
  assert.ok(start >= 0, heading);
  const end = md.slice(start + 1).search(/\n##+ /);
  return end < 0 ? md.slice(start) : md.slice(start, start + 1 + end);
}

/** The PAM lines a text advises, whitespace collapsed. */
function pamLines(text: string): string[] {
  return [...text.matchAll(/\b(auth|session|password)\s+optional\s+pam_ecryptfs_agent\.so( unwrap)?/g)].map((m) =>
    m[0].replace(/\s+/g, ' '),
  );
}

/** Each recipe's post-install advice: the three lines, in the files docs/install.md names. */
const RECIPES: { name: string; advice: string; heading: string; files: string[] }[] = [
  { name: 'Gentoo', advice: 'packaging/gentoo/sys-auth/ecryptfs-agent/ecryptfs-agent-0.1.0.ebuild', heading: 'Gentoo', files: ['system-auth'] },
  { name: 'Arch', advice: 'packaging/arch/ecryptfs-agent.install', heading: 'Arch Linux', files: ['system-auth', 'system-login'] },
  { name: 'RPM', advice: 'packaging/rpm/ecryptfs-agent.spec', heading: 'Fedora', files: ['postlogin', 'system-auth', 'password-auth'] },
];

test('each recipe\'s post-install advice is docs/install.md\'s for that distribution', () => {
  for (const r of RECIPES) {
    const advice = readFileSync(join(REPO, r.advice), 'utf8');
    const section = docsSection(r.heading);
    const lines = pamLines(advice);
    assert.deepEqual([...new Set(lines.map((l) => l.split(' ')[0]))].sort(), ['auth', 'password', 'session'], r.name);
    const documented = new Set(pamLines(section));
    for (const l of lines) assert.ok(documented.has(l), `${r.name}: "${l}" is not in the docs' section`);
    for (const f of r.files) {
      assert.ok(advice.includes(f), `${r.name}: advice does not name ${f}`);
      assert.ok(section.includes(f), `${r.name}: docs section does not name ${f}`);
    }
  }
});

test('the recipes: shell syntax, version, and the neutral install with DESTDIR', () => {
  const pkgbuild = join(REPO, 'packaging/arch/PKGBUILD');
  const ebuild = join(REPO, `packaging/gentoo/sys-auth/ecryptfs-agent/ecryptfs-agent-${VERSION}.ebuild`);
  for (const f of [pkgbuild, join(REPO, 'packaging/arch/ecryptfs-agent.install'), ebuild]) {
    const r = run('bash', ['-n', f]);
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
  // sourced in a subshell as makepkg does (without makepkg: nothing is built)
  const vars = run('bash', ['-c', 'set -eu; source ./PKGBUILD; printf "%s\\n" "$pkgname" "$pkgver" "$install" "${depends[*]}"'], {
    cwd: join(REPO, 'packaging/arch'),
  });
  assert.equal(vars.status, 0, vars.stderr);
  const [name, ver, inst, depends] = vars.stdout.split('\n');
  assert.equal(name, 'ecryptfs-agent');
  assert.equal(ver, VERSION);
  assert.ok(existsSync(join(REPO, 'packaging/arch', inst as string)), `${inst}`);
  assert.match(depends as string, /(^| )nodejs>=18\.13( |$)/);
  assert.match(depends as string, /(^| )pam( |$)/);
  const specVersion = execFileSync('rpmspec', ['-q', '--qf', '%{VERSION}\n', join(REPO, 'packaging/rpm/ecryptfs-agent.spec')], {
    encoding: 'utf8',
  }).split('\n')[0];
  assert.equal(specVersion, VERSION);
  assert.match(readFileSync(pkgbuild, 'utf8'), /bash scripts\/install\.sh --destdir "\$pkgdir"/);
  assert.match(readFileSync(ebuild, 'utf8'), /bash scripts\/install\.sh --destdir "\$\{D\}"/);
});
