/**
 * ~/.ecryptfs/sig-cache.txt, read and written as mount.ecryptfs (ecryptfs-utils 111,
 * libecryptfs/key_management.c ecryptfs_check_sig / ecryptfs_append_sig) does, so either tool
 * reads what the other recorded. The file is a list of 17-byte records "<16 hex sig>\n". The
 * check reads it in 17-byte chunks and compares the first 16 bytes of each with the sig (memcmp:
 * case matters; a short last chunk is no record); an append adds one record at the end of a file
 * created with mode 0600. A sig that is not there was never mounted with: most likely the
 * passphrase was mistyped, which is what the warning is for.
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { AgentError } from '../errors';
import { isSig } from '../formats/auth-tok';
import { fileError, readSmallFile } from '../os/secure-file';

export const SIG_CACHE_FILE = 'sig-cache.txt';
const RECORD_BYTES = 17;
/** ~60 000 sigs; a bigger file is not a sig cache. */
const MAX_SIG_CACHE_BYTES = 1 << 20;

export function sigCachePath(home: string): string {
  return join(home, '.ecryptfs', SIG_CACHE_FILE);
}

function checkedSig(sig: string): string {
  if (!isSig(sig)) throw new AgentError('BAD_SIG', `"${String(sig).slice(0, 40)}" is not a 16-hex-digit signature`);
  return sig;
}

/** Pure: is `sig` one of the records of `content` (null: no file, so no)? */
export function sigCacheHas(content: Buffer | null, sig: string): boolean {
  const want = Buffer.from(checkedSig(sig), 'latin1');
  if (content === null) return false;
  for (let off = 0; off + RECORD_BYTES <= content.length; off += RECORD_BYTES) {
    if (content.subarray(off, off + want.length).equals(want)) return true;
  }
  return false;
}

/** Pure: the record an append writes. */
export function sigCacheRecord(sig: string): Buffer {
  return Buffer.from(`${checkedSig(sig)}\n`, 'latin1');
}

/** mount.ecryptfs's warning, word for word (trailing spaces included). */
export function newSigWarning(path: string): string {
  return (
    `WARNING: Based on the contents of [${path}],\n` +
    'it looks like you have never mounted with this key \n' +
    'before. This could mean that you have typed your \n' +
    'passphrase wrong.\n\n'
  );
}

/** The cache's bytes, or null when there is no cache yet. A symlink or a non-file is refused. */
export function readSigCache(path: string): Buffer | null {
  try {
    return readSmallFile(path, { maxBytes: MAX_SIG_CACHE_BYTES });
  } catch (e) {
    if (e instanceof AgentError && e.code === 'NOT_FOUND') return null;
    throw e;
  }
}

export function isSigCached(path: string, sig: string): boolean {
  return sigCacheHas(readSigCache(path), sig);
}

/**
 * Appends `sig` (creating ~/.ecryptfs 0700 and the file 0600 when missing, owned by `owner` when
 * given, as mount.ecryptfs chowns them to the caller). O_APPEND: one write, never a torn record
 * mixed with a concurrent appender's. O_NOFOLLOW: a symlink planted at the file is not written through.
 */
export function appendToSigCache(path: string, sig: string, owner?: { uid: number; gid: number }): void {
  const record = sigCacheRecord(sig);
  const dir = dirname(path);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(e, dir, 'create');
  }
  const { O_WRONLY, O_CREAT, O_APPEND, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o600);
  } catch (e) {
    throw fileError(e, path, 'open');
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new AgentError('NOT_REGULAR_FILE', `${path} is not a regular file`);
    if (owner && st.size === 0) fs.fchownSync(fd, owner.uid, owner.gid);
    if (fs.writeSync(fd, record) !== record.length) throw new AgentError('IO', `short write to ${path}`);
    fs.fsyncSync(fd);
  } catch (e) {
    throw fileError(e, path, 'write');
  } finally {
    fs.closeSync(fd);
  }
}
