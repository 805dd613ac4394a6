/** doctor's pure rules: kernel, PAM stacks, swap, file modes; rendering and exit code. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkKernel,
  checkPam,
  checkSwap,
  checkUserFiles,
  doctorExitCode,
  evaluateDoctor,
  type FileFact,
  type Finding,
  type KernelFacts,
  parseCrypttab,
  type PamFacts,
  parseProcSwaps,
  procCryptoNames,
  renderFindings,
  renderFindingsJson,
  type UserFacts,
} from '../../src/formats/doctor';

const byId = (fs: Finding[], id: string): Finding => {
  const f = fs.find((x) => x.id === id);
  assert.ok(f, `no finding ${id} in ${JSON.stringify(fs.map((x) => x.id))}`);
  return f;
};

const CRYPTO = 'name         : sha512\ndriver       : sha512-generic\n\nname         : aes\ndriver       : aes-aesni\n';
const kernel = (over: Partial<KernelFacts> = {}): KernelFacts => ({
  procFilesystems: 'nodev\tsysfs\nnodev\ttmpfs\n\text4\n',
  ecryptfsVersion: null,
  moduleAvailable: 'absent',
  release: '6.1.0-test',
  procCrypto: CRYPTO,
  ...over,
});

test('kernel: eCryptfs loaded with FNEK → ok; without the FNEK bit → warn', () => {
  const loaded = checkKernel(kernel({ procFilesystems: 'nodev\tsysfs\n\tecryptfs\n', ecryptfsVersion: 0x1ff }));
  assert.equal(byId(loaded, 'kernel.ecryptfs').status, 'ok');
  assert.match(byId(loaded, 'kernel.ecryptfs').why, /version 511/);
  assert.equal(byId(loaded, 'kernel.fnek').status, 'ok');
  const old = checkKernel(kernel({ procFilesystems: '\tecryptfs\n', ecryptfsVersion: 0x0ff }));
  assert.equal(byId(old, 'kernel.fnek').status, 'warn');
});

test('kernel: not loaded but loadable → warn with modprobe; missing → fail "module missing"', () => {
  const loadable = byId(checkKernel(kernel({ moduleAvailable: 'module' })), 'kernel.ecryptfs');
  assert.equal(loadable.status, 'warn');
  assert.match(loadable.fix, /modprobe ecryptfs/);
  const missing = checkKernel(kernel({ moduleAvailable: 'absent' }));
  assert.equal(byId(missing, 'kernel.ecryptfs').status, 'fail');
  assert.match(byId(missing, 'kernel.ecryptfs').why, /module missing/);
  assert.ok(!missing.some((f) => f.id === 'kernel.fnek'), 'no FNEK verdict without the module');
  assert.equal(byId(checkKernel(kernel({ moduleAvailable: 'unknown' })), 'kernel.ecryptfs').status, 'fail');
});

test('kernel: aes from /proc/crypto', () => {
  assert.deepEqual([...procCryptoNames(CRYPTO)], ['sha512', 'aes']);
  assert.equal(byId(checkKernel(kernel()), 'kernel.aes').status, 'ok');
  assert.equal(byId(checkKernel(kernel({ procCrypto: 'name : sha256\n' })), 'kernel.aes').status, 'warn');
  assert.equal(byId(checkKernel(kernel({ procCrypto: null })), 'kernel.aes').status, 'warn');
});

// Debian 12 stacks as pam-auth-update writes them, plus our lines where a test wants them.
const AUTH = `#
# /etc/pam.d/common-auth
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
`;
const SESSION = `session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required	pam_unix.so
session	optional	pam_systemd.so
`;
const PASSWORD = `password	[success=1 default=ignore]	pam_unix.so obscure yescrypt
password	requisite			pam_deny.so
password	required			pam_permit.so
`;
const stacks = (auth: string, session: string, password: string): PamFacts => ({
  dir: '/etc/pam.d',
  osRelease: 'ID=debian\n',
  files: [
    { path: '/etc/pam.d/login', text: '@include common-auth\n@include common-session\n' },
    { path: '/etc/pam.d/passwd', text: '@include common-password\n' },
    { path: '/etc/pam.d/common-auth', text: auth },
    { path: '/etc/pam.d/common-session', text: session },
    { path: '/etc/pam.d/common-password', text: password },
  ],
});

test('PAM: our module after pam_unix in auth/session/password → ok', () => {
  const f = checkPam(
    stacks(
      `${AUTH}auth optional /usr/lib/x86_64-linux-gnu/security/pam_ecryptfs_agent.so unwrap\n`,
      `${SESSION}session optional pam_ecryptfs_agent.so\n`,
      `${PASSWORD}password optional pam_ecryptfs_agent.so\n`,
    ),
  );
  for (const id of ['pam.auth.login', 'pam.session.login', 'pam.password.passwd', 'pam.leftover']) assert.equal(byId(f, id).status, 'ok', id);
  assert.match(byId(f, 'pam.auth.login').why, /common-auth:6\), after pam_unix\.so \(\/etc\/pam\.d\/common-auth:3\)/);
  assert.equal(doctorExitCode(f), 0);
});

test('PAM: missing auth/session fail, missing password warns; the fix names the file and the line', () => {
  const f = checkPam(stacks(AUTH, SESSION, PASSWORD));
  assert.equal(byId(f, 'pam.auth.login').status, 'fail');
  assert.equal(
    byId(f, 'pam.auth.login').fix,
    'Run pam-auth-update --enable ecryptfs-agent (the package\'s profile), or add "auth     optional  pam_ecryptfs_agent.so unwrap" to /etc/pam.d/common-auth after line 5 ("auth required pam_permit.so")',
  );
  assert.equal(byId(f, 'pam.session.login').status, 'fail');
  assert.equal(byId(f, 'pam.password.passwd').status, 'warn');
  assert.match(byId(f, 'pam.password.passwd').fix, /"password optional  pam_ecryptfs_agent\.so" to \/etc\/pam\.d\/common-password after line 3 /);
  assert.equal(doctorExitCode(f), 1);
});

test('PAM: before pam_unix fails (auth), warns (password); session only needs to be reached; auth without unwrap warns', () => {
  const before = checkPam(
    stacks(`auth optional pam_ecryptfs_agent.so unwrap\n${AUTH}`, `session optional pam_ecryptfs_agent.so\n${SESSION}`, `password optional pam_ecryptfs_agent.so\n${PASSWORD}`),
  );
  assert.equal(byId(before, 'pam.auth.login').status, 'fail');
  assert.match(byId(before, 'pam.auth.login').why, /before pam_unix.*common-auth:1 before \/etc\/pam\.d\/common-auth:4/);
  assert.match(byId(before, 'pam.auth.login').fix, /^Move line 1 of \/etc\/pam\.d\/common-auth: .*after line 6 /);
  assert.equal(byId(before, 'pam.password.passwd').status, 'warn');
  assert.equal(byId(before, 'pam.session.login').status, 'ok');
  const noUnwrap = checkPam(stacks(`${AUTH}auth optional pam_ecryptfs_agent.so\n`, SESSION, PASSWORD));
  assert.equal(byId(noUnwrap, 'pam.auth.login').status, 'warn');
  assert.match(byId(noUnwrap, 'pam.auth.login').fix, /unwrap/);
});

test('PAM: a leftover pam_ecryptfs.so in the same stacks warns (both would act); no service file → one warning', () => {
  const f = checkPam(stacks(`${AUTH}auth required pam_ecryptfs.so unwrap\nauth optional pam_ecryptfs_agent.so unwrap\n`, SESSION, PASSWORD));
  const l = byId(f, 'pam.leftover');
  assert.equal(l.status, 'warn');
  assert.match(l.why, /common-auth:6 \(auth\).*: both modules unlock and mount in login auth/);
  assert.match(l.fix, /pam-auth-update --remove ecryptfs-utils/);
  const none = checkPam({ dir: '/etc/pam.d', osRelease: null, files: [] });
  assert.deepEqual(none.map((x) => [x.id, x.status]), [['pam', 'warn']]);
});

test('swap: none / zram / dm-crypt with a random key / LUKS are ok; plain fails with the fix; unknown warns', () => {
  assert.deepEqual(parseProcSwaps('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-1 partition 999 0 -2\n/swap\\040file file 10 0 -3\n'), [
    { path: '/dev/dm-1', type: 'partition' },
    { path: '/swap file', type: 'file' },
  ]);
  assert.deepEqual(parseCrypttab('# x\ncryptswap UUID=abc /dev/urandom swap,cipher=aes-xts-plain64\nhome /dev/sda3 none luks\n'), [
    { name: 'cryptswap', device: 'UUID=abc', key: '/dev/urandom', options: ['swap', 'cipher=aes-xts-plain64'] },
    { name: 'home', device: '/dev/sda3', key: 'none', options: ['luks'] },
  ]);
  assert.equal(checkSwap([], null)[0]?.status, 'ok');
  assert.equal(checkSwap([{ path: '/dev/zram0', type: 'partition', backing: 'zram' }], null)[0]?.status, 'ok');
  const random = checkSwap([{ path: '/dev/dm-1', type: 'partition', backing: 'dm-crypt', cryptName: 'cryptswap', cryptUuid: 'CRYPT-PLAIN-cryptswap' }], 'cryptswap /dev/sda2 /dev/urandom swap\n');
  assert.equal(random[0]?.status, 'ok');
  assert.match(random[0]?.why ?? '', /random key/);
  const luks = checkSwap([{ path: '/dev/dm-2', type: 'partition', backing: 'dm-crypt', cryptName: 'sda3_crypt', cryptUuid: 'CRYPT-LUKS2-x' }], 'sda3_crypt UUID=1 none luks\n');
  assert.equal(luks[0]?.status, 'ok');
  assert.match(luks[0]?.why ?? '', /persistent key/);
  const plain = checkSwap([{ path: '/dev/sda2', type: 'partition', backing: 'plain' }], null);
  assert.equal(plain[0]?.status, 'fail');
  assert.match(plain[0]?.fix ?? '', /crypttab.*\/dev\/urandom swap/);
  assert.equal(checkSwap([{ path: '/swapfile', type: 'file', backing: 'unknown' }], null)[0]?.status, 'warn');
  assert.equal(checkSwap(null, null)[0]?.status, 'warn');
});

const file = (role: FileFact['role'], kind: FileFact['kind'], mode: number, uid = 1000, path = `/home/u/${role}`): FileFact => ({ role, path, kind, mode, uid, size: 1 });
const setupFiles = (over: Partial<Record<FileFact['role'], FileFact>> = {}): UserFacts => {
  const base: Record<FileFact['role'], FileFact> = {
    'config-dir': file('config-dir', 'dir', 0o700),
    'wrapped-passphrase': file('wrapped-passphrase', 'file', 0o600),
    'Private.sig': file('Private.sig', 'file', 0o600),
    'Private.mnt': file('Private.mnt', 'file', 0o600),
    lower: file('lower', 'dir', 0o700),
    upper: file('upper', 'dir', 0o500),
  };
  return { name: 'u', uid: 1000, files: Object.values({ ...base, ...over }) };
};

test('files: a fresh setup-private setup is all ok; no ~/.ecryptfs is ok (nothing set up)', () => {
  const f = checkUserFiles(setupFiles());
  assert.ok(f.every((x) => x.status === 'ok'), JSON.stringify(f));
  assert.equal(f.length, 6);
  const none = checkUserFiles({ name: 'u', uid: 1000, files: [file('config-dir', 'missing', 0)] });
  assert.deepEqual(none.map((x) => [x.id, x.status]), [['files', 'ok']]);
  assert.deepEqual(checkUserFiles(undefined), []);
});

test('files: readable wrapped-passphrase, foreign owners, writable dirs, missing dirs are reported with a fix', () => {
  const wp = byId(checkUserFiles(setupFiles({ 'wrapped-passphrase': file('wrapped-passphrase', 'file', 0o644) })), 'files.wrapped-passphrase');
  assert.equal(wp.status, 'fail');
  assert.match(wp.fix, /chmod 600/);
  assert.equal(byId(checkUserFiles(setupFiles({ 'wrapped-passphrase': file('wrapped-passphrase', 'file', 0o600, 1001) })), 'files.wrapped-passphrase').status, 'fail');
  assert.equal(byId(checkUserFiles(setupFiles({ 'wrapped-passphrase': file('wrapped-passphrase', 'missing', 0) })), 'files.wrapped-passphrase').status, 'warn');
  assert.equal(byId(checkUserFiles(setupFiles({ 'config-dir': file('config-dir', 'dir', 0o777) })), 'files.config-dir').status, 'fail');
  assert.equal(byId(checkUserFiles(setupFiles({ 'config-dir': file('config-dir', 'dir', 0o755) })), 'files.config-dir').status, 'warn');
  assert.equal(byId(checkUserFiles(setupFiles({ 'Private.sig': file('Private.sig', 'file', 0o644, 0) })), 'files.Private.sig').status, 'ok', 'root-owned, not writable: accepted');
  assert.equal(byId(checkUserFiles(setupFiles({ 'Private.sig': file('Private.sig', 'symlink', 0o777) })), 'files.Private.sig').status, 'fail');
  assert.equal(byId(checkUserFiles(setupFiles({ 'Private.mnt': file('Private.mnt', 'file', 0o666) })), 'files.Private.mnt').status, 'fail');
  assert.equal(byId(checkUserFiles(setupFiles({ lower: file('lower', 'missing', 0) })), 'files.Private-lower').status, 'fail');
  assert.equal(byId(checkUserFiles(setupFiles({ lower: file('lower', 'dir', 0o755) })), 'files.Private-lower').status, 'warn');
  assert.equal(byId(checkUserFiles(setupFiles({ upper: file('upper', 'dir', 0o700, 0) })), 'files.Private-mountpoint').status, 'fail');
});

test('evaluateDoctor, exit code, human and JSON output', () => {
  const findings = evaluateDoctor({ kernel: kernel(), pam: stacks(AUTH, SESSION, PASSWORD), swaps: [], crypttab: null, user: setupFiles() });
  assert.equal(doctorExitCode(findings), 1);
  const text = renderFindings(findings);
  assert.match(text, /^\[FAIL\] kernel\.ecryptfs: eCryptfs module missing/m);
  assert.match(text, /^ {7}fix: /m);
  assert.match(text, /\d+ ok, \d+ warning\(s\), 3 failure\(s\)\n$/);
  const json = JSON.parse(renderFindingsJson(findings)) as { ok: boolean; findings: Finding[] };
  assert.equal(json.ok, false);
  assert.deepEqual(json.findings, findings);
  assert.equal(doctorExitCode([{ id: 'x', status: 'warn', why: '', fix: '' }]), 0);
  // the way off eCryptfs: once, last, as information that counts nowhere
  assert.equal(findings.filter((f) => f.id === 'ecryptfs.leaving').length, 1);
  assert.equal(findings.at(-1)?.status, 'info');
  assert.match(text, /^\[info\] ecryptfs\.leaving: .*ecryptfs-agent export.*docs\/leaving-ecryptfs\.md\)$/m);
  const withoutInfo = renderFindings(findings.filter((f) => f.status !== 'info'));
  assert.equal(text.split('\n').at(-2), withoutInfo.split('\n').at(-2), 'the summary line does not count it');
  assert.equal(doctorExitCode([{ id: 'x', status: 'info', why: '', fix: '' }]), 0);
});
