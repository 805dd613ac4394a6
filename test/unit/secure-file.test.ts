import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileExists, readSmallFile, removeStaleTemps, writeFileAtomic } from '../../src/os/secure-file';
import { isAgentError, type ErrorCode } from '../../src/errors';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(join(os.tmpdir(), 'secure-file-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function fails(expected: ErrorCode, errno?: string) {
  return (e: unknown): boolean => {
    assert.ok(isAgentError(e), String(e));
    assert.equal(e.code, expected);
    if (errno) assert.equal(e.errno, errno);
    return true;
  };
}

test('reads a small regular file', () => {
  const p = join(dir, 'small');
  fs.writeFileSync(p, 'hello');
  assert.equal(readSmallFile(p, { maxBytes: 5 }).toString(), 'hello');
  assert.equal(readSmallFile(p, { maxBytes: 100, expectOwnerUid: process.getuid!() }).toString(), 'hello');
});

test('refuses missing, symlink, directory, FIFO, oversized, wrong owner', () => {
  const target = join(dir, 'target');
  fs.writeFileSync(target, 'x');
  const link = join(dir, 'link');
  fs.symlinkSync(target, link);
  const fifo = join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const big = join(dir, 'big');
  fs.writeFileSync(big, Buffer.alloc(11));
  assert.throws(() => readSmallFile(join(dir, 'nope'), { maxBytes: 10 }), fails('NOT_FOUND', 'ENOENT'));
  assert.throws(() => readSmallFile(link, { maxBytes: 10 }), fails('SYMLINK_REFUSED', 'ELOOP'));
  assert.throws(() => readSmallFile(dir, { maxBytes: 10 }), fails('NOT_REGULAR_FILE', 'EISDIR'));
  assert.throws(() => readSmallFile(fifo, { maxBytes: 10 }), fails('NOT_REGULAR_FILE')); // and does not hang
  assert.throws(() => readSmallFile(big, { maxBytes: 10 }), fails('BAD_CONFIG'));
  assert.throws(() => readSmallFile(big, { maxBytes: 10, tooLargeCode: 'CORRUPT_FILE' }), fails('CORRUPT_FILE'));
  assert.throws(() => readSmallFile(target, { maxBytes: 10, expectOwnerUid: 4242 }), fails('BAD_OWNER'));
});

test('fileExists does not follow symlinks', () => {
  const dangling = join(dir, 'dangling');
  fs.symlinkSync(join(dir, 'missing-target'), dangling);
  assert.equal(fileExists(dangling), true);
  assert.equal(fileExists(join(dir, 'missing-target')), false);
  assert.equal(fileExists(join(dir, 'missing-dir', 'x')), false);
});

test('writeFileAtomic writes mode 0600 regardless of umask and leaves no temp file', () => {
  const p = join(dir, 'atomic');
  const oldMask = process.umask(0o000);
  try {
    writeFileAtomic(p, Buffer.from('one'));
  } finally {
    process.umask(oldMask);
  }
  assert.equal(fs.readFileSync(p, 'utf8'), 'one');
  assert.equal(fs.statSync(p).mode & 0o777, 0o600);
  writeFileAtomic(p, Buffer.from('two'), { mode: 0o640 });
  assert.equal(fs.readFileSync(p, 'utf8'), 'two');
  assert.equal(fs.statSync(p).mode & 0o777, 0o640);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('atomic.tmp-')), []);
});

test('a temp file left by a killed writer is removed by the next write; a live writer\'s is kept', () => {
  const p = join(dir, 'wrapped');
  fs.writeFileSync(p, 'old');
  // a pid that is surely gone: a child that has exited and been reaped
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  assert.ok(deadPid > 0);
  const stale = `wrapped.tmp-${deadPid}-AbC123`;
  const live = `wrapped.tmp-${process.pid}-XyZ789`;
  const other = 'wrapped.tmp-notapid-AbC123';
  for (const n of [stale, live, other]) fs.writeFileSync(join(dir, n), 'partial');
  fs.mkdirSync(join(dir, `wrapped.tmp-${deadPid}-DirDir`)); // not a regular file: left alone
  writeFileAtomic(p, Buffer.from('new'));
  assert.equal(fs.readFileSync(p, 'utf8'), 'new');
  const left = fs.readdirSync(dir).filter((n) => n.startsWith('wrapped.tmp-')).sort();
  assert.deepEqual(left, [`wrapped.tmp-${deadPid}-DirDir`, live, other].sort());
  assert.deepEqual(removeStaleTemps(p), []);
  for (const n of left) fs.rmSync(join(dir, n), { recursive: true });
});

test('writeFileAtomic replaces a symlink instead of writing through it', () => {
  const victim = join(dir, 'victim');
  fs.writeFileSync(victim, 'untouched');
  const p = join(dir, 'wp-link');
  fs.symlinkSync(victim, p);
  writeFileAtomic(p, Buffer.from('new'));
  assert.equal(fs.readFileSync(victim, 'utf8'), 'untouched');
  assert.equal(fs.lstatSync(p).isSymbolicLink(), false);
  assert.equal(fs.readFileSync(p, 'utf8'), 'new');
});

test('writeFileAtomic chowns when asked', () => {
  if (process.getuid!() !== 0) return; // fchown to another uid needs root; covered when run as root
  const p = join(dir, 'owned');
  writeFileAtomic(p, Buffer.from('x'), { uid: 4242, gid: 4243 });
  const st = fs.statSync(p);
  assert.deepEqual([st.uid, st.gid], [4242, 4243]);
});

test('failed write on a full filesystem: typed disk-full error, old file intact, temp removed', (t) => {
  if (process.getuid!() !== 0) {
    t.skip('needs root to mount a tiny tmpfs');
    return;
  }
  const mnt = fs.mkdtempSync(join(os.tmpdir(), 'full-'));
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status, 0, 'mount tmpfs');
  try {
    const p = join(mnt, 'wrapped-passphrase');
    fs.writeFileSync(p, 'old contents');
    assert.throws(() => writeFileAtomic(p, Buffer.alloc(1024 * 1024, 1)), (e: unknown) => {
      assert.ok(isAgentError(e, 'IO'), String(e));
      assert.equal(e.errno, 'ENOSPC');
      assert.match(e.message, /disk full/);
      return true;
    });
    assert.equal(fs.readFileSync(p, 'utf8'), 'old contents');
    assert.deepEqual(fs.readdirSync(mnt), ['wrapped-passphrase']);
  } finally {
    spawnSync('umount', [mnt]);
    fs.rmdirSync(mnt);
  }
});

test('failed write into a missing directory is typed and creates nothing', () => {
  assert.throws(() => writeFileAtomic(join(dir, 'no-such-dir', 'f'), Buffer.from('x')), fails('NOT_FOUND', 'ENOENT'));
});

test('expectUserOrRoot: the user or root may own the file; anyone else is named with the chown to run', () => {
  const p = join(dir, 'user-or-root');
  fs.writeFileSync(p, 'x');
  const mine = process.getuid!();
  assert.equal(readSmallFile(p, { maxBytes: 10, expectUserOrRoot: { uid: mine, name: 'me' } }).toString(), 'x');
  const someone = { uid: mine + 4242, name: 'someone' };
  if (mine === 0) assert.equal(readSmallFile(p, { maxBytes: 10, expectUserOrRoot: someone }).toString(), 'x', "root's file");
  else assert.throws(() => readSmallFile(p, { maxBytes: 10, expectUserOrRoot: someone }), (e) => fails('BAD_OWNER')(e) && isAgentError(e) && e.hint === `chown someone: ${p}`);
});
