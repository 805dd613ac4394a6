/**
 * migrate-home on the host (root, real files, throwaway users, the reference tools as judges).
 * The host kernel has no eCryptfs, so: the tree copy and its verification are proven here between
 * two plain directories; the migration itself runs up to the mount (ENODEV) and must stop there
 * cleanly — the plaintext original intact, the ecryptfs-setup-private -b layout in place, the
 * journal resumable; and every refusal changes nothing. The mounted path is proven in the VM
 * (test/vm/migrate.vm.test.ts).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asUser, lookupUser } from '../../src/os/credentials';
import { type ErrorCode, isAgentError } from '../../src/errors';
import { useNativeKdf } from '../../src/os/kdf-native';
import { homeLayout, migrateHome, type MigrateOptions, preflightMigration, releaseLeftAccountLock, setExpiry } from '../../src/actions/migrate-home';
import { type DoneRecord, MigrateState } from '../../src/actions/migrate-journal';
import { DirCursor, DirHandle, forceOpenatFallback, usingOpenat2 } from '../../src/os/fs-at';
import { applyDirMetadata, closeTreeCopy, copyEntry, openTreeCopy, removeExisting, type TreeCopy, type TreeEntry, verifyEntry, walkTree } from '../../src/actions/migrate-tree';
import { mountRaw, readMountInfo, unmount } from '../../src/os/mount';
import { MS } from '../../src/formats/mountinfo';
import { loadPrivateSetup } from '../../src/actions/private-setup';
import { REPO } from '../helpers/agent';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, type TestUser, userKeys } from '../helpers/users';

useNativeKdf();
const CLI = join(REPO, 'bin', 'ecryptfs-agent');

let base: string;
const users: TestUser[] = [];
const cleanups: Array<() => void> = [];
before(() => {
  base = fs.mkdtempSync(join(tmpdir(), 'eat-migrate-'));
  fs.chmodSync(base, 0o755); // users must reach the encrypted-home root made under it
});
after(() => {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {
      /* best effort */
    }
  }
  for (const u of users) {
    deleteUser(u);
    for (const n of fs.readdirSync('/home')) if (n.startsWith(`${u.name}.`)) fs.rmSync(join('/home', n), { recursive: true, force: true });
  }
  fs.rmSync(base, { recursive: true, force: true });
});
function user(prefix = 'eatmg'): TestUser {
  const u = createUser(prefix);
  users.push(u);
  return u;
}
const ref = (u: TestUser) => lookupUser(u.name);
let n = 0;
/** Options with a private state dir and encrypted-home root (never the machine's real ones). */
function opts(extra: Partial<MigrateOptions> = {}): MigrateOptions & { stateDir: string; ecryptfsRoot: string; workDir: string } {
  n++;
  fs.mkdirSync(join(base, `homes${n}`), { mode: 0o755 }); // stands for /home
  fs.chmodSync(join(base, `homes${n}`), 0o755);
  return {
    fnek: true,
    wrappingIndependent: false,
    removeOriginal: false,
    resumeOnly: false,
    stateDir: join(base, `state${n}`),
    ecryptfsRoot: join(base, `homes${n}`, '.ecryptfs'),
    workDir: join(base, `work${n}`), // stands for /run/ecryptfs-agent
    ...extra,
  };
}
const fails = (c: ErrorCode, re?: RegExp) => (e: unknown): boolean => {
  assert.ok(isAgentError(e), String(e));
  assert.equal(e.code, c, e.message);
  if (re) assert.match(`${e.message}\nhint: ${e.hint}`, re);
  return true;
};

/** Every entry under dir (raw names) with type, mode, owner, size, mtime, inode, content hash and link target (not atimes: listing a directory sets its atime). */
function snapshot(dir: string | Buffer): string {
  const out: string[] = [];
  const walk = (p: Buffer, rel: string): void => {
    const st = fs.lstatSync(p, { bigint: true });
    let extra = '';
    if (st.isFile()) extra = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    if (st.isSymbolicLink()) extra = fs.readlinkSync(p, { encoding: 'buffer' }).toString('hex');
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ino} ${extra}`);
    if (st.isDirectory()) {
      for (const name of (fs.readdirSync(p, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) walk(Buffer.concat([p, Buffer.from('/'), name]), `${rel}/${name.toString('hex')}`);
    }
  };
  walk(Buffer.from(dir), '');
  return out.join('\n');
}
/** The snapshot of a home as its original is kept: the top directory 700 (as ecryptfs-migrate-home makes it), all else equal. */
const asOriginal = (snap: string): string => snap.replace(/^( )\d+/, (_m, sp: string) => `${sp}40700`);
const py = (code: string, ...args: string[]): string => {
  const r = spawnSync('/usr/bin/python3', ['-c', code, ...args]);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString();
};
const xattrsOf = (p: string): string => py('import os,sys; print(sorted((k, os.getxattr(sys.argv[1], k, follow_symlinks=False).hex()) for k in os.listxattr(sys.argv[1], follow_symlinks=False) if not k.startswith("security.")))', p);
const sleepAs = (u: TestUser, cwd = '/') => spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', 'sleep', '60'], { cwd, stdio: 'ignore' });

/** A small home with every kind of entry: odd names, links, nodes, modes, owners, times, xattrs. */
function fillTree(root: string, owner: { uid: number; gid: number }): void {
  const b = (s: string): Buffer => Buffer.from(`${root}/${s}`);
  fs.mkdirSync(`${root}/a/b/c`, { recursive: true });
  fs.mkdirSync(`${root}/empty dir`);
  fs.mkdirSync(`${root}/ro`);
  fs.writeFileSync(`${root}/a/b/c/deep.txt`, 'deep\n');
  fs.writeFileSync(`${root}/ro/inside`, 'inside a 500 directory\n');
  fs.writeFileSync(`${root}/empty`, '');
  fs.writeFileSync(`${root}/big`, Buffer.alloc(1 << 20, 7).map((_, i) => (i * 31) & 0xff));
  fs.linkSync(`${root}/big`, `${root}/big.hard`);
  fs.linkSync(`${root}/big`, `${root}/a/big.hard2`);
  fs.writeFileSync(b('new\nline'), 'x');
  fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/latin1-`), Buffer.from([0xe9, 0x74, 0xe9])]), 'not utf-8 name');
  fs.writeFileSync(`${root}/ü tf8 ✓`, 'é');
  fs.writeFileSync(`${root}/secret`, 'mode 600');
  fs.symlinkSync('a/b/c/deep.txt', `${root}/rel-link`);
  fs.symlinkSync('/nonexistent/target', `${root}/dangling`);
  fs.symlinkSync('a', `${root}/dir-link`);
  assert.equal(spawnSync('mkfifo', [`${root}/fifo`]).status, 0);
  assert.equal(spawnSync('mknod', [`${root}/null-dev`, 'c', '1', '3']).status, 0);
  py('import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', `${root}/sock`);
  py('import os,sys; os.setxattr(sys.argv[1], "user.origin", b"mail"); os.setxattr(sys.argv[2], "user.tag", b"d")', `${root}/secret`, `${root}/a`);
  // everything the user's, except one setuid file of another owner
  spawnSync('chown', ['-hR', `${owner.uid}:${owner.gid}`, root]);
  fs.writeFileSync(`${root}/setuid-other`, '#!/bin/sh\n');
  fs.chownSync(`${root}/setuid-other`, 12345, 12346);
  fs.chmodSync(`${root}/setuid-other`, 0o4755);
  fs.chmodSync(`${root}/secret`, 0o600);
  fs.chmodSync(`${root}/a/b`, 0o750);
  fs.utimesSync(`${root}/a/b/c/deep.txt`, new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
  fs.utimesSync(`${root}/big`, new Date('1999-12-31T23:59:59Z'), new Date('2002-02-02T02:02:02Z'));
  fs.chmodSync(`${root}/ro`, 0o500);
  fs.utimesSync(`${root}/a`, new Date('2003-03-03T03:03:03Z'), new Date('2003-03-03T03:03:03Z'));
}

/** What migrate-home does between the two trees, minus the mount. */
function copyTree(src: string, dst: string): { entries: TreeEntry[]; done: Map<string, DoneRecord>; notes: string[] } {
  const entries = walkTree(src);
  const done = new Map<string, DoneRecord>();
  const t = openTreeCopy(DirHandle.openPath(src, { noXdev: true }), DirHandle.openPath(dst), entries);
  try {
    for (const e of entries) {
      const r = copyEntry(t, e);
      if (r) done.set(e.rel.toString('latin1'), r);
    }
    applyDirMetadata(t, entries);
  } finally {
    closeTreeCopy(t);
    t.src.root.close();
    t.dst.root.close();
  }
  return { entries, done, notes: t.notes };
}
const verifyAll = (dst: string, entries: TreeEntry[], done: Map<string, DoneRecord>): string[] => {
  const inodes = new Map<string, bigint>();
  const cursor = new DirCursor(DirHandle.openPath(dst));
  try {
    return entries.flatMap((e) => {
      const why = verifyEntry(cursor, e, done, inodes);
      return why === null ? [] : [`${e.rel.toString('latin1')}: ${why}`];
    });
  } finally {
    cursor.reset();
    cursor.root.close();
  }
};

describe('the tree copy and its verification (two plain directories)', () => {
  test('every kind of entry arrives with its owner, mode, times, xattrs; hard links stay links; the source is not touched (atimes too)', () => {
    const src = join(base, 'src1');
    const dst = join(base, 'dst1');
    fs.mkdirSync(src);
    fs.mkdirSync(dst, { mode: 0o700 });
    fillTree(src, { uid: 4242, gid: 4243 });
    // relatime would set these on a plain read (atime <= mtime): O_NOATIME keeps them
    const atimes = ['big', 'a/b/c/deep.txt', 'secret'].map((p) => fs.lstatSync(join(src, p), { bigint: true }).atimeNs);
    const { entries, done, notes } = copyTree(src, dst);
    assert.deepEqual(['big', 'a/b/c/deep.txt', 'secret'].map((p) => fs.lstatSync(join(src, p), { bigint: true }).atimeNs), atimes, 'file atimes untouched');
    const before = snapshot(src);
    assert.deepEqual(notes, []);
    assert.deepEqual(verifyAll(dst, entries, done), []);
    assert.equal(snapshot(src), before, 'the source is never written');
    assert.equal(entries.length, 23);
    // independent checks of what verifyEntry relies on
    const st = (p: string) => fs.lstatSync(join(dst, p));
    assert.equal(st('big').ino, st('big.hard').ino);
    assert.equal(st('big').ino, st('a/big.hard2').ino);
    assert.equal(st('big').nlink, 3);
    assert.ok(st('fifo').isFIFO() && st('null-dev').isCharacterDevice() && st('sock').isSocket());
    assert.equal(st('null-dev').rdev, fs.lstatSync(join(src, 'null-dev')).rdev);
    assert.equal((st('setuid-other').mode & 0o7777).toString(8), '4755');
    assert.equal(`${st('setuid-other').uid}:${st('setuid-other').gid}`, '12345:12346');
    assert.equal((st('ro').mode & 0o777).toString(8), '500');
    assert.equal(st('').uid, 4242);
    assert.equal(st('a/b/c/deep.txt').mtime.toISOString(), '2001-02-03T04:05:06.000Z');
    assert.equal(st('a').mtime.toISOString(), '2003-03-03T03:03:03.000Z', 'directory times set after their contents');
    assert.equal(fs.readlinkSync(join(dst, 'dangling')), '/nonexistent/target');
    assert.equal(fs.lstatSync(join(dst, 'dangling')).uid, 4242, 'symlinks get their owner too');
    assert.equal(xattrsOf(join(dst, 'secret')), xattrsOf(join(src, 'secret')));
    assert.match(xattrsOf(join(dst, 'secret')), /user\.origin/);
    assert.match(xattrsOf(join(dst, 'a')), /user\.tag/);
    assert.equal(fs.readFileSync(Buffer.from(`${dst}/latin1-\xe9t\xe9`, 'latin1'), 'utf8'), 'not utf-8 name');
    assert.equal(fs.readFileSync(join(dst, 'new\nline'), 'utf8'), 'x');
    // the same files as the reference copier would make (GNU cp -a), apart from times below a second
    const viaCp = join(base, 'cp1');
    assert.equal(spawnSync('cp', ['-a', `${src}/.`, viaCp]).status, 0);
    const strip = (s: string) => s.split('\n').map((l) => l.split(' ').filter((_, i) => i !== 4 && i !== 5).join(' ')).join('\n');
    assert.equal(strip(snapshot(dst)), strip(snapshot(viaCp)));
  });

  test('verification catches what differs: content, missing, mode, owner, link target, kind, a broken hard link, a source changed since the copy', () => {
    const src = join(base, 'src2');
    const dst = join(base, 'dst2');
    fs.mkdirSync(src);
    fs.mkdirSync(dst);
    fillTree(src, { uid: 4242, gid: 4243 });
    const { entries, done } = copyTree(src, dst);
    assert.deepEqual(verifyAll(dst, entries, done), []);
    const fd = fs.openSync(join(dst, 'a/b/c/deep.txt'), 'r+');
    fs.writeSync(fd, 'D', 0);
    fs.closeSync(fd);
    fs.utimesSync(join(dst, 'a/b/c/deep.txt'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
    fs.rmSync(join(dst, 'empty'));
    fs.chmodSync(join(dst, 'secret'), 0o644);
    fs.chownSync(join(dst, 'ü tf8 ✓'), 0, 0);
    fs.rmSync(join(dst, 'rel-link'));
    fs.symlinkSync('elsewhere', join(dst, 'rel-link'));
    fs.lchownSync(join(dst, 'rel-link'), 4242, 4243);
    fs.rmSync(join(dst, 'fifo'));
    fs.writeFileSync(join(dst, 'fifo'), '');
    fs.rmSync(join(dst, 'big.hard'));
    fs.copyFileSync(join(dst, 'big'), join(dst, 'big.hard'));
    fs.chownSync(join(dst, 'big.hard'), 4242, 4243);
    fs.chmodSync(join(dst, 'big.hard'), fs.statSync(join(dst, 'big')).mode & 0o7777);
    fs.utimesSync(join(dst, 'big.hard'), fs.statSync(join(dst, 'big')).atime, fs.statSync(join(dst, 'big')).mtime);
    // the changes above touched the top directory's mtime: put it back, so only they are reported
    fs.utimesSync(dst, fs.statSync(src).atime, fs.statSync(src).mtime);
    const grown = { ...(done.get('a/big.hard2') as DoneRecord), size: 1 };
    done.set('a/big.hard2', grown);
    const got = verifyAll(dst, entries, done);
    assert.deepEqual(got.sort(), [
      'a/b/c/deep.txt: content differs (SHA-256)',
      'a/big.hard2: not recorded as copied (or the source changed since)',
      'big.hard: not a hard link to its first name',
      'empty: missing',
      'fifo: is a file, expected a fifo',
      'rel-link: symlink target differs',
      'secret: mode 644, expected 600',
      'ü tf8 ✓: owner 0:0, expected 4242:4243',
    ].sort().map((s) => s.replace('ü tf8 ✓', Buffer.from('ü tf8 ✓').toString('latin1'))));
  });

  test('a tree with something mounted inside is refused', () => {
    const src = join(base, 'src3');
    fs.mkdirSync(join(src, 'mnt'), { recursive: true });
    mountRaw('eat-mig-inner', join(src, 'mnt'), 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    try {
      assert.throws(() => walkTree(src), fails('IN_USE', /mnt is on another filesystem[^]*umount/));
    } finally {
      unmount(join(src, 'mnt'), { lazy: true });
    }
  });
});

/** Every entry under dir with type, mode, owner, size, mtime AND ctime (a chown, chmod or utimes shows there), content hash, link target. */
function strictSnapshot(dir: string): string {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    const st = fs.lstatSync(p, { bigint: true });
    const extra = st.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : st.isSymbolicLink() ? fs.readlinkSync(p) : '';
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.ino} ${extra}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) walk(join(p, name), `${rel}/${name}`);
  };
  walk(dir, '');
  return out.join('\n');
}
/** What root must never touch: a root-owned directory with a root-owned executable (the setuid target). */
function outsideTree(name: string): { dir: string; victim: string; before: string } {
  const dir = join(base, name);
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.copyFileSync('/bin/true', join(dir, 'victim-bin'));
  fs.chmodSync(join(dir, 'victim-bin'), 0o755);
  fs.mkdirSync(join(dir, 'sub'), { mode: 0o700 });
  fs.writeFileSync(join(dir, 'sub', 'secret'), 'SECRET root-only bytes\n', { mode: 0o600 });
  return { dir, victim: join(dir, 'victim-bin'), before: strictSnapshot(dir) };
}
/** A destination the user can write (as the old code's mounted home was): root-owned 700 dirs inside, the top the user's. */
function userWritableDir(u: TestUser, name: string): string {
  const d = join(base, name);
  fs.mkdirSync(d, { mode: 0o755 });
  fs.chownSync(d, u.uid, u.gid);
  return d;
}
function openCopy(src: string, dst: string, entries: TreeEntry[]): TreeCopy {
  return openTreeCopy(DirHandle.openPath(src, { noXdev: true }), DirHandle.openPath(dst), entries);
}
function closeCopy(t: TreeCopy): void {
  closeTreeCopy(t);
  t.src.root.close();
  t.dst.root.close();
}
const refusedAs = (...codes: ErrorCode[]) => (e: unknown): boolean => {
  assert.ok(isAgentError(e), String(e));
  assert.ok(codes.includes(e.code), `${e.code}: ${e.message}`);
  return true;
};
/** Every file under dir whose bytes include needle. */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(join(p, n));
    else if (st.isFile() && fs.readFileSync(p).includes(needle)) out.push(p);
  };
  walk(dir);
  return out;
}

describe('the fd layer against a user who changes the trees while root works (root acts on objects, not paths)', () => {
  /** The VM attack on the host: zz (files inside) and zzdir (4755) swapped for symlinks right after root made them. */
  function destinationSwap(label: string): void {
    const u = user();
    const src = join(base, `race-src-${label}`);
    fs.mkdirSync(join(src, 'zz'), { recursive: true });
    fs.mkdirSync(join(src, 'zzdir'));
    fs.writeFileSync(join(src, 'zz', 'aaa.bin'), Buffer.alloc(65536, 1));
    fs.writeFileSync(join(src, 'zz', 'eat-pwned-marker'), 'marker\n');
    spawnSync('chown', ['-R', `${u.uid}:${u.gid}`, src]);
    fs.chmodSync(join(src, 'zzdir'), 0o4755);
    const out = outsideTree(`outside-${label}`);
    const dst = userWritableDir(u, `race-dst-${label}`);
    const entries = walkTree(src);
    const t = openCopy(src, dst, entries);
    try {
      for (const e of entries.filter((x) => x.rel.length > 0 && !x.rel.includes(0x2f))) copyEntry(t, e); // zz, zzdir made (root's, 700)
      t.dst.reset();
      // the user's process: both directories swapped for symlinks out of the tree
      const race = asUserRun(u, ['sh', '-c', `mv ${dst}/zz ${dst}/zz.away && ln -s ${out.dir} ${dst}/zz && mv ${dst}/zzdir ${dst}/zzdir.away && ln -s ${out.victim} ${dst}/zzdir`]);
      assert.equal(race.status, 0, race.stderr);
      for (const e of entries.filter((x) => x.rel.includes(0x2f))) assert.throws(() => copyEntry(t, e), refusedAs('SYMLINK_REFUSED'), e.rel.toString());
      assert.throws(() => applyDirMetadata(t, entries), refusedAs('SYMLINK_REFUSED'));
      assert.throws(() => applyDirMetadata(t, entries.filter((x) => x.rel.toString() === 'zzdir')), refusedAs('SYMLINK_REFUSED'));
      assert.throws(() => removeExisting(t.dst, Buffer.from('zz/eat-pwned-marker')), refusedAs('SYMLINK_REFUSED'));
      removeExisting(t.dst, Buffer.from('zzdir')); // the link itself goes, never what it points to
      assert.equal(fs.existsSync(join(dst, 'zzdir')), false);
    } finally {
      closeCopy(t);
    }
    assert.equal(strictSnapshot(out.dir), out.before, 'nothing outside the tree was created, chowned, chmod\'ed, timed or removed');
    assert.equal(fs.statSync(out.victim).mode & 0o7777, 0o755, 'never setuid');
    assert.ok(!fs.existsSync(join(out.dir, 'eat-pwned-marker')));
  }

  test('a directory root made is swapped for a symlink (to a root-owned directory, to a root-owned binary): nothing is created, chowned, chmod\'ed or timed through it', () => {
    destinationSwap('a');
  });

  test('the same without openat2 (the openat + O_NOFOLLOW fallback of kernels before 5.6)', () => {
    forceOpenatFallback(true);
    try {
      assert.equal(usingOpenat2(), false);
      destinationSwap('b');
    } finally {
      forceOpenatFallback(false);
    }
    assert.equal(usingOpenat2(), true);
  });

  test('the source: a directory or file swapped for a symlink to root-only data, or two directories swapped, is never read through', () => {
    const u = user();
    const out = outsideTree('outside-src');
    const src = join(base, 'race-src-c');
    fs.mkdirSync(join(src, 'zz'), { recursive: true });
    fs.mkdirSync(join(src, 'a'));
    fs.mkdirSync(join(src, 'b'));
    fs.writeFileSync(join(src, 'zz', 'secret'), 'the user\'s own\n');
    fs.writeFileSync(join(src, 'f'), 'the user\'s own\n');
    fs.writeFileSync(join(src, 'a', 'x'), 'in a\n');
    fs.writeFileSync(join(src, 'b', 'x'), 'in b\n');
    fs.symlinkSync(join(out.dir, 'sub'), join(src, 'planted')); // a symlink planted before the walk
    spawnSync('chown', ['-hR', `${u.uid}:${u.gid}`, src]);
    const entries = walkTree(src);
    assert.ok(entries.some((e) => e.rel.toString() === 'planted' && e.kind === 'symlink'));
    assert.ok(!entries.some((e) => e.rel.toString().startsWith('planted/')), 'the walk never descends through a symlink');
    const dst = join(base, 'race-dst-c');
    fs.mkdirSync(dst, { mode: 0o700 });
    // after the walk, before the copy: the user swaps zz and f for links to root-only data, and a with b
    const race = asUserRun(u, ['sh', '-c', `cd ${src} && mv zz zz.away && ln -s ${out.dir}/sub zz && mv f f.away && ln -s ${out.dir}/sub/secret f && mv a tmp && mv b a && mv tmp b`]);
    assert.equal(race.status, 0, race.stderr);
    const t = openCopy(src, dst, entries);
    const failed: string[] = [];
    try {
      for (const e of entries) {
        try {
          copyEntry(t, e);
        } catch (err) {
          assert.ok(isAgentError(err), String(err));
          failed.push(`${e.rel.toString()}: ${err.code}${/another directory took its place/.test(err.message) ? ' (swapped)' : ''}`);
        }
      }
    } finally {
      closeCopy(t);
    }
    assert.deepEqual(failed.sort(), ['a/x: IO (swapped)', 'b/x: IO (swapped)', 'f: SYMLINK_REFUSED', 'zz/secret: SYMLINK_REFUSED']);
    assert.deepEqual(filesContaining(dst, 'SECRET'), [], 'no root-only byte reached the copy');
    assert.equal(fs.readlinkSync(join(dst, 'planted')), join(out.dir, 'sub'), 'the planted link is copied as a link');
    assert.equal(strictSnapshot(out.dir), out.before, 'root-only data untouched');
  });

  test('racing: a user process swaps the destination\'s directories for symlinks in a loop during a whole copy, metadata pass and removal; nothing outside changes', async () => {
    const u = user();
    const src = join(base, 'race-src-d');
    fs.mkdirSync(src);
    for (let i = 0; i < 120; i++) {
      const d = join(src, `d${String(i).padStart(3, '0')}`);
      fs.mkdirSync(join(d, 's'), { recursive: true });
      fs.writeFileSync(join(d, 'f'), Buffer.alloc(8192, i));
      fs.writeFileSync(join(d, 's', 'g'), `g${i}\n`);
      assert.equal(spawnSync('mkfifo', [join(d, 'fifo')]).status, 0);
    }
    spawnSync('chown', ['-R', `${u.uid}:${u.gid}`, src]);
    for (let i = 0; i < 120; i++) fs.chmodSync(join(src, `d${String(i).padStart(3, '0')}`, 's'), 0o4755);
    const out = outsideTree('outside-race');
    const dst = userWritableDir(u, 'race-dst-d');
    const stop = join(base, 'race-stop');
    const racerCode = `
import os, sys
dst, target, stop = sys.argv[1], sys.argv[2], sys.argv[3]
n = k = 0
while not os.path.exists(stop):
    k += 1
    for name in os.listdir(dst):
        p = os.path.join(dst, name)
        if name.startswith('d') and '.' not in name and not os.path.islink(p):
            try:
                os.rename(p, p + '.away%d' % k); os.symlink(target, p); n += 1
            except OSError:
                pass
print(n)
`;
    const racer = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', '/usr/bin/python3', '-c', racerCode, dst, out.dir, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let swaps = '';
    racer.stdout.on('data', (c: Buffer) => (swaps += c.toString()));
    const ended = new Promise((r) => racer.on('exit', r));
    await new Promise((r) => setTimeout(r, 300));
    const entries = walkTree(src);
    const outcomes = new Map<string, number>();
    const tally = (f: () => void): void => {
      try {
        f();
        outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
      } catch (e) {
        const code = isAgentError(e) ? e.code : String((e as NodeJS.ErrnoException).code ?? e);
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      }
    };
    for (let round = 0; round < 3; round++) {
      const t = openCopy(src, dst, entries);
      try {
        for (const e of entries) tally(() => copyEntry(t, e));
        for (const e of [...entries].reverse()) if (e.kind === 'dir') tally(() => applyDirMetadata(t, [e]));
        for (const e of [...entries].reverse()) if (e.rel.length > 0) tally(() => removeExisting(t.dst, e.rel));
      } finally {
        closeCopy(t);
      }
    }
    fs.writeFileSync(stop, '');
    await ended;
    assert.ok(Number(swaps) > 0, `the racer swapped nothing (${swaps})`);
    assert.ok((outcomes.get('SYMLINK_REFUSED') ?? 0) > 0, `no refusal seen: ${JSON.stringify([...outcomes])}`);
    assert.equal(strictSnapshot(out.dir), out.before, 'nothing outside the tree changed');
    assert.equal(fs.statSync(out.victim).mode & 0o7777, 0o755);
  });

  test('removal walks fds: a symlink inside, or swapped in for a directory, is unlinked and never followed', () => {
    const out = outsideTree('outside-rm');
    const d = join(base, 'rm-tree');
    fs.mkdirSync(join(d, 'x', 'y'), { recursive: true });
    fs.symlinkSync(out.dir, join(d, 'x', 'link-to-outside'));
    fs.symlinkSync(out.dir, join(d, 'x', 'y', 'deeper-link'));
    const h = DirHandle.openPath(base);
    try {
      h.removeTree('rm-tree');
    } finally {
      h.close();
    }
    assert.ok(!fs.existsSync(d));
    assert.equal(strictSnapshot(out.dir), out.before);
  });
});

describe('preflight: bad input is refused with a clear message, and nothing changes', () => {
  function refused(u: TestUser, o: MigrateOptions & { stateDir: string; ecryptfsRoot: string }, c: ErrorCode, re: RegExp): void {
    const beforeHome = snapshot(u.home);
    assert.throws(() => preflightMigration(ref(u), o), fails(c, re));
    assert.equal(snapshot(u.home), beforeHome);
    assert.ok(!fs.existsSync(o.stateDir), 'no state written');
    assert.ok(!fs.existsSync(o.ecryptfsRoot), 'no layout created');
    assert.deepEqual(fs.readdirSync('/home').filter((x) => x.startsWith(`${u.name}.`)), [], 'the home was not moved');
  }

  test('root; a home that is already encrypted or set up with ~/Private; an existing ~/.Private', () => {
    assert.throws(() => preflightMigration(lookupUser('root'), opts()), fails('USAGE', /root's home/));
    const u = user();
    setupPrivateWithUtils(u, { fnek: true });
    refused(u, opts(), 'ALREADY_EXISTS', /already has an eCryptfs setup[^]*nothing changed[^]*hint: migrate-home encrypts plain homes only/);
    const v = user();
    const o = opts();
    asUserRun(v, ['ln', '-s', homeLayout(v, o.ecryptfsRoot).configDir, join(v.home, '.ecryptfs')]);
    refused(v, o, 'ALREADY_EXISTS', /is already an encrypted home/);
    const w = user();
    asUserRun(w, ['mkdir', join(w.home, '.Private')]);
    refused(w, opts(), 'ALREADY_EXISTS', /\.Private exists[^]*rmdir it if it is empty/);
  });

  test('the user has processes, or processes use the home: refused, each one listed', async () => {
    const u = user();
    const mine = sleepAs(u);
    const visitor = spawn('sleep', ['60'], { cwd: join(u.home), stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const beforeHome = snapshot(u.home);
      let msg = '';
      assert.throws(() => preflightMigration(ref(u), opts()), (e: unknown) => {
        assert.ok(isAgentError(e, 'IN_USE'));
        msg = `${e.message}\nhint: ${e.hint}`;
        return true;
      });
      assert.match(msg, new RegExp(`${u.name} is logged in or has processes running \\(2\\)`));
      assert.match(msg, new RegExp(`${u.name} +${mine.pid} u +sleep`));
      assert.match(msg, new RegExp(`root +${visitor.pid} c +sleep`));
      assert.match(msg, /ACCESS: u = runs as the user, c = current directory/);
      assert.match(msg, new RegExp(`hint: Log ${u.name} out and end those processes \\(loginctl terminate-user ${u.name}`));
      assert.equal(snapshot(u.home), beforeHome);
    } finally {
      mine.kill('SIGKILL');
      visitor.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  test('something mounted inside the home', () => {
    const u = user();
    asUserRun(u, ['mkdir', join(u.home, 'usb')]);
    mountRaw('eat-mig-usb', join(u.home, 'usb'), 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    try {
      refused(u, opts(), 'IN_USE', /usb is a mount point \(tmpfs\)[^]*hint: Unmount it first/);
    } finally {
      unmount(join(u.home, 'usb'), { lazy: true });
    }
  });

  test('not enough free space where the encrypted copy goes (a 4 MiB filesystem, a 5 MB home)', () => {
    const u = user();
    asUserRun(u, ['sh', '-c', `head -c 5000000 /dev/urandom > ${u.home}/video`]);
    const small = join(base, 'small');
    fs.mkdirSync(small);
    mountRaw('eat-mig-small', small, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=4m,mode=0755');
    cleanups.push(() => unmount(small, { lazy: true }));
    const o = { ...opts(), ecryptfsRoot: join(small, '.ecryptfs') };
    refused(u, o, 'NO_SPACE', new RegExp(`not enough free space for the encrypted copy: ${u.home} \\(\\d+ files, 4\\.\\d MiB\\) needs about 2\\d MiB in ${small}, where 4\\.0 MiB are free; nothing changed\\nhint: The plaintext original is kept`));
    // the same home fits where there is room
    assert.equal(preflightMigration(ref(u), opts()).counts.files, 4);
  });

  test('names eCryptfs cannot store with filename encryption (144 bytes); accepted without it', () => {
    const u = user();
    asUserRun(u, ['touch', join(u.home, 'n'.repeat(144))]);
    refused(u, opts(), 'NAME_TOO_LONG', /1 name\(s\) in .* are too long for eCryptfs with filename encryption \(at most 143 bytes\):\n {2}\/home\/.*\/n{144}[^]*--no-fnek/);
    assert.equal(preflightMigration(ref(u), opts({ fnek: false })).resuming, false);
  });

  test('--resume with nothing to resume; a journal written for another account', () => {
    const u = user();
    refused(u, opts({ resumeOnly: true }), 'NOT_FOUND', /no interrupted migration of .* to resume/);
    const o = opts();
    const state = new MigrateState(u.name, o.stateDir);
    const l = homeLayout(u, o.ecryptfsRoot);
    state.writeJournal({ version: 1, user: u.name, uid: u.uid + 1, gid: u.gid, home: u.home, original: `${u.home}.AAAAAAAA`, userDir: l.userDir, fnek: true, wrappingIndependent: false, phase: 'set-up', started: new Date().toISOString() });
    assert.throws(() => preflightMigration(ref(u), o), fails('BAD_CONFIG', /describes another account/));
  });
});

describe('migrate-home without eCryptfs in the kernel: everything up to the mount, then a clean, resumable stop', () => {
  test('the plaintext is only renamed, the layout is exactly ecryptfs-setup-private -b’s, and a resume needs the right password', () => {
    const u = user();
    fillTree(u.home, u);
    const beforeTree = snapshot(u.home);
    const o = opts();
    const plan = preflightMigration(ref(u), o);
    assert.equal(plan.resuming, false);
    assert.throws(() => migrateHome(plan, Buffer.from(u.password), o), fails('NO_ECRYPTFS'));
    const state = new MigrateState(u.name, o.stateDir);
    const j = state.readJournal();
    assert.ok(j);
    assert.equal(j.phase, 'set-up');
    assert.match(j.original, new RegExp(`^${u.home}\\.[A-Za-z0-9]{8}$`));
    // the original: the same tree, byte for byte, same inodes and times; only its top directory made 700
    assert.equal(snapshot(j.original), asOriginal(beforeTree));
    assert.deepEqual(userKeys(u), [], 'no keys left behind by the failed mount');
    assert.ok(!readMountInfo().some((m) => m.mountPoint === u.home));
    // the mount point: 500, the user's, only the links ecryptfs-setup-private -b makes
    const l = homeLayout(u, o.ecryptfsRoot);
    const hst = fs.lstatSync(u.home);
    assert.equal(`${(hst.mode & 0o777).toString(8)} ${hst.uid}`, `500 ${u.uid}`);
    const links = Object.fromEntries(fs.readdirSync(u.home).map((x) => [x, fs.readlinkSync(join(u.home, x))]));
    assert.deepEqual(links, {
      '.ecryptfs': l.configDir,
      '.Private': l.lower,
      'README.txt': '/usr/share/ecryptfs-utils/ecryptfs-mount-private.txt',
      'Access-Your-Private-Data.desktop': '/usr/share/ecryptfs-utils/ecryptfs-mount-private.desktop',
    });
    for (const x of fs.readdirSync(u.home)) assert.equal(fs.lstatSync(join(u.home, x)).uid, u.uid, x);
    const mo = (p: string) => `${(fs.lstatSync(p).mode & 0o777).toString(8)} ${fs.lstatSync(p).uid}`;
    assert.equal(mo(l.userDir), `755 ${u.uid}`);
    assert.equal(mo(l.configDir), `700 ${u.uid}`);
    assert.equal(mo(l.lower), `700 ${u.uid}`);
    assert.equal(mo(join(l.configDir, 'wrapped-passphrase')), `600 ${u.uid}`);
    assert.equal(fs.readFileSync(join(l.configDir, 'Private.mnt'), 'utf8'), `${u.home}\n`);
    assert.deepEqual(fs.readdirSync(l.configDir).sort(), ['Private.mnt', 'Private.sig', 'auto-umount', 'wrapped-passphrase'], 'auto-mount only once migrated');
    assert.equal(mo(join(l.configDir, 'auto-umount')), `644 ${u.uid}`, 'as touch makes it');
    assert.equal(mo(join(l.configDir, 'Private.sig')), `600 ${u.uid}`);
    assert.deepEqual(fs.readdirSync(l.lower), []);
    // the reference tools read it: the login password unwraps a 32-hex mount passphrase whose two sigs are Private.sig
    const unwrapped = asUserRun(u, ['ecryptfs-unwrap-passphrase', join(u.home, '.ecryptfs', 'wrapped-passphrase'), '-'], u.password);
    assert.match(unwrapped.stdout, /^[0-9a-f]{32}\n$/, unwrapped.stderr);
    const ins = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `printf '%s' "$1" | ecryptfs-insert-wrapped-passphrase-into-keyring "$2" - >/dev/null && keyctl clear @u`, 'sh', u.password, join(u.home, '.ecryptfs', 'wrapped-passphrase')]);
    assert.equal(ins.status, 0, ins.stderr);
    const setup = asUser(ref(u), () => loadPrivateSetup(ref(u)));
    assert.ok(setup);
    assert.equal(setup.upper, u.home, 'Private.mnt names the home: mounted over it');
    assert.equal(setup.lower, join(u.home, '.Private'));
    assert.deepEqual(fs.readFileSync(join(l.configDir, 'Private.sig'), 'latin1'), `${setup.fekSig}\n${setup.fnekSig}\n`);
    assert.ok(setup.autoUmount && !setup.autoMount && !setup.wrappingIndependent);

    // resume: a wrong password changes nothing; the right one gets as far as before
    const layoutBefore = snapshot(l.userDir);
    const homeBefore = snapshot(u.home);
    const journalBefore = fs.readFileSync(state.journalPath);
    const again = preflightMigration(ref(u), { ...o, resumeOnly: true });
    assert.equal(again.resuming, true);
    assert.equal(again.alreadyDone, 0);
    assert.throws(() => migrateHome(again, Buffer.from('not the password'), o), fails('WRONG_PASSWORD'));
    assert.equal(snapshot(l.userDir), layoutBefore);
    assert.equal(snapshot(u.home), homeBefore);
    assert.deepEqual(fs.readFileSync(state.journalPath), journalBefore);
    assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), o), fails('NO_ECRYPTFS'));
    assert.equal(state.readJournal()?.phase, 'set-up');
    assert.equal(snapshot(l.userDir), layoutBefore, 'the setup is reused, not made again');
    assert.equal(snapshot(j.original), asOriginal(beforeTree));
    assert.deepEqual(userKeys(u), []);
  });

  test('the account is locked for the run and unlocked when it stops; the temp mount point is gone; a killed run\'s lock is undone by the next run', () => {
    const u = user();
    fillTree(u.home, u);
    const expiry = (): string => (fs.readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${u.name}:`)) ?? '').split(':')[7] ?? '?';
    setExpiry(u.name, '30000'); // a date of its own, to see it come back
    const o = opts();
    const seen: string[] = [];
    const progress = (line: string): void => {
      if (/is LOCKED while the migration runs/.test(line)) seen.push(`locked:${expiry()}`);
    };
    assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), { ...o, progress }), fails('NO_ECRYPTFS'));
    assert.deepEqual(seen, ['locked:1']);
    assert.equal(expiry(), '30000', 'restored when the run stopped');
    const state = new MigrateState(u.name, o.stateDir);
    assert.equal(state.readJournal()?.previousExpiry, undefined);
    assert.deepEqual(fs.readdirSync(o.workDir), [], 'the root-only mount point was removed');
    // as a run killed while locked leaves it: the lock set, the old value in the journal, its mount point left
    const j = state.readJournal();
    assert.ok(j);
    state.writeJournal({ ...j, previousExpiry: '30000' });
    setExpiry(u.name, '1');
    fs.mkdirSync(join(o.workDir, `migrate-${u.name}-Kil1ed`, 'home'), { recursive: true });
    assert.equal(releaseLeftAccountLock(u, o), '30000');
    assert.equal(expiry(), '30000');
    assert.equal(state.readJournal()?.previousExpiry, undefined);
    // the next run takes the lock again, removes the killed run's mount point, and unlocks at its end
    state.writeJournal({ ...j, previousExpiry: '30000' });
    setExpiry(u.name, '1');
    seen.length = 0;
    assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), { ...o, progress }), fails('NO_ECRYPTFS'));
    assert.deepEqual(seen, ['locked:1']);
    assert.equal(expiry(), '30000', 'the value from before the killed run');
    assert.deepEqual(fs.readdirSync(o.workDir), []);
    setExpiry(u.name, '');
  });

  test('a process of the user that appears during the run stops it at the next phase, with the account unlocked; the run resumes later', async () => {
    const u = user();
    fillTree(u.home, u);
    const o = opts();
    let intruder: ReturnType<typeof spawn> | undefined;
    const progress = (line: string): void => {
      if (!line.startsWith('Moved ')) return;
      // a process of the user (an ssh login, a cron job) appears right after the home was moved
      intruder = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', 'sleep', '60'], { cwd: '/', stdio: 'ignore' });
      const uidLine = new RegExp(`^Uid:\\s+${u.uid}\\s`, 'm');
      for (let i = 0; i < 500 && !uidLine.test(fs.readFileSync(`/proc/${intruder.pid}/status`, 'utf8')); i++) spawnSync('sleep', ['0.01']);
    };
    try {
      let msg = '';
      assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), { ...o, progress }), (e: unknown) => {
        assert.ok(isAgentError(e, 'IN_USE'), String(e));
        msg = `${e.message}\nhint: ${e.hint}`;
        return true;
      });
      assert.ok(intruder?.pid);
      assert.match(msg, new RegExp(`${u.name} is logged in or has processes running \\(1\\) \\(found before the setup: the migration stopped there, nothing is lost\\)`));
      assert.match(msg, new RegExp(`${u.name} +${intruder.pid} u +sleep`));
      assert.match(msg, /run migrate-home again to resume/);
      const state = new MigrateState(u.name, o.stateDir);
      assert.equal(state.readJournal()?.phase, 'moved');
      assert.equal(state.readJournal()?.previousExpiry, undefined, 'unlocked');
    } finally {
      intruder?.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), o), fails('NO_ECRYPTFS'), 'resumed: on to the mount');
    assert.equal(new MigrateState(u.name, o.stateDir).readJournal()?.phase, 'set-up');
  });

  test('killed between the journal and the rename, or in the middle of the setup: the next run picks up from there', () => {
    const u = user();
    asUserRun(u, ['sh', '-c', `mkdir -p ${u.home}/docs && echo important > ${u.home}/docs/letter`]);
    const beforeTree = snapshot(u.home);
    const o = opts();
    const plan = preflightMigration(ref(u), o);
    // as if killed right after the journal was written
    const state = new MigrateState(u.name, o.stateDir);
    state.writeJournal(plan.journal);
    const resumed = preflightMigration(ref(u), o);
    assert.equal(resumed.resuming, true);
    assert.throws(() => migrateHome(resumed, Buffer.from(u.password), o), fails('NO_ECRYPTFS'));
    assert.equal(snapshot(plan.journal.original), asOriginal(beforeTree));
    // as if killed in the middle of the setup: Private.sig (written last) missing
    const l = homeLayout(u, o.ecryptfsRoot);
    const firstSig = fs.readFileSync(join(l.configDir, 'Private.sig'));
    fs.rmSync(join(l.configDir, 'Private.sig'));
    state.writeJournal({ ...plan.journal, phase: 'moved' });
    assert.throws(() => migrateHome(preflightMigration(ref(u), o), Buffer.from(u.password), o), fails('NO_ECRYPTFS'));
    assert.equal(state.readJournal()?.phase, 'set-up');
    assert.notDeepEqual(fs.readFileSync(join(l.configDir, 'Private.sig')), firstSig, 'a new setup (new mount passphrase)');
    assert.equal(snapshot(plan.journal.original), asOriginal(beforeTree));
  });
});

describe('the CLI', () => {
  const cli = (args: string[], input = '', u?: TestUser) =>
    u ? asUserRun(u, [CLI, ...args], input) : ((r) => ({ status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }))(spawnSync(CLI, args, { input, cwd: '/' }));

  test('usage (exit 2), not root, unknown user, no eCryptfs module: clear messages, nothing changed', () => {
    assert.equal(cli(['migrate-home']).status, 2);
    assert.match(cli(['migrate-home']).stderr, /missing -u USER/);
    assert.equal(cli(['migrate-home', '-u', 'x', 'extra']).status, 2);
    assert.equal(cli(['migrate-home', '--bogus']).status, 2);
    const u = user();
    const before = snapshot(u.home);
    const notRoot = cli(['migrate-home', '-u', u.name], '', u);
    assert.equal(notRoot.status, 1);
    assert.match(notRoot.stderr, /must be run by root\nhint: Run it as root: sudo ecryptfs-agent migrate-home -u /);
    const unknown = cli(['migrate-home', '-u', 'nosuchuser-eat']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no such user: nosuchuser-eat/);
    const noModule = cli(['migrate-home', '-u', u.name], `${u.password}\n`);
    assert.equal(noModule.status, 1);
    assert.match(noModule.stderr, /ecryptfs kernel module loaded\?\nhint: Load the module: modprobe ecryptfs/);
    assert.equal(snapshot(u.home), before);
    assert.ok(!fs.existsSync(`/var/lib/ecryptfs-agent/migrate/${u.name}.json`));
    assert.match(cli(['migrate-home', '--help']).stdout, /Exit status:/);
    assert.match(cli(['--help']).stdout, /migrate-home +encrypt an existing home directory/);
  });
});
