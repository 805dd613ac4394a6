/**
 * The file-tree half of `migrate-home`: walk the plaintext home, copy it entry by entry into the
 * mounted encrypted home, and verify the copy. Runs as root (the home may hold files of other
 * owners). Paths are raw bytes throughout (Buffer), so names that are not UTF-8 survive.
 *
 * Both trees are worked on through directory fds only (src/os/fs-at.ts): the source is the user's
 * own tree, and the user could rename or swap anything in it while root reads; root never
 * resolves a path inside either tree, never follows a symlink, and makes every change on an fd
 * or with an *at call that does not follow the last name (docs/security.md: root acts on objects).
 *
 * The source is only ever read: opened O_RDONLY|O_NOFOLLOW|O_NOATIME (atimes stay as they were),
 * never chmod'ed, chown'ed or written; each directory and file opened must be the one planned
 * (same inode). The destination is built by us: regular files are created O_EXCL, FIFOs, sockets
 * and device nodes with mknodat, extended attributes (ACLs included) copied with f*xattr,
 * directories stay root-only (700) until every entry is in place and get their real owner, mode
 * and times last, deepest first.
 */
import { escapeControls } from '../formats/text';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { AgentError, errnoOf } from '../errors';
import {
  DirCursor,
  DirHandle,
  kindOfMode,
  parentAndName,
  pinnedChmod,
  pinnedChown,
  pinnedPath,
  pinnedUtimes,
  readXattrs,
  setTimesFd,
  writeXattrs,
  type Xattrs,
} from '../os/fs-at';
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
  return escapeControls(s);
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

function changed(path: Buffer, what = 'it is not the entry that was planned'): AgentError {
  return new AgentError('IO', `${displayRel(path)} changed while migrating (${what})`, { hint: 'Nothing may use the home during the migration; run migrate-home again to resume' });
}

/**
 * Every entry under root, parents before children, names in byte order. Refuses a tree that
 * spans filesystems (something mounted inside would be copied, or hidden): unmount it first.
 * (The caller also checks /proc/self/mountinfo; this catches a mount made since.)
 * Walked through directory fds (src/os/fs-at.ts): each directory is opened beneath its parent by
 * one name, never through a symlink, and must be the directory just listed (same inode), so a
 * rename or a planted symlink in the tree (the user's) cannot send the walk elsewhere.
 * A path is opened with DirHandle.openPath (root's own links followed on the way only).
 */
export function walkTree(root: DirHandle | string): TreeEntry[] {
  const top = typeof root === 'string' ? DirHandle.openPath(root, { noXdev: true }) : root;
  try {
    const rootSt = top.statSelf();
    if (!rootSt.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${displayRel(top.display)} is not a directory`);
    const out: TreeEntry[] = [entryOf(Buffer.alloc(0), rootSt)];
    const firstOfInode = new Map<bigint, Buffer>();
    const walk = (dir: DirHandle, dirRel: Buffer): void => {
      const subdirs: Array<{ name: Buffer; rel: Buffer; st: fs.BigIntStats }> = [];
      for (const name of dir.readdir()) {
        const rel = dirRel.length === 0 ? name : Buffer.concat([dirRel, SLASH, name]);
        const st = dir.stat(name);
        if (st === null) throw changed(dir.pathOf(name), 'it disappeared');
        // directories only: on overlayfs a file not yet copied up reports its lower layer's device
        if (st.isDirectory() && st.dev !== rootSt.dev) {
          const path = displayRel(dir.pathOf(name));
          throw new AgentError('IN_USE', `${path} is on another filesystem (something is mounted inside the home)`, {
            hint: `Unmount it first (umount ${path}), then run migrate-home again`,
          });
        }
        const e = entryOf(rel, st);
        if (e.kind === 'symlink') e.target = dir.readlink(name);
        if (e.kind === 'file' && st.nlink > 1n) {
          const first = firstOfInode.get(st.ino);
          if (first) e.linkOf = first;
          else firstOfInode.set(st.ino, rel);
        }
        out.push(e);
        if (e.kind === 'dir') subdirs.push({ name, rel, st });
      }
      // a directory is listed (in its parent) before it is walked: parents come before children
      for (const s of subdirs) {
        const sub = dir.openDir(s.name);
        try {
          const now = sub.statSelf();
          if (now.ino !== s.st.ino || now.dev !== s.st.dev) throw changed(sub.display, 'another directory took its place');
          walk(sub, s.rel);
        } finally {
          sub.close();
        }
      }
    };
    walk(top, Buffer.alloc(0));
    return out;
  } finally {
    if (typeof root === 'string') top.close();
  }
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
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOATIME } = fs.constants;

/** The source and destination trees of a copy, each walked through directory fds (src/os/fs-at.ts). */
export interface TreeCopy {
  src: DirCursor;
  dst: DirCursor;
  /** a second cursor on the destination, for the first name of a hard link */
  dstLinks: DirCursor;
  /** what is worth telling the operator (extended attributes that could not be copied …) */
  notes: string[];
}

/**
 * Opens the copy of the tree planned as `entries` from srcRoot to dstRoot (the caller owns and
 * closes both roots; closeTreeCopy closes what is opened below them). Every source directory
 * opened must be the one planned (same inode): a directory of the user's tree renamed or swapped
 * since the walk stops the copy instead of copying something else.
 */
export function openTreeCopy(srcRoot: DirHandle, dstRoot: DirHandle, entries: readonly TreeEntry[]): TreeCopy {
  const planned = new Map<string, bigint>();
  for (const e of entries) if (e.kind === 'dir') planned.set(e.rel.toString('latin1'), e.ino);
  const src = new DirCursor(srcRoot, (rel, dir) => {
    const ino = planned.get(rel.toString('latin1'));
    if (ino === undefined || dir.statSelf().ino !== ino) throw changed(dir.display, 'another directory took its place');
  });
  return { src, dst: new DirCursor(dstRoot), dstLinks: new DirCursor(dstRoot), notes: [] };
}

export function closeTreeCopy(t: TreeCopy): void {
  t.src.reset();
  t.dst.reset();
  t.dstLinks.reset();
}

/** Opens a regular file of the source for reading (O_NOFOLLOW, O_NONBLOCK and, where allowed, O_NOATIME). */
function openSource(dir: DirHandle, name: Buffer): number {
  try {
    return dir.openFile(name, O_RDONLY | O_NOATIME);
  } catch (e) {
    // O_NOATIME is refused (EPERM) for files root does not own on some filesystems (e.g. 9p): read without it
    if (errnoOf((e as { cause?: unknown }).cause ?? e) !== 'EPERM') throw e;
    return dir.openFile(name, O_RDONLY);
  }
}

/** Reads fd to its end: the SHA-256 and length of its bytes, each chunk also handed to `sink`. */
export function hashStream(fd: number, sink?: (chunk: Buffer) => void): { sha256: string; size: number } {
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

/** Removes whatever is at rel in the tree of the cursor (a partial copy from an interrupted run), through fds. */
export function removeExisting(dst: DirCursor, rel: Buffer): void {
  const [parent, name] = parentAndName(rel);
  dst.dir(parent).removeTree(name);
}

/** Reads the attributes of a source object pinned by an O_PATH fd, checking it is the planned one. */
function pinnedSource(dir: DirHandle, name: Buffer, e: TreeEntry): { xattrs: Xattrs } {
  const pin = dir.pinPath(name);
  try {
    const st = fs.fstatSync(pin, { bigint: true });
    if (kindOfMode(st.mode) !== e.kind || st.ino !== e.ino) throw changed(dir.pathOf(name));
    return { xattrs: readXattrs({ path: pinnedPath(pin), nofollow: false }) };
  } finally {
    fs.closeSync(pin);
  }
}

/**
 * Copies one entry from the source tree to the destination tree (both through directory fds):
 * directories (made 700, root's: their owner, mode, xattrs and times come last, applyDirMetadata),
 * files, hard links, symlinks, FIFOs, sockets and device nodes, each with its owner, extended
 * attributes (ACLs included), mode and times. Returns the record for the done log, or null when
 * there is nothing to log (directories; nodes, which are simply made again on resume).
 */
export function copyEntry(t: TreeCopy, e: TreeEntry): DoneRecord | null {
  if (e.rel.length === 0) return null; // the root: applyDirMetadata
  const [parentRel, name] = parentAndName(e.rel);
  const record = (kind: DoneRecord['kind'], sha256?: string): DoneRecord => {
    const r: DoneRecord = { rel: e.rel, kind, size: e.size, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino };
    if (sha256 !== undefined) r.sha256 = sha256;
    return r;
  };
  const ddir = t.dst.dir(parentRel);
  const shown = (): string => displayRel(joinRel(displayRel(t.src.root.display), e.rel));
  if (e.kind === 'dir') {
    const st = ddir.stat(name);
    if (st !== null && !st.isDirectory()) ddir.removeTree(name);
    // root-only while its contents are copied; the real owner and mode come last (applyDirMetadata)
    if (st === null || !st.isDirectory()) ddir.mkdir(name, 0o700);
    return null;
  }
  ddir.removeTree(name); // a partial copy of an interrupted run (nothing there: no-op)
  if (e.kind === 'symlink') {
    const sdir = t.src.dir(parentRel);
    const { xattrs } = pinnedSource(sdir, name, e);
    ddir.symlink(e.target as Buffer, name);
    ddir.chown(name, e.uid, e.gid);
    if (xattrs.length > 0) {
      const pin = ddir.pinPath(name);
      try {
        t.notes.push(...writeXattrs({ path: pinnedPath(pin), nofollow: false }, xattrs, shown()));
      } finally {
        fs.closeSync(pin);
      }
    }
    try {
      ddir.utimes(name, e.atimeNs, e.mtimeNs);
    } catch {
      /* a filesystem without symlink times: the link itself is what matters */
    }
    return record('symlink');
  }
  if (e.kind === 'file' && e.linkOf !== undefined) {
    const [firstParent, firstName] = parentAndName(e.linkOf);
    ddir.link(t.dstLinks.dir(firstParent), firstName, name);
    return record('link');
  }
  const sdir = t.src.dir(parentRel);
  if (e.kind !== 'file') {
    // FIFO, socket, device node: made with mknodat, never opened; changed through an O_PATH fd
    const { xattrs } = pinnedSource(sdir, name, e);
    ddir.mknod(name, e.kind, 0o600, e.kind === 'char' || e.kind === 'block' ? e.rdev : 0n);
    const pin = ddir.pinPath(name);
    try {
      if (kindOfMode(fs.fstatSync(pin, { bigint: true }).mode) !== e.kind) throw changed(ddir.pathOf(name), 'not the node just made');
      pinnedChown(pin, e.uid, e.gid);
      t.notes.push(...writeXattrs({ path: pinnedPath(pin), nofollow: false }, xattrs, shown()));
      pinnedChmod(pin, e.mode);
      pinnedUtimes(pin, e.atimeNs, e.mtimeNs);
    } finally {
      fs.closeSync(pin);
    }
    return null;
  }
  const sfd = openSource(sdir, name);
  let dfd = -1;
  try {
    const sst = fs.fstatSync(sfd, { bigint: true });
    if (!sst.isFile() || sst.ino !== e.ino) throw changed(sdir.pathOf(name));
    const xattrs = readXattrs({ fd: sfd });
    dfd = ddir.openFile(name, O_WRONLY | O_CREAT | O_EXCL, 0o600);
    const out = dfd;
    const { sha256, size } = hashStream(sfd, (chunk) => {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(out, chunk, off, chunk.length - off);
    });
    if (size !== e.size) throw changed(sdir.pathOf(name), `its size went from ${e.size} to ${size} bytes`);
    // owner before xattrs (chown drops security.capability) and mode (chown clears setuid/setgid);
    // mode after the ACL xattrs (a chmod keeps the ACL's mask in line with the group bits); times last
    fs.fchownSync(dfd, e.uid, e.gid);
    t.notes.push(...writeXattrs({ fd: dfd }, xattrs, shown()));
    fs.fchmodSync(dfd, e.mode);
    setTimesFd(dfd, e.atimeNs, e.mtimeNs);
    fs.closeSync(dfd);
    dfd = -1;
    return record('file', sha256);
  } finally {
    fs.closeSync(sfd);
    if (dfd >= 0) fs.closeSync(dfd);
  }
}

/**
 * Owner, extended attributes, mode and times of every directory, deepest first (creating entries
 * in a directory changes its mtime), each on the fd of the directory itself.
 */
export function applyDirMetadata(t: TreeCopy, entries: readonly TreeEntry[]): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i] as TreeEntry;
    if (e.kind !== 'dir') continue;
    const xattrs = readXattrs({ fd: t.src.dir(e.rel).fd });
    const d = t.dst.dir(e.rel);
    fs.fchownSync(d.fd, e.uid, e.gid);
    t.notes.push(...writeXattrs({ fd: d.fd }, xattrs, displayRel(joinRel(displayRel(t.src.root.display), e.rel))));
    fs.fchmodSync(d.fd, e.mode);
    setTimesFd(d.fd, e.atimeNs, e.mtimeNs);
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
 * the lower file). Through directory fds, like the copy. Returns why it differs, or null.
 */
export function verifyEntry(dst: DirCursor, e: TreeEntry, done: ReadonlyMap<string, DoneRecord>, inodeOf: Map<string, bigint>): string | null {
  const [parentRel, name] = e.rel.length === 0 ? [Buffer.alloc(0), null] : parentAndName(e.rel);
  let dir: DirHandle;
  try {
    dir = dst.dir(parentRel);
  } catch (err) {
    if (err instanceof AgentError && (err.code === 'NOT_FOUND' || err.code === 'SYMLINK_REFUSED' || err.code === 'UNSAFE_PATH')) return 'missing (its directory is)';
    throw err;
  }
  const st = name === null ? dir.statSelf() : dir.stat(name);
  if (st === null) return 'missing';
  const kind = kindOf(st);
  if (kind !== e.kind) return `is a ${kind}, expected a ${e.kind}`;
  if (Number(st.uid) !== e.uid || Number(st.gid) !== e.gid) return `owner ${st.uid}:${st.gid}, expected ${e.uid}:${e.gid}`;
  if (e.kind !== 'symlink' && Number(st.mode & 0o7777n) !== e.mode) return `mode ${Number(st.mode & 0o7777n).toString(8)}, expected ${e.mode.toString(8)}`;
  if (e.kind === 'symlink') {
    const target = dir.readlink(name as Buffer);
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
  const fd = dir.openFile(name as Buffer, O_RDONLY);
  try {
    const fst = fs.fstatSync(fd, { bigint: true });
    if (!fst.isFile() || fst.ino !== st.ino) return 'changed while it was verified';
    return hashStream(fd).sha256 === r?.sha256 ? null : 'content differs (SHA-256)';
  } finally {
    fs.closeSync(fd);
  }
}
