/**
 * `ecryptfs-agent doctor` on this host: its kernel has NO eCryptfs, so the module check must
 * fail ("module missing") and the exit status be 1; the gathered facts are the real ones; the
 * user-file checks read real modes and owners.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Finding } from '../../src/formats/doctor';
import { gatherDoctorFacts, gatherKernelFacts, gatherPamFacts } from '../../src/actions/doctor-facts';
import { evaluateDoctor } from '../../src/formats/doctor';
import { REPO } from '../helpers/agent';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils } from '../helpers/users';

const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const u = createUser('eatdoc');
after(() => deleteUser(u));

const doctorJson = (r: { stdout: string }) => JSON.parse(r.stdout) as { ok: boolean; findings: Finding[] };
const find = (fs_: Finding[], id: string) => fs_.find((f) => f.id === id);

test('the gathered kernel facts are this host’s: no ecryptfs in /proc/filesystems, no /sys/fs/ecryptfs', () => {
  const k = gatherKernelFacts();
  assert.ok(k.procFilesystems !== null && !/\secryptfs$/m.test(k.procFilesystems));
  assert.equal(k.ecryptfsVersion, null);
  assert.notEqual(k.moduleAvailable, 'module');
  assert.equal(gatherDoctorFacts().user, undefined);
});

test('doctor as root: "module missing: fail", exit 1; human and --json agree', () => {
  const human = spawnSync(CLI, ['doctor'], { encoding: 'utf8' });
  assert.equal(human.status, 1);
  assert.match(human.stdout, /^\[FAIL\] kernel\.ecryptfs: eCryptfs module missing: kernel \S+ cannot mount eCryptfs/m);
  assert.match(human.stdout, /^ {7}fix: Boot a kernel built with CONFIG_ECRYPT_FS/m);
  const json = spawnSync(CLI, ['doctor', '--json'], { encoding: 'utf8' });
  assert.equal(json.status, 1);
  const j = doctorJson(json);
  assert.equal(j.ok, false);
  assert.equal(find(j.findings, 'kernel.ecryptfs')?.status, 'fail');
  assert.ok(!j.findings.some((f) => f.id.startsWith('files')), 'root without -u: no user files');
  for (const id of ['kernel.aes', 'pam.auth.login', 'pam.session.login', 'pam.password.passwd', 'pam.leftover', 'swap']) assert.ok(find(j.findings, id), id);
  assert.equal(spawnSync(CLI, ['doctor', 'extra']).status, 2);
});

test('doctor as the user checks their files; a group-readable wrapped-passphrase fails with the chmod fix', () => {
  setupPrivateWithUtils(u, { fnek: true });
  const good = doctorJson(asUserRun(u, [CLI, 'doctor', '--json']));
  const files = good.findings.filter((f) => f.id.startsWith('files.'));
  assert.equal(files.length, 6, JSON.stringify(files));
  assert.ok(files.every((f) => f.status === 'ok'), JSON.stringify(files));
  fs.chmodSync(join(u.home, '.ecryptfs', 'wrapped-passphrase'), 0o640);
  const bad = spawnSync(CLI, ['doctor', '--json', '-u', u.name], { encoding: 'utf8' });
  const wp = find(doctorJson(bad).findings, 'files.wrapped-passphrase');
  assert.equal(wp?.status, 'fail');
  assert.match(wp?.fix ?? '', /^chmod 600 .*wrapped-passphrase$/);
  assert.equal(asUserRun(u, [CLI, 'doctor', '-u', 'root']).status, 1, 'a user cannot look at root');
});

test('PAM facts: this Debian 12 host’s /etc/pam.d with its @include chains followed; doctor reads them as they are', () => {
  const pam = gatherPamFacts();
  const names = pam.files.map((f) => f.path);
  for (const n of ['login', 'su', 'passwd', 'common-auth', 'common-session', 'common-password']) assert.ok(names.includes(`/etc/pam.d/${n}`), n);
  assert.match(pam.osRelease ?? '', /^ID=debian$/m);
  // the host's stacks have ecryptfs-utils' pam_ecryptfs.so (not ours): the real doctor says so, per service
  const human = spawnSync(CLI, ['doctor'], { encoding: 'utf8' });
  assert.match(human.stdout, /^\[FAIL\] pam\.auth\.login: pam_ecryptfs_agent\.so is not in login's auth stack/m);
  assert.match(human.stdout, /^ {7}fix: Run pam-auth-update --enable ecryptfs-agent .*to \/etc\/pam\.d\/common-auth after line \d+ /m);
  assert.match(human.stdout, /^\[WARN\] pam\.leftover: pam_ecryptfs\.so \(ecryptfs-utils\) is also in the stacks \(\/etc\/pam\.d\/common-auth:\d+ \(auth\)/m);
});

test('PAM facts from a root holding the Gentoo fixture: includes followed on disk, all reached; a removed include is found missing', () => {
  const root = fs.mkdtempSync('/tmp/eatdoc-gentoo-');
  try {
    fs.cpSync(join(REPO, 'test', 'fixtures', 'pam', 'stacks', 'gentoo'), root, { recursive: true });
    const facts = gatherDoctorFacts(undefined, root);
    assert.equal(facts.pam.dir, join(root, 'etc', 'pam.d'));
    assert.deepEqual(facts.pam.files.map((f) => f.path.slice(root.length)).sort(), [
      '/etc/pam.d/login', '/etc/pam.d/passwd', '/etc/pam.d/sshd', '/etc/pam.d/su',
      '/etc/pam.d/system-auth', '/etc/pam.d/system-local-login', '/etc/pam.d/system-login', '/etc/pam.d/system-remote-login',
    ]);
    const pam = evaluateDoctor(facts).filter((f) => f.id.startsWith('pam.'));
    assert.deepEqual(pam.filter((f) => f.status !== 'ok'), []);
    assert.equal(pam.length, 8);
    fs.rmSync(join(root, 'etc', 'pam.d', 'system-login'));
    const broken = evaluateDoctor(gatherDoctorFacts(undefined, root));
    const inc = broken.filter((f) => f.id === 'pam.include');
    // auth and session lines of system-local-login and system-remote-login
    assert.deepEqual(inc.map((f) => f.why.split(' ')[0]), ['/etc/pam.d/system-local-login:1', '/etc/pam.d/system-local-login:4', '/etc/pam.d/system-remote-login:1', '/etc/pam.d/system-remote-login:4'].map((p) => join(root, p)));
    assert.ok(inc.every((f) => f.status === 'fail' && / includes system-login, which does not exist/.test(f.why)));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
