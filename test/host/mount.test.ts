/** mount(2)/umount2(2) on the host with tmpfs and bind mounts (no eCryptfs module here). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentError } from '../../src/errors';
import { findMountsAt, mountEcryptfs, mountRaw, readMountInfo, unmount } from '../../src/os/mount';
import { MS } from '../../src/formats/mountinfo';

const isRoot = process.getuid?.() === 0;
const code = (c: string) => (e: unknown) => e instanceof AgentError && e.code === c;

describe('mount (root)', { skip: !isRoot && 'needs root' }, () => {
  let base: string;
  const mounted: string[] = [];
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'eat-mnt-'));
  });
  after(() => {
    for (const p of mounted.reverse()) if (findMountsAt(p).length) unmount(p, { lazy: true });
    rmSync(base, { recursive: true, force: true });
  });

  test('tmpfs with NOSUID|NODEV shows up in mountinfo (also with a space in the path); unmount removes it', () => {
    const t = join(base, 'with space');
    mkdirSync(t);
    mountRaw('eat-tmpfs', t, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m,mode=0700');
    mounted.push(t);
    const m = findMountsAt(t);
    assert.equal(m.length, 1);
    assert.equal(m[0]!.fsType, 'tmpfs');
    assert.equal(m[0]!.source, 'eat-tmpfs');
    assert.match(m[0]!.mountOptions, /(^|,)nosuid(,|$)/);
    assert.match(m[0]!.mountOptions, /(^|,)nodev(,|$)/);
    assert.match(m[0]!.superOptions, /size=1024k/);
    assert.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes('with\\040space'), 'kernel escapes the space');
    unmount(t);
    assert.equal(findMountsAt(t).length, 0);
  });

  test('bind mount; UMOUNT_NOFOLLOW refuses a symlink to the mount point', () => {
    const src = join(base, 'src');
    const dst = join(base, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    writeFileSync(join(src, 'f'), 'hello');
    mountRaw(src, dst, null, MS.BIND, null);
    mounted.push(dst);
    assert.equal(readFileSync(join(dst, 'f'), 'utf8'), 'hello');
    const link = join(base, 'link');
    symlinkSync(dst, link);
    assert.throws(() => unmount(link), code('SYMLINK_REFUSED'));
    assert.equal(findMountsAt(dst).length, 1, 'still mounted');
    unmount(dst);
    assert.equal(findMountsAt(dst).length, 0);
  });

  test('EBUSY (a process has its cwd inside) → UNMOUNT_BUSY; lazy detaches', async () => {
    const t = join(base, 'busy');
    mkdirSync(t);
    mountRaw('tmpfs', t, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    mounted.push(t);
    const child = spawn('sleep', ['30'], { cwd: t, stdio: 'ignore' });
    try {
      await new Promise((r) => child.once('spawn', r));
      assert.throws(() => unmount(t), (e: unknown) => code('UNMOUNT_BUSY')(e) && (e as AgentError).errno === 'EBUSY');
      assert.equal(findMountsAt(t).length, 1);
      unmount(t, { lazy: true });
      assert.equal(findMountsAt(t).length, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('errors map to typed codes: not a mount point, missing target, no eCryptfs in this kernel', () => {
    const plain = join(base, 'plain');
    mkdirSync(plain);
    assert.throws(() => unmount(plain), (e: unknown) => code('MOUNT')(e) && (e as AgentError).errno === 'EINVAL');
    assert.throws(() => mountRaw('tmpfs', join(base, 'nope'), 'tmpfs', 0, null), (e: unknown) => code('MOUNT')(e) && (e as AgentError).errno === 'ENOENT');
    if (!readFileSync('/proc/filesystems', 'utf8').includes('ecryptfs') && !existsSync('/sys/module/ecryptfs')) {
      assert.throws(() => mountEcryptfs(plain, plain, { sigs: ['2eb5a49ebe845786'] }), (e: unknown) => code('NO_ECRYPTFS')(e) && (e as AgentError).errno === 'ENODEV');
    }
    assert.ok(readMountInfo().some((m) => m.mountPoint === '/'));
  });
});
