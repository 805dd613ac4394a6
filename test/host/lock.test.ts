import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentError } from '../../src/errors';
import { withFileLock } from '../../src/os/lock';

const isRoot = process.getuid?.() === 0;
const code = (c: string) => (e: unknown) => e instanceof AgentError && e.code === c;
/** Does another process get LOCK_EX|LOCK_NB on path right now? */
const othersCanLock = (p: string) =>
  spawnSync('python3', ['-c', 'import fcntl,sys\nf=open(sys.argv[1],"r+")\ntry:\n fcntl.flock(f,fcntl.LOCK_EX|fcntl.LOCK_NB);print("yes")\nexcept OSError:\n print("no")', p], { encoding: 'utf8' }).stdout.trim() === 'yes';

describe('withFileLock (root)', { skip: !isRoot && 'needs root' }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'eat-lock-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('creates a 0600 root file, holds LOCK_EX while fn runs, releases after (also on throw)', () => {
    const p = join(dir, 'a.lock');
    const r = withFileLock(p, (fd) => ({ fd, other: othersCanLock(p) }), { timeoutMs: 100 });
    assert.equal(r.other, false);
    assert.ok(r.fd > 2);
    assert.equal(othersCanLock(p), true);
    assert.throws(() => withFileLock(p, () => { throw new Error('inner'); }), /inner/);
    assert.equal(othersCanLock(p), true);
  });

  test('a lock held elsewhere → LOCK_TIMEOUT after about timeoutMs; nested use in one process too', async () => {
    const p = join(dir, 'b.lock');
    writeFileSync(p, '');
    const holder = spawn('python3', ['-c', 'import fcntl,sys,time\nf=open(sys.argv[1],"r+")\nfcntl.flock(f,fcntl.LOCK_EX)\nprint("held",flush=True)\ntime.sleep(30)', p], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((res) => holder.stdout!.once('data', res));
      const t0 = Date.now();
      assert.throws(() => withFileLock(p, () => 1, { timeoutMs: 300 }), code('LOCK_TIMEOUT'));
      const dt = Date.now() - t0;
      assert.ok(dt >= 280 && dt < 2000, `waited ${dt} ms`);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((res) => holder.once('exit', res));
    }
    assert.equal(withFileLock(p, () => 'got it', { timeoutMs: 1000 }), 'got it');
    const q = join(dir, 'c.lock');
    assert.throws(() => withFileLock(q, () => withFileLock(q, () => 1, { timeoutMs: 50 })), code('LOCK_TIMEOUT'));
  });

  test('refuses symlinks, non-regular files, non-root owners and group/other-writable files', () => {
    const target = join(dir, 'target');
    writeFileSync(target, '');
    symlinkSync(target, join(dir, 'sym.lock'));
    assert.throws(() => withFileLock(join(dir, 'sym.lock'), () => 1), code('SYMLINK_REFUSED'));
    mkdirSync(join(dir, 'd.lock'));
    assert.throws(() => withFileLock(join(dir, 'd.lock'), () => 1), (e: unknown) => e instanceof AgentError && e.errno === 'EISDIR');
    spawnSync('mkfifo', [join(dir, 'f.lock')]);
    assert.throws(() => withFileLock(join(dir, 'f.lock'), () => 1), code('NOT_REGULAR_FILE'));
    writeFileSync(join(dir, 'u.lock'), '');
    chownSync(join(dir, 'u.lock'), 65534, 65534);
    assert.throws(() => withFileLock(join(dir, 'u.lock'), () => 1), code('BAD_OWNER'));
    writeFileSync(join(dir, 'w.lock'), '');
    chmodSync(join(dir, 'w.lock'), 0o666);
    assert.throws(() => withFileLock(join(dir, 'w.lock'), () => 1), code('BAD_OWNER'));
  });
});
