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
import { gatherDoctorFacts, gatherKernelFacts, gatherPamStacks } from '../../src/actions/doctor-facts';
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
  assert.ok(gatherPamStacks().some((s) => s.path === '/etc/pam.d/common-auth'));
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
  for (const id of ['kernel.aes', 'pam.auth', 'pam.session', 'pam.password', 'pam.leftover', 'swap']) assert.ok(find(j.findings, id), id);
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
