/**
 * `ecryptfs-agent export`: copies the plaintext of an eCryptfs lower directory (~/.Private) to
 * a new directory WITHOUT the kernel module: the way off eCryptfs on a kernel that no longer has
 * it. Read-only on the lower side. Formats: src/formats/lower-format.ts (header),
 * ecryptfs-file.ts (contents), ecryptfs-name.ts (names, symlink targets).
 *
 * The key is checked against what the directory says (recovery.ts checkRecoveryKey: the sigs of
 * a file header and of an encrypted name, and Private.sig) before anything is written. Then the
 * tree is walked depth-first, never following symlinks nor leaving the lower filesystem; every
 * file is streamed extent by extent (bounded memory whatever its size) into a file created 0600
 * and chmod-ed when complete. A file that cannot be read (wrong key, truncated, damaged header,
 * unsupported cipher) is a typed error naming it; the partial copy is removed and the walk goes on.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { AgentError, isAgentError } from '../errors';
import { deriveKey, FNEK_SALT } from '../formats/kdf';
import { DATA_EXTENT_BYTES, type EcryptfsHeader, hasEcryptfsMarker, HEADER_BYTES_NEEDED, parseEcryptfsHeader, type PassphraseKeyPacket } from '../formats/lower-format';
import { decryptExtents, extentCount, type FileKey, unwrapFileKey } from '../formats/ecryptfs-file';
import { decryptName, parseEncryptedName } from '../formats/ecryptfs-name';
import { lookupUid, type UserInfo } from '../os/credentials';
import { call } from '../os/native';
import { lstatOrNull } from '../os/secure-file';
import { hashStream } from './migrate-tree';
import { checkRecoveryKey, mountPassphraseFrom, type RecoveryKeyInput, type RecoverySource } from './recovery';

const XATTR_NAME = 'user.ecryptfs'; // ECRYPTFS_XATTR_NAME
/** Extents read per read(2): 64 × 4 KiB keeps memory at 256 KiB per file whatever its size. */
const EXTENTS_PER_READ = 64;

/** The two session key encryption keys of a mount passphrase (secret memory: call wipe()). */
export interface ExportKeys {
  fekSig: string;
  fnekSig: string;
  fekSek: Buffer;
  fnekSek: Buffer;
  wipe(): void;
}

/** Keys from a mount passphrase and the salt of the setup (FNEK: the fixed ASCII salt, as ecryptfs-utils). */
export function exportKeysOf(mountPassphrase: Buffer, salt: Buffer): ExportKeys {
  const fek = deriveKey(mountPassphrase, salt);
  const fnek = deriveKey(mountPassphrase, FNEK_SALT);
  return {
    fekSig: fek.sig,
    fnekSig: fnek.sig,
    fekSek: fek.key,
    fnekSek: fnek.key,
    wipe() {
      fek.key.fill(0);
      fnek.key.fill(0);
    },
  };
}

/**
 * The mount passphrase from the user's input, checked against the directory (and Private.sig);
 * returns the keys. Throws before anything is written.
 */
export function exportKeysFor(source: RecoverySource, input: RecoveryKeyInput): { keys: ExportKeys; checkedAgainst: string[] } {
  const passphrase = mountPassphraseFrom(source, input);
  try {
    const keys = exportKeysOf(passphrase, source.salt);
    try {
      const checkedAgainst = checkRecoveryKey(source, { fekSig: keys.fekSig, fnekSig: keys.fnekSig }, input.kind);
      return { keys, checkedAgainst };
    } catch (e) {
      keys.wipe();
      throw e;
    }
  } finally {
    passphrase.fill(0);
  }
}

export interface ExportProblem {
  /** the lower path that could not be exported */
  lower: string;
  error: AgentError;
}

export interface TreeOptions {
  /** names at the top of the destination that are not the export's and stay (fscrypt's recovery readme) */
  keep?: readonly string[];
}

export interface ExportSummary {
  files: number;
  passthrough: number;
  dirs: number;
  symlinks: number;
  /** names of a file exported already (the lower file had several): made hard links of it */
  hardlinks: number;
  bytes: number;
  problems: ExportProblem[];
}

/** DEST must not exist (it is made 0700) or be an empty directory. */
function prepareDest(dest: string, keep: readonly string[]): void {
  try {
    fs.mkdirSync(dest, { mode: 0o700 });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new AgentError('IO', `cannot create ${dest}: ${(e as Error).message}`, { errno: (e as NodeJS.ErrnoException).code });
  }
  const st = fs.lstatSync(dest);
  if (!st.isDirectory() || fs.readdirSync(dest).some((n) => !keep.includes(n))) {
    throw new AgentError('ALREADY_EXISTS', `${dest} exists and is not an empty directory; nothing written`, { hint: 'Give a new directory (export creates it) or an empty one' });
  }
}

function ioError(what: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new AgentError(code === 'ENOSPC' ? 'NO_SPACE' : 'IO', `${what}: ${(e as Error).message}`, code === undefined ? {} : { errno: code });
}

/** The header of a lower file: in its first page, else in its user.ecryptfs xattr; null for a plaintext (passthrough) file. */
function readHeader(path: Buffer, fd: number): EcryptfsHeader | null {
  const head = Buffer.alloc(HEADER_BYTES_NEEDED);
  const n = fs.readSync(fd, head, 0, head.length, 0);
  if (hasEcryptfsMarker(head.subarray(0, n))) return parseEcryptfsHeader(head.subarray(0, n));
  let xattr: Buffer | null = null;
  try {
    xattr = call('system', `reading the ${XATTR_NAME} attribute of ${path.toString()}`, (a) => a.pathGetxattr(path, XATTR_NAME, true));
  } catch (e) {
    if (!isAgentError(e) || (e.errno !== 'ENODATA' && e.errno !== 'ENOTSUP' && e.errno !== 'EOPNOTSUPP')) throw e;
  }
  if (xattr !== null && hasEcryptfsMarker(xattr)) return parseEcryptfsHeader(xattr, true);
  return null;
}

function fileKeyOf(header: EcryptfsHeader, keys: ExportKeys): FileKey {
  const packet = header.keyPackets.find((p): p is PassphraseKeyPacket => p.kind === 'passphrase' && p.sig === keys.fekSig);
  if (packet === undefined) {
    throw new AgentError('WRONG_MOUNT_PASSPHRASE', `its key is wrapped by ${header.keyPackets.map((p) => `${p.kind} key ${p.sig}`).join(', ')}, not by this passphrase's key ${keys.fekSig}`, {
      hint: 'This file was written under another key (a file moved in from another eCryptfs directory?): export it with that directory\'s mount passphrase',
    });
  }
  return unwrapFileKey(packet, keys.fekSek);
}

/** Streams the plaintext of one lower file (open as `fd`) into `sink`, in chunks of at most
 * 64 extents; returns the plaintext size. */
function streamPlain(lowerPath: Buffer, fd: number, keys: ExportKeys, sink: (chunk: Buffer) => void): { bytes: number; passthrough: boolean } {
  const header = readHeader(lowerPath, fd);
  if (header === null) {
    // a plaintext file (ecryptfs_passthrough): copied as it is
    const buf = Buffer.alloc(EXTENTS_PER_READ * DATA_EXTENT_BYTES);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return { bytes: pos, passthrough: true };
      sink(buf.subarray(0, n));
      pos += n;
    }
  }
  const fk = fileKeyOf(header, keys);
  try {
    const size = header.plaintextSize;
    const extents = extentCount(size);
    const lowerSize = fs.fstatSync(fd).size;
    const needed = header.metadataBytes + extents * DATA_EXTENT_BYTES;
    if (lowerSize < needed) {
      throw new AgentError('CORRUPT_FILE', `truncated: the header says ${size} bytes (${extents} extents, ${needed} lower bytes), the lower file has ${lowerSize}`, {
        hint: 'Restore this file from a backup of the encrypted directory',
      });
    }
    const buf = Buffer.alloc(EXTENTS_PER_READ * DATA_EXTENT_BYTES);
    let left = size;
    for (let first = 0; first < extents; first += EXTENTS_PER_READ) {
      const count = Math.min(EXTENTS_PER_READ, extents - first);
      const want = count * DATA_EXTENT_BYTES;
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, buf, got, want - got, header.metadataBytes + first * DATA_EXTENT_BYTES + got);
        if (n === 0) throw new AgentError('CORRUPT_FILE', 'truncated while reading (the file shrank?)');
        got += n;
      }
      const plain = decryptExtents(fk, first, buf.subarray(0, want));
      const take = left < BigInt(want) ? Number(left) : want;
      sink(take === want ? plain : plain.subarray(0, take));
      left -= BigInt(take);
    }
    return { bytes: Number(size), passthrough: false };
  } finally {
    fk.key.fill(0);
  }
}

function writeFully(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

/** A lower name (or symlink target) in plaintext. */
function plainName(lower: Buffer, keys: ExportKeys, symlinkTarget = false): Buffer {
  const enc = parseEncryptedName(lower.toString('latin1'));
  if (enc === null) return lower;
  if (enc.fnekSig !== keys.fnekSig) {
    throw new AgentError('WRONG_MOUNT_PASSPHRASE', `its name was encrypted with the file name key ${enc.fnekSig}, not this passphrase's ${keys.fnekSig}`);
  }
  return decryptName(enc, keys.fnekSek, { symlinkTarget });
}

const joinB = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name]);

function setMeta(path: Buffer, st: fs.Stats, asRoot: boolean): void {
  if (asRoot) fs.lchownSync(path, st.uid, st.gid);
  fs.chmodSync(path, st.mode & 0o7777);
  fs.utimesSync(path, st.atime, st.mtime);
}

/** Whose rights an export runs with: the caller's own, or (root) those of LOWER's owner. */
export type ExportRights = { kind: 'own' } | { kind: 'owner'; user: UserInfo };

/** Why someone other than root can change this: its owner, or its mode. */
function othersCanChange(st: fs.Stats): string | null {
  if (st.uid !== 0) return `it belongs to uid ${st.uid}`;
  // world-writable is fine only when sticky (/tmp): no one else can rename root's entries there
  if ((st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0)) return 'it is writable by others';
  return null;
}

/** Why root must not walk this path: someone else can change it or a directory above it. */
function notRootsAlone(path: string): string | null {
  for (let p = path; ; p = dirname(p)) {
    const st = lstatOrNull(p);
    const why = st === null ? null : othersCanChange(st);
    if (why !== null) return `${p}: ${why}`;
    if (p === '/') return null;
  }
}

/**
 * Root never walks a tree another user can change under it: a directory swapped for a symlink
 * in the middle of the walk would make root read any file of the system and copy it out (owned
 * by that user), or write into any directory. So as root, a tree a user owns is exported with
 * that user's rights (DEST must then be somewhere they may write); a tree root owns is walked as
 * root only when no one else owns or can write it, DEST, or any directory above either.
 */
export function exportRights(lower: string, dest: string): ExportRights {
  if (process.geteuid?.() !== 0) return { kind: 'own' };
  const real = fs.realpathSync(lower);
  const owner = fs.lstatSync(real).uid;
  if (owner !== 0) return { kind: 'owner', user: lookupUid(owner) };
  const destReal = join(fs.realpathSync(dirname(resolve(dest))), basename(resolve(dest)));
  for (const p of [real, destReal]) {
    const why = notRootsAlone(p);
    if (why !== null) {
      throw new AgentError('UNSAFE_PATH', `refusing to export as root: ${why}, so another user could change the tree under root`, {
        hint: `Run export as the user who owns those files, or copy ${lower} (cp -a) into a directory only root can change and export to one`,
      });
    }
  }
  return { kind: 'own' };
}

/**
 * Exports the tree `lower` into `dest` (created, or an empty directory) with `keys` (checked by
 * the caller). Owners are kept when running as root. Never throws for one entry: its error is
 * in the summary's problems (and passed to onProblem as it happens).
 */
export function exportTree(lower: string, dest: string, keys: ExportKeys, onProblem?: (p: ExportProblem) => void, opts: TreeOptions = {}): ExportSummary {
  prepareDest(dest, opts.keep ?? []);
  const summary: ExportSummary = { files: 0, passthrough: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0, problems: [] };
  // lower inode (one filesystem: the walk never leaves it) → where its plaintext was written
  const written = new Map<number, Buffer>();
  const asRoot = process.geteuid?.() === 0;
  const rootDev = fs.statSync(lower).dev;
  const problem = (lowerPath: string, e: unknown): void => {
    const error = e instanceof AgentError ? e : ioError(lowerPath, e);
    const p = { lower: lowerPath, error };
    summary.problems.push(p);
    onProblem?.(p);
  };

  // Buffer paths all along: lower names of a directory without filename encryption, and
  // decrypted names, are bytes that need not be UTF-8.
  const walk = (lowerDir: Buffer, destDir: Buffer): void => {
    let names: Buffer[];
    try {
      names = fs.readdirSync(lowerDir, { encoding: 'buffer' });
    } catch (e) {
      problem(lowerDir.toString(), ioError(`cannot list ${lowerDir.toString()}`, e));
      return;
    }
    for (const raw of names) {
      const lowerB = joinB(lowerDir, raw);
      try {
        exportEntry(lowerB, raw, destDir);
      } catch (e) {
        problem(lowerB.toString(), e);
      }
    }
  };

  const exportEntry = (lowerB: Buffer, raw: Buffer, destDir: Buffer): void => {
    const st = fs.lstatSync(lowerB);
    const name = plainName(raw, keys);
    const target = joinB(destDir, name);
    if (st.isDirectory()) {
      if (st.dev !== rootDev) throw new AgentError('IO', 'another filesystem is mounted here: not entered');
      // as root (a tree only root can change, exportRights): a directory someone else can change
      // inside it is not walked by root either
      const why = asRoot ? othersCanChange(st) : null;
      if (why !== null) throw new AgentError('UNSAFE_PATH', `${why}: not entered as root`, { hint: 'Export that directory as its owner' });
      fs.mkdirSync(target, { mode: 0o700 });
      summary.dirs++;
      walk(lowerB, target);
      setMeta(target, st, asRoot);
    } else if (st.isSymbolicLink()) {
      const to = plainName(fs.readlinkSync(lowerB, { encoding: 'buffer' }), keys, true);
      fs.symlinkSync(to, target);
      if (asRoot) fs.lchownSync(target, st.uid, st.gid);
      fs.lutimesSync(target, st.atime, st.mtime);
      summary.symlinks++;
    } else if (st.isFile() && st.nlink > 1 && written.has(st.ino)) {
      // eCryptfs keeps a hard link as a hard link of the lower file: the copy keeps it too
      fs.linkSync(written.get(st.ino) as Buffer, target);
      summary.hardlinks++;
    } else if (st.isFile()) {
      const fd = fs.openSync(lowerB, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const out = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        let done = false;
        try {
          const r = streamPlain(lowerB, fd, keys, (chunk) => writeFully(out, chunk));
          summary.bytes += r.bytes;
          if (r.passthrough) summary.passthrough++;
          summary.files++;
          done = true;
        } finally {
          fs.closeSync(out);
          if (!done) fs.rmSync(target, { force: true });
        }
        setMeta(target, st, asRoot);
        if (st.nlink > 1) written.set(st.ino, target);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      throw new AgentError('NOT_REGULAR_FILE', 'a device, fifo or socket: not exported (recreate it by hand if it matters)');
    }
  };

  walk(Buffer.from(lower), Buffer.from(dest));
  return summary;
}

/** What verifyTree found: counts of what matched, and every difference, named. */
export interface VerifySummary {
  files: number;
  /** names that are a hard link of a file verified already, in both trees */
  hardlinks: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  differences: string[];
}

const kindOf = (x: fs.Stats): string => (x.isDirectory() ? 'directory' : x.isSymbolicLink() ? 'symlink' : x.isFile() ? 'file' : 'special file');

/**
 * Compares a copy made by exportTree with the lower tree, read again from the start: the same
 * names (none missing, none extra), the same kinds, symlink targets, modes, and for every file
 * the SHA-256 of its plaintext decrypted anew against the SHA-256 of the copy's bytes. Read-only
 * on both sides; never throws for one entry (it is a difference).
 */
export function verifyTree(lower: string, copy: string, keys: ExportKeys, opts: TreeOptions = {}): VerifySummary {
  const summary: VerifySummary = { files: 0, hardlinks: 0, dirs: 0, symlinks: 0, bytes: 0, differences: [] };
  // hard links: each lower inode with several names is one inode of the copy, and back
  const copyOfLower = new Map<number, number>();
  const lowerOfCopy = new Map<number, number>();
  const differ = (what: Buffer, why: string): void => {
    summary.differences.push(`${what.toString()}: ${why}`);
  };
  const walk = (lowerDir: Buffer, copyDir: Buffer): void => {
    let names: Buffer[];
    let copied: Buffer[];
    try {
      names = fs.readdirSync(lowerDir, { encoding: 'buffer' });
      copied = fs.readdirSync(copyDir, { encoding: 'buffer' });
    } catch (e) {
      differ(copyDir, `cannot be listed: ${(e as Error).message}`);
      return;
    }
    const expected = new Set<string>();
    for (const raw of names) {
      const lowerB = joinB(lowerDir, raw);
      let copyB = lowerB;
      try {
        const name = plainName(raw, keys);
        expected.add(name.toString('latin1'));
        copyB = joinB(copyDir, name);
        verifyEntry(lowerB, copyB);
      } catch (e) {
        differ(copyB, (e as Error).message);
      }
    }
    const kept = copyDir === top ? (opts.keep ?? []) : [];
    for (const name of copied) if (!expected.has(name.toString('latin1')) && !kept.includes(name.toString())) differ(joinB(copyDir, name), 'not in the encrypted directory');
  };
  const verifyEntry = (lowerB: Buffer, copyB: Buffer): void => {
    const st = fs.lstatSync(lowerB);
    const cp = lstatOrNull(copyB);
    if (cp === null) throw new Error('missing from the copy');
    if (kindOf(st) !== kindOf(cp)) throw new Error(`a ${kindOf(cp)} in the copy, a ${kindOf(st)} in the encrypted directory`);
    if (!st.isSymbolicLink() && (st.mode & 0o7777) !== (cp.mode & 0o7777)) throw new Error(`mode ${(cp.mode & 0o7777).toString(8)}, want ${(st.mode & 0o7777).toString(8)}`);
    if (st.isDirectory()) {
      summary.dirs++;
      walk(lowerB, copyB);
    } else if (st.isSymbolicLink()) {
      const want = plainName(fs.readlinkSync(lowerB, { encoding: 'buffer' }), keys, true);
      if (!fs.readlinkSync(copyB, { encoding: 'buffer' }).equals(want)) throw new Error('its target differs');
      summary.symlinks++;
    } else if (st.isFile() && (st.nlink > 1 || cp.nlink > 1) && (copyOfLower.has(st.ino) || lowerOfCopy.has(cp.ino))) {
      if (copyOfLower.get(st.ino) !== cp.ino || lowerOfCopy.get(cp.ino) !== st.ino) throw new Error('hard links differ: not linked as its names are in the encrypted directory');
      summary.hardlinks++; // its content was verified under its first name
    } else if (st.isFile()) {
      if (st.nlink > 1 || cp.nlink > 1) {
        copyOfLower.set(st.ino, cp.ino);
        lowerOfCopy.set(cp.ino, st.ino);
      }
      const h = createHash('sha256');
      const fd = fs.openSync(lowerB, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      let bytes: number;
      try {
        bytes = streamPlain(lowerB, fd, keys, (chunk) => h.update(chunk)).bytes;
      } finally {
        fs.closeSync(fd);
      }
      if (cp.size !== bytes) throw new Error(`${cp.size} bytes, the plaintext has ${bytes}`);
      const copyFd = fs.openSync(copyB, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      let copied: string;
      try {
        copied = hashStream(copyFd).sha256;
      } finally {
        fs.closeSync(copyFd);
      }
      if (copied !== h.digest('hex')) throw new Error('its bytes differ from the plaintext (SHA-256)');
      summary.files++;
      summary.bytes += bytes;
    }
  };
  const top = Buffer.from(copy);
  walk(Buffer.from(lower), top);
  return summary;
}
