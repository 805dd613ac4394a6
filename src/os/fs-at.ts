/**
 * File operations relative to open directory fds, for root working inside a tree that a user
 * may change at the same time (migrate-home: the plaintext original, the user's own, and the new
 * encrypted home). Root never resolves a path inside such a tree: it holds an fd on each directory,
 * opened from its parent's fd by ONE name component with
 * `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_XDEV])` and
 * `O_NOFOLLOW` (openat + O_NOFOLLOW where the kernel has no openat2: for a single component that
 * is the same guarantee), and every change is made on an fd (fchown, fchmod, futimens, fsetxattr)
 * or by an *at call on the parent's fd that never follows the last component (mkdirat,
 * symlinkat, linkat, mknodat, unlinkat, fchownat / utimensat with AT_SYMLINK_NOFOLLOW).
 * A directory renamed or swapped for a symlink while we work changes nothing: the fd still names
 * the directory we opened, and a symlink is never followed, whoever planted it.
 *
 * Where Node's own fs is used, it is with a path `/proc/self/fd/N/NAME` (or `/proc/self/fd/N`) and
 * only for calls that do not follow the LAST component (lstat, readlink, rename, readdir of the fd
 * itself). Such a path is resolved as: /proc/self/fd/N, a "magic link" the kernel resolves to
 * exactly the open file of fd N (not to a name that can be changed), then NAME looked up in that
 * directory without following it. That is what the *at call with dirfd N does (fstatat(N, NAME,
 * AT_SYMLINK_NOFOLLOW), readlinkat, renameat ...). NAME is always one component (checkName: no
 * '/', not '.' or '..'), so nothing else is resolved. Opens never go this way (they are openat2),
 * and mode changes are on fds: chmod(2) by path follows symlinks. For objects that must not be
 * opened for I/O (device nodes, sockets, FIFOs) an O_PATH fd pins the object, and the change goes
 * through /proc/self/fd/N of that O_PATH fd: the magic link is that very inode (as glibc's
 * fchmodat(AT_SYMLINK_NOFOLLOW) does).
 */
import * as fs from 'node:fs';
import { AgentError, errnoOf, isAgentError } from '../errors';
import { native } from './native';
import { lstatOrNull, onlyRootCanChange } from './secure-file';

export const RESOLVE = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08 } as const;
export const AT = { FDCWD: -100, SYMLINK_NOFOLLOW: 0x100, REMOVEDIR: 0x200, EMPTY_PATH: 0x1000 } as const;
/** O_PATH (x86-64, arm64 …: 010000000); fs.constants does not export it. */
export const O_PATH = 0o10000000;
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
const S_IFMT = 0o170000;

export type FileKind = 'dir' | 'file' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';

export function kindOfMode(mode: number | bigint): FileKind {
  switch (Number(BigInt(mode) & BigInt(S_IFMT))) {
    case 0o040000:
      return 'dir';
    case 0o100000:
      return 'file';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    default:
      return 'socket';
  }
}

/** The S_IF* bits of a kind (mknodat). */
export const S_IF: Record<FileKind, number> = { dir: 0o040000, file: 0o100000, symlink: 0o120000, fifo: 0o010000, char: 0o020000, block: 0o060000, socket: 0o140000 };

// ------------------------------------------------------------------ names and errors

const SLASH = 0x2f;

function show(b: Buffer | string): string {
  const s = typeof b === 'string' ? b : b.toString('utf8');
  return s.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One name component: not empty, no '/', no NUL, not '.' or '..'. */
export function checkName(name: Buffer | string): Buffer {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  if (b.length === 0 || b.includes(SLASH) || b.includes(0) || (b.length === 1 && b[0] === 0x2e) || (b.length === 2 && b[0] === 0x2e && b[1] === 0x2e)) {
    throw new AgentError('UNSAFE_PATH', `"${show(b)}" is not a single file name`);
  }
  return b;
}

function nativeCall<T>(what: () => string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AgentError) throw e;
    const code = errnoOf(e);
    const err = new AgentError(code === 'EACCES' || code === 'EPERM' ? 'PERMISSION' : 'IO', `${what()}: ${(e as Error).message}`, { cause: e, ...(code ? { errno: code } : {}) });
    throw err;
  }
}

// ------------------------------------------------------------------ openat2, with the openat fallback

let openat2Missing = false;

/** For tests: behave as on a kernel without openat2 (true), or detect again (false). */
export function forceOpenatFallback(on: boolean): void {
  openat2Missing = on;
}

/** Whether openat2 is in use (false once the kernel answered ENOSYS). */
export function usingOpenat2(): boolean {
  return !openat2Missing;
}

/**
 * Opens NAME (one component) in the directory dirfd, never through a symlink (O_NOFOLLOW added),
 * never through a magic link, never outside dirfd, and (noXdev) never onto another mount. Raw
 * native errors (errno/code) are thrown for the caller to explain.
 */
export function openBeneath(dirfd: number, name: Buffer | string, flags: number, mode = 0, opts: { noXdev?: boolean } = {}): number {
  const n = checkName(name);
  const f = flags | O_NOFOLLOW;
  if (!openat2Missing) {
    try {
      return native().openat2(dirfd, n, f, mode, RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS | (opts.noXdev ? RESOLVE.NO_XDEV : 0));
    } catch (e) {
      if (errnoOf(e) !== 'ENOSYS') throw e;
      openat2Missing = true; // Linux < 5.6 (or a filter that hides it): one component + O_NOFOLLOW is the same guarantee
    }
  }
  // (no RESOLVE_NO_XDEV here: callers that need one filesystem compare st_dev, as walkTree does)
  return native().openat(dirfd, n, f, mode);
}

// ------------------------------------------------------------------ times and extended attributes

/** Splits nanoseconds since the epoch into (seconds, nanoseconds ≥ 0). */
export function splitNs(ns: bigint): [number, number] {
  let s = ns / 1_000_000_000n;
  let r = ns % 1_000_000_000n;
  if (r < 0n) {
    r += 1_000_000_000n;
    s -= 1n;
  }
  return [Number(s), Number(r)];
}

/** futimens: exact times on an open fd. */
export function setTimesFd(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  const [as, an] = splitNs(atimeNs);
  const [ms, mn] = splitNs(mtimeNs);
  nativeCall(() => 'futimens', () => native().utimensat(fd, null, as, an, ms, mn, 0));
}

export type Xattrs = Array<[name: Buffer, value: Buffer]>;

/** What GNU cp skips by default (/etc/xattr.conf of libattr): filesystem-private or kernel-only names. */
const SKIP_XATTR = [/^trusted\.SGI_(ACL_DEFAULT|ACL_FILE|CAP_FILE|DMI_.*|MAC_FILE)$/, /^xfsroot\./, /^user\.Beagle\./, /^security\.evm$/, /^afs\./];

export function skippedXattr(name: Buffer): boolean {
  const s = name.toString('latin1');
  return SKIP_XATTR.some((re) => re.test(s));
}

function unsupported(e: unknown): boolean {
  const c = errnoOf(e);
  return c === 'ENOTSUP' || c === 'EOPNOTSUPP';
}

/** How to reach an object's extended attributes: an fd open on it, or a path (and whether to follow its last component). */
export type XattrTarget = { fd: number } | { path: Buffer | string; nofollow: boolean };

/** Every extended attribute (except the skipped ones); none when the filesystem has no xattrs. */
export function readXattrs(t: XattrTarget): Xattrs {
  const n = native();
  let names: Buffer[];
  try {
    names = 'fd' in t ? n.flistxattr(t.fd) : n.pathListxattr(t.path, t.nofollow);
  } catch (e) {
    if (unsupported(e)) return [];
    throw e;
  }
  const out: Xattrs = [];
  for (const name of names) {
    if (skippedXattr(name)) continue;
    try {
      out.push([name, 'fd' in t ? n.fgetxattr(t.fd, name) : n.pathGetxattr(t.path, name, t.nofollow)]);
    } catch (e) {
      if (errnoOf(e) === 'ENODATA') continue; // removed meanwhile
      throw e;
    }
  }
  return out;
}

/** Sets each attribute; returns one message per attribute that could not be set (as cp reports them). */
export function writeXattrs(t: XattrTarget, xattrs: Xattrs, display: string): string[] {
  const n = native();
  const notes: string[] = [];
  for (const [name, value] of xattrs) {
    try {
      if ('fd' in t) n.fsetxattr(t.fd, name, value, 0);
      else n.pathSetxattr(t.path, name, value, 0, t.nofollow);
    } catch (e) {
      notes.push(`${display}: extended attribute ${show(name)} not copied: ${(e as Error).message}`);
    }
  }
  return notes;
}

// ------------------------------------------------------------------ directory handles

/**
 * An open directory. Everything below it is reached by name components relative to its fd.
 * `display` is only for messages (the path it had when opened). Children inherit noXdev.
 */
export class DirHandle {
  private closed = false;

  constructor(
    readonly fd: number,
    readonly display: Buffer,
    readonly noXdev = false,
  ) {}

  /** Wraps an fd the caller opened (the handle owns it from now on). */
  static fromFd(fd: number, display: Buffer | string, noXdev = false): DirHandle {
    return new DirHandle(fd, Buffer.from(display), noXdev);
  }

  /**
   * Opens an absolute path from "/" one component at a time, without following any symlink except
   * root's own indirections (a link owned by root in a root-owned directory no one else can write,
   * e.g. /home -> /data/home) in the components before the last; the last must be a real directory.
   * For the fixed places root works from (/home, /run/ecryptfs-agent …), not for paths inside a tree.
   */
  static openPath(path: string, opts: { noXdev?: boolean } = {}): DirHandle {
    if (!path.startsWith('/') || path.includes('\0')) throw new AgentError('UNSAFE_PATH', `"${show(path)}" is not an absolute path`);
    const parts = path.split('/').filter((c) => c !== '');
    let dir = new DirHandle(nativeCall(() => 'open /', () => native().openat(AT.FDCWD, '/', O_RDONLY | O_DIRECTORY, 0)), Buffer.from('/'));
    try {
      for (const [i, name] of parts.entries()) {
        if (name === '.' || name === '..') throw new AgentError('UNSAFE_PATH', `"${show(path)}" contains "." or ".."`);
        let next: DirHandle;
        try {
          next = dir.openDir(name);
        } catch (e) {
          if (!isAgentError(e, 'SYMLINK_REFUSED') || i === parts.length - 1) throw e;
          const st = dir.stat(name);
          const parent = dir.statSelf();
          if (st === null || !st.isSymbolicLink() || st.uid !== 0n || !onlyRootCanChange(parent)) throw e;
          // root's own link: followed for this component only (a plain open through /proc/self/fd/N/NAME)
          const fd = nativeCall(() => `open ${show(path)}`, () => native().openat(AT.FDCWD, dir.procPath(name), O_RDONLY | O_DIRECTORY, 0));
          next = new DirHandle(fd, Buffer.from(`/${parts.slice(0, i + 1).join('/')}`));
        }
        dir.close();
        dir = next;
      }
      if (opts.noXdev) return new DirHandle(dir.release(), Buffer.from(path), true);
      return new DirHandle(dir.release(), Buffer.from(path));
    } catch (e) {
      dir.close();
      throw e;
    }
  }

  /** /proc/self/fd/N (this directory itself). */
  get proc(): string {
    return `/proc/self/fd/${this.fd}`;
  }

  /** /proc/self/fd/N/NAME: for calls that never follow their last component (see the top of this file). */
  procPath(name: Buffer | string): Buffer {
    return Buffer.concat([Buffer.from(`/proc/self/fd/${this.fd}/`), checkName(name)]);
  }

  /** For messages: the path NAME had when its directory was opened. */
  pathOf(name: Buffer | string): Buffer {
    const n = typeof name === 'string' ? Buffer.from(name) : name;
    return this.display.length > 0 && this.display[this.display.length - 1] === SLASH ? Buffer.concat([this.display, n]) : Buffer.concat([this.display, Buffer.from('/'), n]);
  }

  private where(name: Buffer | string): string {
    return show(this.pathOf(name));
  }

  /** Opens the subdirectory NAME (never a symlink: SYMLINK_REFUSED; not a directory: NOT_A_DIRECTORY as UNSAFE_PATH). */
  openDir(name: Buffer | string): DirHandle {
    let fd: number;
    try {
      fd = openBeneath(this.fd, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0, { noXdev: this.noXdev });
    } catch (e) {
      throw this.explainOpen(e, name, 'directory');
    }
    return new DirHandle(fd, this.pathOf(name), this.noXdev);
  }

  /** Opens the file NAME with flags (O_NOFOLLOW always added; O_NONBLOCK added unless creating: a FIFO never blocks us). */
  openFile(name: Buffer | string, flags: number, mode = 0): number {
    try {
      return openBeneath(this.fd, name, flags | ((flags & fs.constants.O_CREAT) === 0 ? O_NONBLOCK : 0), mode, { noXdev: this.noXdev });
    } catch (e) {
      throw this.explainOpen(e, name, 'file');
    }
  }

  /** An O_PATH fd on NAME itself, whatever it is (a symlink too): pins the object without opening it for I/O. */
  pinPath(name: Buffer | string): number {
    try {
      return openBeneath(this.fd, name, O_PATH, 0, { noXdev: this.noXdev });
    } catch (e) {
      throw this.explainOpen(e, name, 'entry');
    }
  }

  private explainOpen(e: unknown, name: Buffer | string, what: string): AgentError {
    if (e instanceof AgentError) return e;
    const code = errnoOf(e);
    const where = this.where(name);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      let st: fs.BigIntStats | null = null;
      try {
        st = this.stat(name);
      } catch {
        /* explained below */
      }
      if (st === null || st.isSymbolicLink()) return new AgentError('SYMLINK_REFUSED', `${where} is a symbolic link (or was swapped for one); refusing to open it as a ${what}`, { errno: code, cause: e });
      return new AgentError('UNSAFE_PATH', `${where} is not a ${what}`, { errno: code, cause: e });
    }
    if (code === 'EXDEV') return new AgentError('IN_USE', `${where} is on another filesystem (something is mounted there)`, { errno: code, cause: e, hint: `Unmount it first (umount ${where})` });
    if (code === 'ENOENT') return new AgentError('NOT_FOUND', `${where} does not exist`, { errno: code, cause: e });
    if (code === 'EACCES' || code === 'EPERM') return new AgentError('PERMISSION', `cannot open ${where}: ${(e as Error).message}`, { errno: code, cause: e });
    if (code === 'EEXIST') return new AgentError('ALREADY_EXISTS', `${where} already exists`, { errno: code, cause: e });
    return new AgentError('IO', `cannot open ${where}: ${(e as Error).message}`, { cause: e, ...(code ? { errno: code } : {}) });
  }

  /** lstat of NAME (never follows it), or null when it does not exist. */
  stat(name: Buffer | string): fs.BigIntStats | null {
    return lstatOrNull(this.procPath(name), { bigint: true });
  }

  /** fstat of this directory. */
  statSelf(): fs.BigIntStats {
    return fs.fstatSync(this.fd, { bigint: true });
  }

  /** The names in this directory (raw bytes), sorted bytewise. */
  readdir(): Buffer[] {
    // opendir("/proc/self/fd/N") opens the directory of fd N itself (the magic link is its inode)
    return (fs.readdirSync(this.proc, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
  }

  readlink(name: Buffer | string): Buffer {
    return fs.readlinkSync(this.procPath(name), { encoding: 'buffer' });
  }

  mkdir(name: Buffer | string, mode: number): void {
    nativeCall(() => `mkdir ${this.where(name)}`, () => native().mkdirat(this.fd, checkName(name), mode));
  }

  symlink(target: Buffer, name: Buffer | string): void {
    nativeCall(() => `symlink ${this.where(name)}`, () => native().symlinkat(target, this.fd, checkName(name)));
  }

  /** A hard link NAME here to FROMNAME in fromDir (a symlink there is linked itself, never followed). */
  link(fromDir: DirHandle, fromName: Buffer | string, name: Buffer | string): void {
    nativeCall(() => `link ${this.where(name)} to ${fromDir.where(fromName)}`, () => native().linkat(fromDir.fd, checkName(fromName), this.fd, checkName(name), 0));
  }

  mknod(name: Buffer | string, kind: FileKind, perm: number, rdev: bigint): void {
    nativeCall(() => `mknod ${this.where(name)}`, () => native().mknodat(this.fd, checkName(name), S_IF[kind] | (perm & 0o7777), rdev));
  }

  unlink(name: Buffer | string): void {
    nativeCall(() => `unlink ${this.where(name)}`, () => native().unlinkat(this.fd, checkName(name), 0));
  }

  rmdir(name: Buffer | string): void {
    nativeCall(() => `rmdir ${this.where(name)}`, () => native().unlinkat(this.fd, checkName(name), AT.REMOVEDIR));
  }

  /** rename(2) never follows its last components: renameat(this, from, toDir, to). */
  rename(from: Buffer | string, toDir: DirHandle, to: Buffer | string): void {
    nativeCall(() => `rename ${this.where(from)} to ${toDir.where(to)}`, () => fs.renameSync(this.procPath(from), toDir.procPath(to)));
  }

  /** Owner of NAME itself (fchownat AT_SYMLINK_NOFOLLOW: a symlink is changed, never followed). */
  chown(name: Buffer | string, uid: number, gid: number): void {
    nativeCall(() => `chown ${this.where(name)}`, () => native().fchownat(this.fd, checkName(name), uid, gid, AT.SYMLINK_NOFOLLOW));
  }

  /** Times of NAME itself (utimensat AT_SYMLINK_NOFOLLOW), exact to the nanosecond. */
  utimes(name: Buffer | string, atimeNs: bigint, mtimeNs: bigint): void {
    const [as, an] = splitNs(atimeNs);
    const [ms, mn] = splitNs(mtimeNs);
    nativeCall(() => `utimes ${this.where(name)}`, () => native().utimensat(this.fd, checkName(name), as, an, ms, mn, AT.SYMLINK_NOFOLLOW));
  }

  /**
   * Removes NAME whatever it is; a directory with everything in it, depth first, each level
   * through an fd opened beneath its parent (a symlink is unlinked, never followed). Missing: no-op.
   */
  removeTree(name: Buffer | string): void {
    const st = this.stat(name);
    if (st === null) return;
    if (!st.isDirectory()) {
      this.unlink(name);
      return;
    }
    const sub = this.openDir(name);
    try {
      const now = sub.statSelf();
      if (now.ino !== st.ino || now.dev !== st.dev) throw new AgentError('IO', `${this.where(name)} changed while it was being removed`);
      for (const child of sub.readdir()) sub.removeTree(child);
    } finally {
      sub.close();
    }
    this.rmdir(name);
  }

  /** Gives up the fd to the caller (the handle is closed without closing it). */
  release(): number {
    this.closed = true;
    return this.fd;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

// ------------------------------------------------------------------ objects pinned by an O_PATH fd

/**
 * Changes to an object held by an O_PATH fd (DirHandle.pinPath): a device node, FIFO or socket,
 * which must not be opened for I/O. The path /proc/self/fd/N of such an fd is a magic link to that
 * very inode, so chmod/utimensat/setxattr through it act on the pinned object and nothing else.
 */
export function pinnedPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

export function pinnedChown(fd: number, uid: number, gid: number): void {
  nativeCall(() => 'fchownat(AT_EMPTY_PATH)', () => native().fchownat(fd, '', uid, gid, AT.EMPTY_PATH));
}

export function pinnedChmod(fd: number, mode: number): void {
  nativeCall(() => 'chmod', () => fs.chmodSync(pinnedPath(fd), mode & 0o7777));
}

export function pinnedUtimes(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
  const [as, an] = splitNs(atimeNs);
  const [ms, mn] = splitNs(mtimeNs);
  nativeCall(() => 'utimensat', () => native().utimensat(AT.FDCWD, pinnedPath(fd), as, an, ms, mn, 0));
}

// ------------------------------------------------------------------ relative paths in a tree

/** rel ('' for the root) split into its components. */
export function splitRel(rel: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= rel.length; i++) {
    if (i === rel.length || rel[i] === SLASH) {
      if (i > start) out.push(rel.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** The parent's rel and the last name of a rel (not empty). */
export function parentAndName(rel: Buffer): [Buffer, Buffer] {
  const slash = rel.lastIndexOf(SLASH);
  return slash < 0 ? [Buffer.alloc(0), rel] : [rel.subarray(0, slash), rel.subarray(slash + 1)];
}

/**
 * The open directories on the way from a tree's root to the directory last asked for, reused by
 * the next request that shares a prefix (a walk in listing order opens each directory once).
 * `onOpen` sees every directory opened (to check it is the one that was planned).
 */
export class DirCursor {
  private chain: Array<{ name: Buffer; dir: DirHandle }> = [];

  constructor(
    readonly root: DirHandle,
    private readonly onOpen?: (rel: Buffer, dir: DirHandle) => void,
  ) {}

  /** The directory at rel ('' = the root), opened component by component beneath the root. */
  dir(rel: Buffer): DirHandle {
    const parts = splitRel(rel);
    let keep = 0;
    while (keep < this.chain.length && keep < parts.length && (this.chain[keep] as { name: Buffer }).name.equals(parts[keep] as Buffer)) keep++;
    while (this.chain.length > keep) this.chain.pop()?.dir.close();
    for (let i = keep; i < parts.length; i++) {
      const parent = i === 0 ? this.root : (this.chain[i - 1] as { dir: DirHandle }).dir;
      const dir = parent.openDir(parts[i] as Buffer);
      try {
        this.onOpen?.(Buffer.concat(parts.slice(0, i + 1).flatMap((p, j) => (j === 0 ? [p] : [Buffer.from('/'), p]))), dir);
      } catch (e) {
        dir.close();
        throw e;
      }
      this.chain.push({ name: parts[i] as Buffer, dir });
    }
    return parts.length === 0 ? this.root : (this.chain[parts.length - 1] as { dir: DirHandle }).dir;
  }

  /** Closes the directories below the root (the root stays open: its owner closes it). */
  reset(): void {
    while (this.chain.length > 0) this.chain.pop()?.dir.close();
  }
}
