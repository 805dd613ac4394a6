/**
 * The file-tree half of `migrate-home`: walk the plaintext home, copy it entry by entry into the
 * mounted encrypted home, and verify the copy. Runs as root (the home may hold files of other
 * owners). Paths are raw bytes throughout (Buffer), so names that are not UTF-8 survive.
 *
 * The source is only ever read: opened O_RDONLY|O_NOFOLLOW|O_NOATIME (atimes stay as they were),
 * never chmod'ed, chown'ed or written. Symbolic links are never followed. The destination is
 * built by us: regular files are created O_EXCL, directories stay root-only (700) until every
 * entry is in place and get their real owner, mode and times last, deepest first.
 * What Node cannot do (FIFOs, sockets, device nodes, extended attributes and ACLs) is done by
 * one `cp -r --attributes-only` pass over the whole tree (GNU coreutils, which keeps raw names).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { AgentError } from './errors';
import type { DoneRecord } from './migrate-journal';

export type EntryKind = 'dir' | 'file' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';

export interface TreeEntry {
  /** relative to the root, raw bytes; empty for the root itself */
  rel: Buffer;
  kind: EntryKind;
  /** permission bits incl. setuid/setgid/sticky */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  rdev: bigint;
  /** symlink target */
  target?: Buffer;
  /** a regular file with more than one link: rel of the first one seen (the one whose data is copied) */
  linkOf?: Buffer;
}

const SLASH = Buffer.from('/');

/** root + '/' + rel (rel may be empty). */
export function joinRel(root: string, rel: Buffer): Buffer {
  return rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(root), SLASH, rel]);
}

/** A name for messages: UTF-8 when it is, else with \xNN escapes; control characters escaped. */
export function displayRel(rel: Buffer): string {
  let s = '';
  const text = rel.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(rel)) s = text;
  else for (const b of rel) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function kindOf(st: fs.BigIntStats): EntryKind {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

function entryOf(rel: Buffer, st: fs.BigIntStats): TreeEntry {
  return {
    rel,
    kind: kindOf(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    ino: st.ino,
    rdev: st.rdev,
  };
}

/**
 * Every entry under root, parents before children, names in byte order. Refuses a tree that
 * spans filesystems (something mounted inside would be copied, or hidden): unmount it first.
 * (The caller also checks /proc/self/mountinfo; this catches a mount made since.)
 */
export function walkTree(root: string): TreeEntry[] {
  const rootSt = fs.lstatSync(root, { bigint: true });
  if (!rootSt.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${root} is not a directory`);
  const out: TreeEntry[] = [entryOf(Buffer.alloc(0), rootSt)];
  const firstOfInode = new Map<bigint, Buffer>();
  const stack: Buffer[] = [Buffer.alloc(0)];
  while (stack.length > 0) {
    const dirRel = stack.pop() as Buffer;
    const names = (fs.readdirSync(joinRel(root, dirRel), { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
    const subdirs: Buffer[] = [];
    for (const name of names) {
      const rel = dirRel.length === 0 ? name : Buffer.concat([dirRel, SLASH, name]);
      const path = joinRel(root, rel);
      const st = fs.lstatSync(path, { bigint: true });
      // directories only: on overlayfs a file not yet copied up reports its lower layer's device
      if (st.isDirectory() && st.dev !== rootSt.dev) {
        throw new AgentError('IN_USE', `${displayRel(path)} is on another filesystem (something is mounted inside the home)`, {
          hint: `Unmount it first (umount ${displayRel(path)}), then run migrate-home again`,
        });
      }
      const e = entryOf(rel, st);
      if (e.kind === 'symlink') e.target = fs.readlinkSync(path, { encoding: 'buffer' });
      if (e.kind === 'file' && st.nlink > 1n) {
        const first = firstOfInode.get(st.ino);
        if (first) e.linkOf = first;
        else firstOfInode.set(st.ino, rel);
      }
      out.push(e);
      if (e.kind === 'dir') subdirs.push(rel);
    }
    // a directory is listed (in its parent) before it is walked: parents come before children
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as Buffer);
  }
  return out;
}

// ------------------------------------------------------------------ planning (pure)

/** eCryptfs stores a file as an 8 KiB header plus its data in 4 KiB extents (PAGE_SIZE). */
export const ECRYPTFS_HEADER_BYTES = 8192;
export const ECRYPTFS_EXTENT_BYTES = 4096;
/** The longest name eCryptfs can store with filename encryption on (the encrypted name must fit in 255 bytes). */
export const FNEK_MAX_NAME_BYTES = 143;
export const MAX_NAME_BYTES = 255;

/** Bytes the encrypted copy of these entries needs on the lower filesystem (one 4 KiB block per directory, symlink or node). */
export function estimateEncryptedBytes(entries: readonly TreeEntry[]): number {
  let total = 0;
  for (const e of entries) {
    if (e.kind === 'file' && e.linkOf === undefined) total += ECRYPTFS_HEADER_BYTES + Math.ceil(e.size / ECRYPTFS_EXTENT_BYTES) * ECRYPTFS_EXTENT_BYTES;
    else if (e.kind !== 'file') total += ECRYPTFS_EXTENT_BYTES;
  }
  return total;
}

/** Entries whose last name component is longer than eCryptfs can store. */
export function namesTooLong(entries: readonly TreeEntry[], fnek: boolean): TreeEntry[] {
  const max = fnek ? FNEK_MAX_NAME_BYTES : MAX_NAME_BYTES;
  return entries.filter((e) => {
    const slash = e.rel.lastIndexOf(0x2f);
    return e.rel.length - slash - 1 > max;
  });
}

export interface TreeCounts {
  dirs: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  /** FIFOs, sockets, device nodes */
  specials: number;
  bytes: number;
}

export function countEntries(entries: readonly TreeEntry[]): TreeCounts {
  const c: TreeCounts = { dirs: 0, files: 0, symlinks: 0, hardlinks: 0, specials: 0, bytes: 0 };
  for (const e of entries) {
    if (e.kind === 'dir') c.dirs++;
    else if (e.kind === 'file' && e.linkOf !== undefined) c.hardlinks++;
    else if (e.kind === 'file') {
      c.files++;
      c.bytes += e.size;
    } else if (e.kind === 'symlink') c.symlinks++;
    else c.specials++;
  }
  return c;
}

/** Pure: is a done-log record still the copy of this source entry? */
export function doneRecordMatches(r: DoneRecord | undefined, e: TreeEntry): boolean {
  if (r === undefined) return false;
  const kind = e.kind === 'file' ? (e.linkOf !== undefined ? 'link' : 'file') : e.kind;
  return r.kind === kind && r.size === e.size && r.mtimeNs === e.mtimeNs && r.ctimeNs === e.ctimeNs && r.ino === e.ino;
}

// ------------------------------------------------------------------ copying

const CHUNK = 1 << 20;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NOATIME, O_NONBLOCK } = fs.constants;

function secondsOf(ns: bigint): number {
  // Node takes times as (fractional) seconds; exact to well under a microsecond.
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

function openSource(path: Buffer): number {
  try {
    return fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOATIME);
  } catch (e) {
    // O_NOATIME is refused (EPERM) for files root does not own on some filesystems (e.g. 9p): read without it
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  }
}

/** Reads fd to its end: the SHA-256 and length of its bytes, each chunk also handed to `sink`. */
function hashStream(fd: number, sink?: (chunk: Buffer) => void): { sha256: string; size: number } {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
  let size = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, CHUNK, null);
    if (n === 0) break;
    const chunk = buf.subarray(0, n);
    hash.update(chunk);
    sink?.(chunk);
    size += n;
  }
  return { sha256: hash.digest('hex'), size };
}

/** SHA-256 of a file's bytes (opened without following symlinks). */
export function hashFile(path: Buffer): { sha256: string; size: number } {
  const fd = openSource(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new AgentError('NOT_REGULAR_FILE', `${displayRel(path)} is not a regular file`);
    return hashStream(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes whatever is at path (a partial copy from an interrupted run). */
export function removeExisting(path: Buffer): void {
  fs.rmSync(path, { recursive: true, force: true });
}

function lstatOrNull(path: Buffer): fs.BigIntStats | null {
  try {
    return fs.lstatSync(path, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Copies one entry (dir, file, hard link, symlink) from srcRoot to dstRoot; FIFOs, sockets and
 * device nodes are left to the attribute pass (copyAttributes). Returns the record for the done log, or null when there is nothing
 * to log (directories: their metadata is applied at the end; nodes).
 */
export function copyEntry(srcRoot: string, dstRoot: string, e: TreeEntry): DoneRecord | null {
  const src = joinRel(srcRoot, e.rel);
  const dst = joinRel(dstRoot, e.rel);
  const record = (kind: DoneRecord['kind'], sha256?: string): DoneRecord => {
    const r: DoneRecord = { rel: e.rel, kind, size: e.size, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino };
    if (sha256 !== undefined) r.sha256 = sha256;
    return r;
  };
  if (e.kind === 'dir') {
    const st = lstatOrNull(dst);
    if (st !== null && !st.isDirectory()) removeExisting(dst);
    // root-only while its contents are copied; the real owner and mode come last (applyDirMetadata)
    if (st === null || !st.isDirectory()) fs.mkdirSync(dst, { mode: 0o700 });
    return null;
  }
  if (e.kind !== 'file' && e.kind !== 'symlink') return null;
  if (lstatOrNull(dst) !== null) removeExisting(dst);
  if (e.kind === 'symlink') {
    fs.symlinkSync(e.target as Buffer, dst);
    fs.lchownSync(dst, e.uid, e.gid);
    try {
      fs.lutimesSync(dst, secondsOf(e.atimeNs), secondsOf(e.mtimeNs));
    } catch {
      /* a filesystem without symlink times: the link itself is what matters */
    }
    return record('symlink');
  }
  if (e.linkOf !== undefined) {
    fs.linkSync(joinRel(dstRoot, e.linkOf), dst);
    return record('link');
  }
  const sfd = openSource(src);
  let dfd = -1;
  try {
    const sst = fs.fstatSync(sfd, { bigint: true });
    if (!sst.isFile() || sst.ino !== e.ino) {
      throw new AgentError('IO', `${displayRel(src)} changed while migrating (it is not the file that was planned)`, { hint: 'Nothing may use the home during the migration; run migrate-home again to resume' });
    }
    dfd = fs.openSync(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    const out = dfd;
    const { sha256, size } = hashStream(sfd, (chunk) => {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(out, chunk, off, chunk.length - off);
    });
    if (size !== e.size) {
      throw new AgentError('IO', `${displayRel(src)} changed size while migrating (${e.size} → ${size} bytes)`, { hint: 'Nothing may use the home during the migration; run migrate-home again to resume' });
    }
    // owner before mode (chown clears setuid/setgid), times last (every write before them)
    fs.fchownSync(dfd, e.uid, e.gid);
    fs.fchmodSync(dfd, e.mode);
    fs.futimesSync(dfd, secondsOf(e.atimeNs), secondsOf(e.mtimeNs));
    fs.closeSync(dfd);
    dfd = -1;
    return record('file', sha256);
  } finally {
    fs.closeSync(sfd);
    if (dfd >= 0) fs.closeSync(dfd);
  }
}

/**
 * FIFOs, device nodes, extended attributes and ACLs of the whole tree, by GNU cp (raw names,
 * libattr/libacl): creates the missing nodes and copies mode, owner, times and xattrs onto the
 * existing entries without touching their data. Returns the messages worth showing ("File
 * exists" for links and nodes already made is expected and dropped).
 */
export function copyAttributes(srcRoot: string, dstRoot: string): string[] {
  const r = spawnSync(
    'cp',
    ['-r', '--attributes-only', '--no-dereference', '--preserve=mode,ownership,timestamps,xattr', '--', `${srcRoot}/.`, `${dstRoot}/.`],
    { env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' }, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 },
  );
  if (r.error) return [`cp could not run (${r.error.message}): FIFOs, device nodes and extended attributes were not copied`];
  return (r.stderr?.toString('utf8') ?? '')
    .split('\n')
    .filter((l) => l.trim() !== '' && !/: File exists$/.test(l));
}

/** Owner, mode and times of every directory, deepest first (creating entries in a directory changes its mtime). */
export function applyDirMetadata(dstRoot: string, entries: readonly TreeEntry[]): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i] as TreeEntry;
    if (e.kind !== 'dir') continue;
    const dst = joinRel(dstRoot, e.rel);
    fs.lchownSync(dst, e.uid, e.gid);
    fs.chmodSync(dst, e.mode);
    fs.utimesSync(dst, secondsOf(e.atimeNs), secondsOf(e.mtimeNs));
  }
}

// ------------------------------------------------------------------ verifying

export interface VerifyFailure {
  rel: Buffer;
  why: string;
}

/** eCryptfs (as seen on Debian 12's kernel) keeps times to the second: compare whole seconds. */
function sameSecond(a: bigint, b: bigint): boolean {
  const s = (ns: bigint): bigint => (ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n));
  return s(a) === s(b);
}

/**
 * Checks one entry of the copy against the source entry and, for files, against the hash taken
 * while copying (reading the destination through the mount: its bytes come back decrypted from
 * the lower file). Returns why it differs, or null.
 */
export function verifyEntry(dstRoot: string, e: TreeEntry, done: ReadonlyMap<string, DoneRecord>, inodeOf: Map<string, bigint>): string | null {
  const dst = joinRel(dstRoot, e.rel);
  const st = lstatOrNull(dst);
  if (st === null) return 'missing';
  const kind = kindOf(st);
  if (kind !== e.kind) return `is a ${kind}, expected a ${e.kind}`;
  if (Number(st.uid) !== e.uid || Number(st.gid) !== e.gid) return `owner ${st.uid}:${st.gid}, expected ${e.uid}:${e.gid}`;
  if (e.kind !== 'symlink' && Number(st.mode & 0o7777n) !== e.mode) return `mode ${Number(st.mode & 0o7777n).toString(8)}, expected ${e.mode.toString(8)}`;
  if (e.kind === 'symlink') {
    const target = fs.readlinkSync(dst, { encoding: 'buffer' });
    return target.equals(e.target as Buffer) ? null : 'symlink target differs';
  }
  if (!sameSecond(st.mtimeNs, e.mtimeNs)) return 'modification time differs';
  if (e.kind === 'char' || e.kind === 'block') return st.rdev === e.rdev ? null : 'device number differs';
  if (e.kind !== 'file') return null;
  if (Number(st.size) !== e.size) return `size ${st.size}, expected ${e.size}`;
  const key = e.rel.toString('latin1');
  const r = done.get(key);
  if (!doneRecordMatches(r, e)) return 'not recorded as copied (or the source changed since)';
  if (e.linkOf !== undefined) {
    const first = inodeOf.get(e.linkOf.toString('latin1'));
    return first === st.ino ? null : 'not a hard link to its first name';
  }
  inodeOf.set(key, st.ino);
  const { sha256 } = hashFile(dst);
  return sha256 === r?.sha256 ? null : 'content differs (SHA-256)';
}
