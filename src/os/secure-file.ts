/**
 * The I/O edge for small security-relevant files (wrapped passphrase, sig/config files).
 * Reads never follow a final symlink and never block on FIFOs; writes are atomic
 * (temp file in the same directory + fsync + rename + directory fsync), like
 * ecryptfs-utils' write_v2_wrapped_passphrase_file.
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AgentError, ErrorCode, errnoOf } from '../errors';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;


/** Maps a failed system call on `path` to a typed error; `action` is e.g. "read". */
export function fileError(e: unknown, path: string, action: string): AgentError {
  if (e instanceof AgentError) return e;
  const errno = errnoOf(e);
  const detail = e instanceof Error ? e.message : String(e);
  switch (errno) {
    case 'ENOENT':
      return new AgentError('NOT_FOUND', `Cannot ${action} ${path}: no such file or directory`, { errno, cause: e });
    case 'ELOOP':
      return new AgentError('SYMLINK_REFUSED', `Cannot ${action} ${path}: it is a symbolic link`, { errno, cause: e });
    case 'EACCES':
    case 'EPERM':
      return new AgentError('PERMISSION', `Cannot ${action} ${path}: permission denied`, { errno, cause: e });
    case 'ENOSPC':
      return new AgentError('IO', `Cannot ${action} ${path}: disk full (no space left on device)`, { errno, cause: e });
    case 'EDQUOT':
      return new AgentError('IO', `Cannot ${action} ${path}: disk quota exceeded`, { errno, cause: e });
    case 'EISDIR':
      return new AgentError('NOT_REGULAR_FILE', `Cannot ${action} ${path}: it is a directory`, { errno, cause: e });
    default:
      return new AgentError('IO', `Cannot ${action} ${path}: ${detail}`, { ...(errno === undefined ? {} : { errno }), cause: e });
  }
}

export interface ReadSmallFileOptions {
  maxBytes: number;
  /** Refuse (BAD_OWNER) a file not owned by this uid. */
  expectOwnerUid?: number;
  /** Refuse (BAD_OWNER) a file owned neither by this user nor by root (a user's file that root acts on). */
  expectUserOrRoot?: { uid: number; name: string };
  /** Error code for a file over maxBytes (default BAD_CONFIG). */
  tooLargeCode?: ErrorCode;
  /** Refuse (BAD_OWNER) a file that group or others may write (what root acts on must be the owner's alone). */
  refuseGroupOrOtherWritable?: boolean;
  /** With refuseGroupOrOtherWritable: group write is accepted when the file's group is this gid
   * (the owner's user private group, where umask 002 is the default). */
  groupWritableIfGid?: number;
}

export function readSmallFile(path: string, opts: ReadSmallFileOptions): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO planted at `path` must not hang us.
    fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    throw fileError(e, path, 'open');
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      throw new AgentError('NOT_REGULAR_FILE', `${path} is not a regular file`, st.isDirectory() ? { errno: 'EISDIR' } : {});
    }
    if (opts.expectOwnerUid !== undefined && st.uid !== opts.expectOwnerUid) {
      throw new AgentError('BAD_OWNER', `${path} is owned by uid ${st.uid}, expected uid ${opts.expectOwnerUid}`);
    }
    const user = opts.expectUserOrRoot;
    if (user !== undefined && st.uid !== user.uid && st.uid !== 0) {
      throw new AgentError('BAD_OWNER', `${path} is owned by uid ${st.uid}, not by ${user.name} or root`, { hint: `chown ${user.name}: ${path}` });
    }
    const writableBy = opts.groupWritableIfGid !== undefined && st.gid === opts.groupWritableIfGid ? 0o002 : 0o022;
    if (opts.refuseGroupOrOtherWritable === true && (st.mode & writableBy) !== 0) {
      throw new AgentError('BAD_OWNER', `${path} has mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}: group or others may write it`, {
        hint: `chmod go-w ${path}`,
      });
    }
    const tooLarge = (): AgentError =>
      new AgentError(opts.tooLargeCode ?? 'BAD_CONFIG', `${path} is larger than ${opts.maxBytes} bytes`, { errno: 'EFBIG' });
    if (st.size > opts.maxBytes) throw tooLarge();
    // Read to EOF rather than trusting st.size (the file may change or be a proc-like file).
    const buf = Buffer.alloc(opts.maxBytes + 1);
    let length = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > opts.maxBytes) {
        buf.fill(0);
        throw tooLarge();
      }
    }
    const out = Buffer.from(buf.subarray(0, length));
    buf.fill(0);
    return out;
  } catch (e) {
    throw fileError(e, path, 'read');
  } finally {
    fs.closeSync(fd);
  }
}

/** True if something (any type, including a dangling symlink) exists at `path`; symlinks are not followed. */
/**
 * lstat (never follows the last name): null when nothing is there (ENOENT); any other failure is
 * a typed error (fileError), so "cannot look" is never mistaken for "absent".
 */
export function lstatOrNull(path: string | Buffer): fs.Stats | null;
export function lstatOrNull(path: string | Buffer, opts: { bigint: true }): fs.BigIntStats | null;
export function lstatOrNull(path: string | Buffer, opts?: { bigint: true }): fs.Stats | fs.BigIntStats | null {
  try {
    return opts?.bigint ? fs.lstatSync(path, { bigint: true }) : fs.lstatSync(path);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw fileError(e, String(path), 'examine');
  }
}

export function fileExists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return false;
    throw fileError(e, path, 'stat');
  }
}

export interface WriteFileAtomicOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

const TEMP_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * "<path>.tmp-<pid>-XXXXXX": the writer's pid in the name lets a later writer recognise the
 * temp file of one that was killed between create and rename (see removeStaleTemps).
 */
function tempPathFor(path: string): string {
  const suffix = Array.from(randomBytes(6), (b) => TEMP_ALPHABET[b % TEMP_ALPHABET.length]).join('');
  return `${path}.tmp-${process.pid}-${suffix}`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) !== 'ESRCH'; // EPERM: alive, someone else's
  }
}

/**
 * Removes temp files that writers of `path` left when they were killed before the rename (their
 * pid is gone). A live writer's temp file is never touched. Returns the names removed.
 */
export function removeStaleTemps(path: string): string[] {
  const prefix = `${basename(path)}.tmp-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dirname(path));
  } catch {
    return removed; // the write that follows reports a missing or unreadable directory
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d{1,10})-[A-Za-z0-9]{6}$/.exec(name.slice(prefix.length));
    if (m === null || processAlive(Number(m[1]))) continue;
    const stale = join(dirname(path), name);
    try {
      if (!fs.lstatSync(stale).isFile()) continue;
      fs.unlinkSync(stale);
      removed.push(name);
    } catch {
      /* gone already, or not ours to remove: the write itself is what matters */
    }
  }
  return removed;
}

function createExclusive(path: string, mode: number): { fd: number; tempPath: string } {
  for (let attempt = 0; ; attempt++) {
    const tempPath = tempPathFor(path);
    try {
      return { fd: fs.openSync(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode), tempPath };
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST' || attempt >= 10) throw fileError(e, tempPath, 'create');
    }
  }
}

function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replaces `path` atomically with `data`. A symlink at `path` is replaced, not followed.
 * On any failure the temp file is removed and the old file is left untouched; a temp file
 * left by a writer that was killed is removed by the next write.
 */
export function writeFileAtomic(path: string, data: Buffer, opts: WriteFileAtomicOptions = {}): void {
  const mode = opts.mode ?? 0o600;
  removeStaleTemps(path);
  const { fd, tempPath } = createExclusive(path, mode);
  let fdOpen = true;
  try {
    fs.fchmodSync(fd, mode); // the umask must not widen or narrow the requested mode
    let written = 0;
    while (written < data.length) written += fs.writeSync(fd, data, written, data.length - written);
    if (opts.uid !== undefined || opts.gid !== undefined) fs.fchownSync(fd, opts.uid ?? -1, opts.gid ?? -1);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fdOpen = false;
    fs.renameSync(tempPath, path);
  } catch (e) {
    if (fdOpen) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing; the original error matters */
      }
    }
    try {
      fs.unlinkSync(tempPath);
    } catch {
      /* best effort: nothing more we can do */
    }
    throw fileError(e, path, 'write');
  }
  try {
    fsyncDirectory(dirname(path));
  } catch (e) {
    // The rename is done; failing to flush the directory is reported but the data is in place.
    throw fileError(e, dirname(path), 'flush directory');
  }
}

/**
 * Owned by root and writable by no group or other: only root can change what it holds or names.
 * (A sticky directory writable by others does not count: others still add names to it.)
 */
export function onlyRootCanChange(st: fs.Stats | fs.BigIntStats): boolean {
  return Number(st.uid) === 0 && (Number(st.mode) & 0o022) === 0;
}

/**
 * A root-owned directory that no one else can write, made with `mode` when missing: the agents'
 * state directory, also the resident agent's socket directory. Anything else there (a user's
 * directory, a symlink, group- or world-writable) is refused, never repaired. With `exactMode`
 * a stricter or looser mode of a good directory is set to `mode`.
 */
export function ensureRootDir(dir: string, mode: number, opts: { exactMode?: boolean } = {}): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || !onlyRootCanChange(st)) {
    throw new AgentError('BAD_OWNER', `state directory ${dir} must be a root-owned directory not writable by others`);
  }
  if (opts.exactMode && (st.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
}
