/**
 * The Debian package (scripts/package.sh): contents, modes, owners, control fields, lintian,
 * the man pages, and that the unpacked tree runs on its own (no missing production module).
 * Installing it is the VM suite's job (test/vm/package.vm.test.ts): dpkg -i here would change
 * this host's /etc/pam.d.
 * Needs dpkg-dev, lintian, man-db (apt-get install dpkg-dev lintian man-db groff-base).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..', '..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const ARCH = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
const MULTIARCH = execFileSync('dpkg-architecture', ['-qDEB_HOST_MULTIARCH'], { encoding: 'utf8' }).trim();
const LIB = './usr/lib/ecryptfs-agent';

let work = '';
let deb = '';
let unpacked = '';
/** dpkg-deb -c lines by path ("./usr/..."), e.g. { mode: '-rw-r--r--', owner: 'root/root', link } */
const entries = new Map<string, { mode: string; owner: string; link?: string }>();

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'eat-pkg-'));
  const r = run('bash', [join(REPO, 'scripts', 'package.sh'), '--out', join(work, 'deb')]);
  assert.equal(r.status, 0, `package.sh failed:\n${r.stderr}`);
  deb = r.stdout.trim().split('\n').pop() ?? '';
  unpacked = join(work, 'root');
  execFileSync('dpkg-deb', ['-x', deb, unpacked]);
  for (const line of execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).trim().split('\n')) {
    const m = /^(\S+) (\S+)\s+\d+ \S+ \S+ (\.\/\S*?)\/?(?: -> (\S+))?$/.exec(line);
    assert.ok(m, `unexpected dpkg-deb -c line: ${line}`);
    entries.set(m[3] as string, { mode: m[1] as string, owner: m[2] as string, link: m[4] });
  }
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the .deb is named after package.json version and the build architecture', () => {
  assert.equal(deb, join(work, 'deb', `ecryptfs-agent_${VERSION}_${ARCH}.deb`));
});

test('files are where the PAM module, the agent and the CLI look for them, with the right modes', () => {
  const want: Record<string, string> = {
    [`./usr/lib/${MULTIARCH}/security/pam_ecryptfs_agent.so`]: '-rw-r--r--',
    [`${LIB}/dist/agent/main.js`]: '-rwxr-xr-x',
    [`${LIB}/dist/agent/master.js`]: '-rw-r--r--',
    './lib/systemd/system/ecryptfs-agent.socket': '-rw-r--r--',
    './lib/systemd/system/ecryptfs-agent-user.socket': '-rw-r--r--',
    './lib/systemd/system/ecryptfs-agent.service': '-rw-r--r--',
    [`${LIB}/dist/src/cli/main.js`]: '-rw-r--r--',
    [`${LIB}/dist/src/os/native.js`]: '-rw-r--r--',
    [`${LIB}/build/Release/ecryptfs_native.node`]: '-rw-r--r--',
    [`${LIB}/node_modules/winston/package.json`]: '-rw-r--r--',
    [`${LIB}/bin/ecryptfs-agent`]: '-rwxr-xr-x',
    './usr/share/pam-configs/ecryptfs-agent': '-rw-r--r--',
    './usr/share/man/man1/ecryptfs-agent.1.gz': '-rw-r--r--',
    './usr/share/man/man8/pam_ecryptfs_agent.8.gz': '-rw-r--r--',
    './usr/share/doc/ecryptfs-agent/copyright': '-rw-r--r--',
    './usr/share/doc/ecryptfs-agent/changelog.gz': '-rw-r--r--',
  };
  for (const [path, mode] of Object.entries(want)) {
    assert.equal(entries.get(path)?.mode, mode, `${path}`);
  }
  assert.equal(entries.get('./usr/bin/ecryptfs-agent')?.link, '../lib/ecryptfs-agent/bin/ecryptfs-agent');
  assert.equal(readlinkSync(join(unpacked, 'usr/bin/ecryptfs-agent')), '../lib/ecryptfs-agent/bin/ecryptfs-agent');
});

test('everything is root:root, directories 0755, nothing group- or world-writable except symlinks', () => {
  assert.ok(entries.size > 50, `only ${entries.size} entries`);
  for (const [path, e] of entries) {
    assert.equal(e.owner, 'root/root', path);
    if (e.mode.startsWith('d')) assert.equal(e.mode, 'drwxr-xr-x', path);
    else if (!e.mode.startsWith('l')) assert.match(e.mode, /^-rw[-x]r-[-x]r-[-x]$/, path);
  }
});

test('the agent runs with a fixed interpreter, not one looked up in PATH', () => {
  const first = readFileSync(join(unpacked, 'usr/lib/ecryptfs-agent/dist/agent/main.js'), 'utf8').split('\n')[0];
  assert.equal(first, '#!/usr/bin/node');
});

test('no tests, benchmarks, TypeScript sources or development dependencies inside', () => {
  const bad = [...entries.keys()].filter((p) =>
    /\/dist\/(test|bench)\/|\.ts$|\.map$|\/node_modules\/(typescript|@types\/node|fast-check|node-gyp|node-addon-api)\//.test(p),
  );
  assert.deepEqual(bad, []);
  // The production closure, no more: every bundled top-level module is one npm lists.
  const prod = new Set(
    execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' })
      .trim().split('\n').slice(1).map((p) => p.slice(REPO.length + 1)),
  );
  const bundled = [...entries.keys()]
    .map((p) => /^\.\/usr\/lib\/ecryptfs-agent\/(node_modules\/(?:@[^/]+\/)?[^/@]+)$/.exec(p)?.[1])
    .filter((p): p is string => p !== undefined && !p.endsWith('/node_modules/@colors'));
  assert.ok(bundled.includes('node_modules/winston'));
  for (const m of bundled) assert.ok(prod.has(m), `${m} is not a production dependency`);
});

test('control: version, architecture, and the dependencies the binaries and scripts need', () => {
  const field = (name: string): string => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
  assert.equal(field('Package'), 'ecryptfs-agent');
  assert.equal(field('Version'), VERSION);
  assert.equal(field('Architecture'), ARCH);
  const depends = field('Depends').split(/,\s*/);
  for (const want of ['nodejs (>= 18.13)', 'libpam-runtime (>= 1.0.1-6)']) assert.ok(depends.includes(want), want);
  // From dpkg-shlibdeps: the PAM module links libpam and libc, the addon libstdc++ and libc.
  for (const lib of ['libc6', 'libpam0g', 'libstdc++6']) assert.ok(depends.some((d) => d.startsWith(`${lib} (>= `)), lib);
  assert.equal(field('Recommends'), 'keyutils');
  assert.equal(field('Suggests'), 'ecryptfs-utils');
  const info = execFileSync('dpkg-deb', ['-I', deb], { encoding: 'utf8' });
  for (const script of ['postinst', 'prerm', 'postrm', 'md5sums']) assert.match(info, new RegExp(`\\s${script}\\s`), script);
});

test('the pam-auth-update profile: optional lines after pam_unix, interactive sessions only', () => {
  const profile = readFileSync(join(unpacked, 'usr/share/pam-configs/ecryptfs-agent'), 'utf8');
  assert.match(profile, /^Auth-Type: Additional$/m);
  assert.match(profile, /^Auth:\n\toptional\tpam_ecryptfs_agent\.so unwrap$/m);
  assert.match(profile, /^Session-Interactive-Only: yes$/m);
  assert.match(profile, /^Session:\n\toptional\tpam_ecryptfs_agent\.so unwrap$/m);
  assert.match(profile, /^Password-Type: Additional$/m);
  assert.match(profile, /^Password:\n\toptional\tpam_ecryptfs_agent\.so$/m);
  // prerm takes the lines out on removal only (not on upgrade), before the module goes.
  const prerm = execFileSync('dpkg-deb', ['-I', deb, 'prerm'], { encoding: 'utf8' });
  assert.match(prerm, /if \[ "\$1" = remove \]; then\n\s*pam-auth-update --package --remove ecryptfs-agent/);
});

test('the unpacked tree runs on its own: CLI, agent library and winston load from it', () => {
  const cli = join(unpacked, 'usr/lib/ecryptfs-agent/bin/ecryptfs-agent');
  const r = run(process.execPath, [cli, '--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: ecryptfs-agent COMMAND/);
  // log.js needs winston and winston-transport from the bundled node_modules; native.js the addon.
  const lib = join(unpacked, 'usr/lib/ecryptfs-agent/dist/src');
  const probe = `const l = require('${lib}/os/log.js'); const n = require('${lib}/os/native.js');
    if (typeof l.createLogger !== 'function') throw new Error('no createLogger');
    if (typeof n.native().getresuid !== 'function') throw new Error('no addon');
    if (!require.resolve('winston', { paths: ['${lib}'] }).startsWith('${unpacked}')) throw new Error('winston from outside');`;
  const p = run(process.execPath, ['-e', probe], { NODE_PATH: '' });
  assert.equal(p.status, 0, p.stderr);
});

test('the resident agent\'s units: the PAM socket root-only, the user socket for all, the master run by node, no mount namespace of its own', () => {
  const unit = (name: string) => readFileSync(join(unpacked, 'lib/systemd/system', name), 'utf8');
  const pam = unit('ecryptfs-agent.socket');
  assert.match(pam, /^ListenStream=\/run\/ecryptfs-agent\/agent\.sock$/m);
  assert.match(pam, /^SocketMode=0600$/m);
  assert.match(pam, /^FileDescriptorName=pam$/m);
  const user = unit('ecryptfs-agent-user.socket');
  assert.match(user, /^ListenStream=\/run\/ecryptfs-agent\/user\.sock$/m);
  assert.match(user, /^SocketMode=0666$/m);
  assert.match(user, /^FileDescriptorName=user$/m);
  const service = unit('ecryptfs-agent.service');
  assert.match(service, /^ExecStart=\/usr\/bin\/node \/usr\/lib\/ecryptfs-agent\/dist\/agent\/master\.js$/m);
  assert.match(service, /^Sockets=ecryptfs-agent\.socket ecryptfs-agent-user\.socket$/m);
  assert.match(service, /^KillMode=mixed$/m);
  // the workers must mount where the logins see it
  assert.doesNotMatch(service, /^(PrivateTmp|ProtectHome|ProtectSystem|PrivateMounts|ReadOnlyPaths|TemporaryFileSystem)=/m);
  const postinst = execFileSync('dpkg-deb', ['-I', deb, 'postinst'], { encoding: 'utf8' });
  assert.match(postinst, /deb-systemd-helper enable "\$unit"/);
  assert.match(postinst, /deb-systemd-invoke try-restart ecryptfs-agent\.service/);
});

test('lintian: no errors and no warnings', () => {
  assert.equal(run('sh', ['-c', 'command -v lintian']).status, 0, 'lintian is not installed (apt-get install lintian)');
  const r = run('lintian', ['--no-tag-display-limit', deb]);
  const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
  assert.deepEqual(tags, []);
  assert.ok(r.status === 0 || r.status === 2, `lintian exited ${r.status}: ${r.stderr}`);
});

/** A man page as man -l renders it for an 80-column terminal; groff's warnings on stderr. */
function renderMan(page: string): { text: string; warnings: string } {
  const r = run('man', ['--warnings', '-l', join(unpacked, page)], { LC_ALL: 'C.UTF-8', MANWIDTH: '80', MAN_KEEP_FORMATTING: '' });
  assert.equal(r.status, 0, r.stderr);
  return { text: r.stdout, warnings: r.stderr };
}

test('both man pages render with man -l, without warnings', () => {
  for (const page of ['usr/share/man/man1/ecryptfs-agent.1.gz', 'usr/share/man/man8/pam_ecryptfs_agent.8.gz']) {
    const { text, warnings } = renderMan(page);
    assert.equal(warnings, '', page);
    assert.match(text, /^NAME\n/m, page);
    assert.match(text, /^SEE ALSO\n/m, page);
  }
});

test('ecryptfs-agent(1) contains the --help text of the CLI and of every command, verbatim', () => {
  const norm = (s: string): string => s.replace(/[\u2010\u2212]/g, '-').replace(/\s+/g, ' ').trim();
  const page = norm(renderMan('usr/share/man/man1/ecryptfs-agent.1.gz').text);
  const cli = join(unpacked, 'usr/lib/ecryptfs-agent/bin/ecryptfs-agent');
  const global = run(process.execPath, [cli, '--help']).stdout;
  const names = [...global.matchAll(/^ {2}([a-z][a-z-]+) {2,}/gm)].map((m) => m[1] as string);
  assert.ok(names.length >= 5, `commands found in --help: ${names.join(' ')}`);
  for (const argv of [['--help'], ...names.map((n) => [n, '--help'])]) {
    const r = run(process.execPath, [cli, ...argv]);
    assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
    for (const line of r.stdout.split('\n').map(norm).filter(Boolean)) {
      assert.ok(page.includes(line), `ecryptfs-agent ${argv.join(' ')}: "${line}" is not in ecryptfs-agent.1`);
    }
  }
});

test('pam_ecryptfs_agent(8) documents every option the module parses and every hook of docs/protocol.md', () => {
  const page = renderMan('usr/share/man/man8/pam_ecryptfs_agent.8.gz').text.replace(/\s+/g, ' ');
  const shim = readFileSync(join(REPO, 'pam', 'pam_ecryptfs_agent.c'), 'utf8');
  const options = [...shim.matchAll(/strn?cmp\(a, "([a-z]+=?)"/g)].map((m) => m[1] as string);
  assert.deepEqual(options.sort(), ['agent=', 'debug', 'socket=', 'timeout=', 'unwrap']);
  for (const o of options) assert.ok(page.includes(o), o);
  const protocol = readFileSync(join(REPO, 'docs', 'protocol.md'), 'utf8');
  const hooks = [...protocol.matchAll(/^\| (pam_sm_[a-z_]+(?:, PAM_[A-Z_]+)?) \|/gm)].map((m) => m[1] as string);
  assert.equal(hooks.length, 6);
  for (const h of hooks) assert.ok(page.includes(h), h);
  for (const code of ['PAM_IGNORE', 'PAM_SUCCESS']) assert.ok(page.includes(code), code);
});

test('the packaged files match the md5sums dpkg will verify', () => {
  const r = run('sh', ['-c', `cd '${unpacked}' && dpkg-deb -I '${deb}' md5sums | md5sum -c --quiet`]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.ok(statSync(join(unpacked, 'usr/lib/ecryptfs-agent/build/Release/ecryptfs_native.node')).size > 10_000);
});
