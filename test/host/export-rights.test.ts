/**
 * `export` as root never walks a tree another user can change under it (actions/export.ts
 * exportRights): a user's tree is read, and DEST written, with that user's rights; a tree root
 * owns is walked as root only when no one else owns or can write it, DEST, or a directory above.
 * Real users, real ownership (as root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { exportRights } from '../../src/actions/export';
import { AgentError } from '../../src/errors';
import { DEFAULT_SALT, deriveKey } from '../../src/formats/kdf';
import { WRITER_CIPHERS, writeLowerFile } from '../helpers/ecryptfs-writer';
import { createUser, deleteUser, type TestUser } from '../helpers/users';

const REPO = join(__dirname, '..', '..', '..');
const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const MOUNT_PASS = 'export-rights-mount-pass';
const asRoot = process.geteuid?.() === 0;
let u: TestUser;
let rootDir: string;

before(() => {
  if (!asRoot) return;
  u = createUser('eatexp');
  rootDir = fs.mkdtempSync('/tmp/export-rights-'); // root's, 0700, in sticky /tmp
});
after(() => {
  if (!asRoot) return;
  deleteUser(u);
  fs.rmSync(rootDir, { recursive: true, force: true });
});

const unsafe = (what: RegExp) => (e: unknown) => e instanceof AgentError && e.code === 'UNSAFE_PATH' && what.test(e.message);

test('exportRights: whose rights root exports with', { skip: !asRoot && 'needs root (real owners)' }, () => {
  const own = join(rootDir, 'root-lower');
  fs.mkdirSync(own);
  assert.deepEqual(exportRights(own, join(rootDir, 'out')), { kind: 'own' }, 'a tree only root can change: as root');
  const theirs = join(u.home, 'lower');
  fs.mkdirSync(theirs);
  fs.chownSync(theirs, u.uid, u.gid);
  const r = exportRights(theirs, join(rootDir, 'out'));
  assert.equal(r.kind, 'owner');
  assert.equal(r.kind === 'owner' && r.user.uid, u.uid, "a user's tree: with that user's rights");
  const rootsInTheirs = join(u.home, 'root-copy');
  fs.mkdirSync(rootsInTheirs);
  assert.throws(() => exportRights(rootsInTheirs, join(rootDir, 'out')), unsafe(new RegExp(`${u.home}: it belongs to uid ${u.uid}`)), 'root-owned, under their home');
  assert.throws(() => exportRights(own, join(u.home, 'out')), unsafe(/belongs to uid/), 'DEST under their home');
  const shared = join(rootDir, 'shared');
  fs.mkdirSync(join(shared, 'lower'), { recursive: true });
  fs.chmodSync(shared, 0o777);
  assert.throws(() => exportRights(join(shared, 'lower'), join(rootDir, 'out')), unsafe(/: it is writable by others/), 'a world-writable, not sticky, directory above');
});

test("export as root of a user's tree runs with the user's rights: a root-only file in it stays out", { skip: !asRoot && 'needs root (real owners)' }, () => {
  const lower = join(u.home, 'Private-copy');
  fs.mkdirSync(lower);
  const key = deriveKey(Buffer.from(MOUNT_PASS), DEFAULT_SALT);
  fs.writeFileSync(join(lower, 'note.txt'), writeLowerFile(Buffer.from('their words\n'), WRITER_CIPHERS[0]!, key.key, key.sig).lower);
  // what root could read, the user could not: a walk with root's rights would copy it out
  fs.writeFileSync(join(lower, 'roots-only'), 'root secret\n', { mode: 0o600 });
  for (const f of ['', 'note.txt']) fs.chownSync(join(lower, f), u.uid, u.gid);
  const dest = join(u.home, 'exported');
  const r = spawnSync(CLI, ['export', '-m', lower, dest], { input: `${MOUNT_PASS}\n`, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`exporting with the rights of ${u.name}, the owner of`));
  assert.match(r.stderr, /roots-only: not exported/);
  assert.deepEqual(fs.readdirSync(dest), ['note.txt']);
  assert.equal(fs.readFileSync(join(dest, 'note.txt'), 'utf8'), 'their words\n');
  assert.equal(fs.statSync(dest).uid, u.uid, 'DEST made by the user');
  assert.equal(fs.statSync(join(dest, 'note.txt')).uid, u.uid);
  // and DEST where only root may write is refused, not written as root
  const r2 = spawnSync(CLI, ['export', '-m', lower, join(rootDir, 'out2')], { input: `${MOUNT_PASS}\n`, encoding: 'utf8' });
  assert.equal(r2.status, 1, r2.stdout + r2.stderr);
  assert.equal(fs.existsSync(join(rootDir, 'out2')), false);
});

test('export as root of a tree only root can change leaves out a directory inside it that a user owns', { skip: !asRoot && 'needs root (real owners)' }, () => {
  const lower = join(rootDir, 'root-tree');
  const key = deriveKey(Buffer.from(MOUNT_PASS), DEFAULT_SALT);
  fs.mkdirSync(join(lower, 'theirs'), { recursive: true });
  fs.writeFileSync(join(lower, 'note.txt'), writeLowerFile(Buffer.from('root words\n'), WRITER_CIPHERS[0]!, key.key, key.sig).lower);
  fs.writeFileSync(join(lower, 'theirs', 'x.txt'), writeLowerFile(Buffer.from('x\n'), WRITER_CIPHERS[0]!, key.key, key.sig).lower);
  fs.chownSync(join(lower, 'theirs'), u.uid, u.gid);
  const dest = join(rootDir, 'root-out');
  const r = spawnSync(CLI, ['export', '-m', lower, dest], { input: `${MOUNT_PASS}\n`, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`theirs: not exported: it belongs to uid ${u.uid}: not entered as root`));
  assert.deepEqual(fs.readdirSync(dest), ['note.txt']);
});
