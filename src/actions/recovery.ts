/**
 * Recovery use-cases.
 *
 *  - revealMountPassphrase (`ecryptfs-agent recovery`): while the login password still works,
 *    unwrap the mount passphrase and check it against Private.sig, so the user can record it
 *    offline (what ecryptfs-unwrap-passphrase prints, checked).
 *  - locateRecoverySource + recoverPrivate (`ecryptfs-agent recover DIR`, root): mount a
 *    `.Private` copied from another disk, given its mount passphrase or its wrapped-passphrase
 *    file and that file's password — the case of ecryptfs-recover-private. Before anything is
 *    changed, the key is checked against what the directory itself says: the sigs in the
 *    plaintext headers of its files and in its encrypted names (src/formats/lower-format.ts), and
 *    Private.sig when it was copied along. A wrong passphrase therefore never mounts garbage
 *    nor leaves keys behind. The mount is read-only by default (plus nosuid, nodev, noexec) on a
 *    fresh directory inside a root-only 0700 directory: the mounted root keeps the owner and mode
 *    of the copied .Private, whose uid may be someone else on this system.
 *  - unmountRecovered (`recover --unmount`): unmount, forget the keys, remove that directory.
 *
 * The keys go to root's user keyring (@u), linked into this process's keyring so that the
 * kernel's request_key during mount(2) finds them (keyring.possessUserKeyring).
 */
import * as fs from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type AuthTok, deriveMountKeys } from '../formats/auth-tok';
import { parseEcryptfsrcSalt, parsePrivateSig, type PrivateSig } from '../formats/config';
import { AgentError, isAgentError } from '../errors';
import { DEFAULT_SALT, validatePassphraseBytes } from '../formats/kdf';
import { insertAuthTok, KEY_SPEC, possessUserKeyring, removeAuthTok } from '../os/keyring';
import { FNEK_NAME_PREFIX, fnekSigOfLowerName, HEADER_BYTES_NEEDED, parseLowerFileHeader } from '../formats/lower-format';
import { ecryptfsMounts, findMountsAt, mountEcryptfs, readMountInfo } from '../os/mount';
import { type EcryptfsOptions, MS, type MountInfoEntry, sigsOfMount } from '../formats/mountinfo';
import { unmountExactly } from './manual-mount';
import { openDirNoUserSymlinks } from '../os/safe-path';
import type { PrivateSetup } from './private-setup';
import type { UserRef } from '../os/credentials';
import { lstatOrNull, readSmallFile } from '../os/secure-file';
import { unwrapMountPassphrase } from './keys';
import { unwrapPassphrase } from '../formats/wrapped-passphrase';

const MAX_SMALL_FILE_BYTES = 4096;
const ROOT: UserRef = { name: 'root', uid: 0, gid: 0, home: '/root' };

// ------------------------------------------------------------------ checking a key

interface ExpectedSigs {
  fekSig: string;
  fnekSig?: string;
}

/** Sigs of the keys a mount passphrase gives (the payloads are zeroed at once). */
function sigsOfPassphrase(passphrase: Buffer, salt: Buffer, withFnek: boolean): ExpectedSigs {
  const keys = deriveMountKeys(passphrase, salt, withFnek);
  keys.fek.payload.fill(0);
  keys.fnek?.payload.fill(0);
  return keys.fnek ? { fekSig: keys.fek.sig, fnekSig: keys.fnek.sig } : { fekSig: keys.fek.sig };
}

/**
 * `ecryptfs-agent recovery`: the mount passphrase, unwrapped with the login (or wrapping)
 * passphrase and checked against Private.sig (the wrapped file has no MAC: a damaged file
 * unwraps to garbage that only the sig check catches). The caller zeroes the result.
 */
export function revealMountPassphrase(owner: UserRef, setup: PrivateSetup, wrappingPassphrase: Buffer): Buffer {
  const passphrase = unwrapMountPassphrase(owner, setup, wrappingPassphrase);
  try {
    const got = sigsOfPassphrase(passphrase, setup.salt, setup.fnekSig !== undefined);
    if (got.fekSig !== setup.fekSig.toLowerCase() || got.fnekSig !== setup.fnekSig?.toLowerCase()) {
      throw new AgentError('SIG_MISMATCH', `the passphrase unwrapped from ${setup.wrappedPassphrasePath} does not match ${setup.configDir}/Private.sig (key sig ${got.fekSig}, expected ${setup.fekSig}); not showing it`);
    }
    return passphrase;
  } catch (e) {
    passphrase.fill(0);
    throw e;
  }
}

// ------------------------------------------------------------------ what a lower directory says

export interface LowerEvidence {
  /** the first file found with an eCryptfs header: the sigs of the keys that open it */
  header?: { path: string; keySigs: string[]; aesKeyBytes?: number };
  /** the first encrypted file name found: the sig of its filename key */
  encryptedName?: { path: string; fnekSig: string };
  /** entries looked at */
  scanned: number;
  /** `.Private` directories found below (not entered): DIR was a level too high */
  nestedPrivate: string[];
}

function readHead(path: string): Buffer | null {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO in a copied tree must not hang us; O_NOFOLLOW: no detour out of it.
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buf = Buffer.alloc(HEADER_BYTES_NEEDED);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Walks the lower directory breadth-first (never following symlinks, never leaving its
 * filesystem) until it has seen one eCryptfs file header and one encrypted name, or
 * `maxEntries` entries. Reads only the first page of files. Does not enter directories named
 * .Private or .ecryptfs (inside an encrypted directory every name is encrypted or its own).
 */
export function scanLowerDir(lower: string, maxEntries = 5000): LowerEvidence {
  const out: LowerEvidence = { scanned: 0, nestedPrivate: [] };
  const dev = fs.statSync(lower).dev;
  const queue: string[] = [lower];
  while (queue.length > 0 && out.scanned < maxEntries) {
    const dir = queue.shift() as string;
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (out.scanned >= maxEntries || (out.header && out.encryptedName)) return out;
      out.scanned++;
      const path = join(dir, name);
      if (!out.encryptedName) {
        const fnekSig = fnekSigOfLowerName(name);
        if (fnekSig !== null) out.encryptedName = { path, fnekSig };
      }
      let st: fs.Stats;
      try {
        st = fs.lstatSync(path);
      } catch {
        continue;
      }
      if (st.dev !== dev) continue;
      if (st.isDirectory()) {
        if (name === '.Private') out.nestedPrivate.push(path);
        else if (name !== '.ecryptfs') queue.push(path);
      }
      else if (st.isFile() && !out.header) {
        const head = readHead(path);
        const parsed = head && parseLowerFileHeader(head);
        if (parsed && parsed.keySigs.length > 0) {
          out.header = { path, keySigs: parsed.keySigs };
          if (parsed.aesKeyBytes !== undefined) out.header.aesKeyBytes = parsed.aesKeyBytes;
        }
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ locating what was copied

export interface RecoverySource {
  /** the encrypted directory, canonical */
  lower: string;
  /** the .ecryptfs directory next to it, when it is a real directory */
  configDir?: string;
  /** the wrapped-passphrase file to use: --wrapped, or the one in configDir */
  wrappedPath?: string;
  /** Private.sig of configDir, when readable and well-formed */
  privateSig?: PrivateSig;
  /** salt= of the .ecryptfsrc next to it, else the default */
  salt: Buffer;
  evidence: LowerEvidence;
  /** an eCryptfs mount of this very directory, if there is one */
  mountedAt?: string;
  /** things the user should know (ignored files and why) */
  notes: string[];
}

/**
 * DIR is the copied `.Private`, or a directory holding `.Private` (a home, or the
 * /home/.ecryptfs/USER directory of an encrypted home). Its `.ecryptfs` sibling is used only when
 * it is a real directory: a copied home's symlinks point into THIS system. Nothing is changed.
 */
export function locateRecoverySource(dir: string, opts: { wrapped?: string } = {}): RecoverySource {
  let real: string;
  try {
    real = fs.realpathSync(resolve(dir));
  } catch (e) {
    throw new AgentError('NOT_FOUND', `${dir} does not exist`, { errno: (e as NodeJS.ErrnoException).code ?? 'ENOENT', hint: 'Mount the other disk and give the path of its .Private (e.g. /mnt/otherdisk/home/USER/.Private)' });
  }
  if (!fs.statSync(real).isDirectory()) throw new AgentError('NOT_ECRYPTFS_DIR', `${real} is not a directory`);
  const notes: string[] = [];
  let lower = real;
  let home = dirname(real);
  const inner = join(real, '.Private');
  const innerSt = lstatOrNull(inner);
  if (innerSt?.isSymbolicLink()) {
    throw new AgentError('NOT_ECRYPTFS_DIR', `${inner} is a symbolic link (to ${fs.readlinkSync(inner)}), which meant a path on the disk it came from`, {
      hint: 'Give the directory it pointed to, on the copy (an encrypted home keeps it in /home/.ecryptfs/USER/.Private)',
    });
  }
  if (innerSt?.isDirectory()) {
    lower = inner;
    home = real;
  }
  const source: RecoverySource = { lower, salt: DEFAULT_SALT, evidence: { scanned: 0, nestedPrivate: [] }, notes };

  const cfg = join(home, '.ecryptfs');
  const cfgSt = lstatOrNull(cfg);
  if (cfgSt?.isSymbolicLink()) notes.push(`ignored ${cfg}: a symbolic link (into the system it came from, not this copy)`);
  else if (cfgSt?.isDirectory()) source.configDir = cfg;
  if (source.configDir !== undefined) {
    const sigPath = join(source.configDir, 'Private.sig');
    try {
      source.privateSig = parsePrivateSig(readSmallFile(sigPath, { maxBytes: MAX_SMALL_FILE_BYTES }), sigPath);
    } catch (e) {
      if (!isAgentError(e, 'NOT_FOUND')) notes.push(`ignored ${sigPath}: ${(e as Error).message}`);
    }
  }
  const rc = join(home, '.ecryptfsrc');
  if (lstatOrNull(rc)?.isFile()) {
    try {
      source.salt = parseEcryptfsrcSalt(readSmallFile(rc, { maxBytes: MAX_SMALL_FILE_BYTES }), rc) ?? DEFAULT_SALT;
      if (!source.salt.equals(DEFAULT_SALT)) notes.push(`using the salt from ${rc}`);
    } catch (e) {
      notes.push(`ignored ${rc}: ${(e as Error).message}`);
    }
  }
  if (opts.wrapped !== undefined) {
    source.wrappedPath = resolve(opts.wrapped);
    if (!lstatOrNull(source.wrappedPath)?.isFile()) throw new AgentError('NOT_FOUND', `${source.wrappedPath} is not a wrapped-passphrase file (no such regular file)`, { hint: 'Give the path of the copied .ecryptfs/wrapped-passphrase' });
  } else if (source.configDir !== undefined) {
    const wp = join(source.configDir, 'wrapped-passphrase');
    if (lstatOrNull(wp)?.isFile()) source.wrappedPath = wp;
  }

  source.evidence = scanLowerDir(lower);
  const ev = source.evidence;
  if (!ev.header && !ev.encryptedName) {
    if (ev.nestedPrivate.length > 0) {
      const some = ev.nestedPrivate.slice(0, 5).join(', ');
      throw new AgentError('NOT_ECRYPTFS_DIR', `${lower} is not an encrypted directory, but holds ${ev.nestedPrivate.length === 1 ? 'one' : 'some'} further down: ${some}${ev.nestedPrivate.length > 5 ? ', …' : ''}`, {
        hint: 'Recover them one at a time: ecryptfs-agent recover DIR/.Private (or the directory holding it)',
      });
    }
    const what = ev.scanned === 0 ? 'it is empty' : `${ev.scanned} entries, none with an eCryptfs header or an encrypted name (${FNEK_NAME_PREFIX}…)`;
    throw new AgentError('NOT_ECRYPTFS_DIR', `${lower} holds no eCryptfs files: ${what}; nothing to recover there`);
  }
  const mounted = ecryptfsMounts().find((m) => m.source === lower);
  if (mounted) source.mountedAt = mounted.mountPoint;
  return source;
}

// ------------------------------------------------------------------ recovering

export type RecoveryKeyInput =
  /** the mount passphrase itself */
  | { kind: 'mount-passphrase'; secret: Buffer }
  /** the password of source.wrappedPath */
  | { kind: 'wrapped'; secret: Buffer };

export interface RecoverOptions {
  /** force filename encryption on/off; default: Private.sig, else the names in the directory */
  fnek?: boolean;
  /** default true */
  readOnly?: boolean;
  /** an existing empty directory owned by root; default: a new one under /tmp */
  mountPoint?: string;
}

export interface RecoveryResult {
  lower: string;
  mountPoint: string;
  readOnly: boolean;
  fekSig: string;
  fnekSig?: string;
  /** where the FNEK decision came from */
  fnekFrom: 'option' | 'Private.sig' | 'file names';
  /** what the key was checked against, for the user */
  checkedAgainst: string[];
  /** sigs this call added to root's keyring */
  addedKeys: string[];
}

export const RECOVER_DIR_PREFIX = 'ecryptfs-recover-';
const RECOVER_PARENT = '/tmp';
const RECOVER_MOUNT_NAME = 'Private';

/** The mount passphrase from the user's input (unwrapped, or copied). The caller zeroes it. */
export function mountPassphraseFrom(source: RecoverySource, input: RecoveryKeyInput): Buffer {
  if (input.kind === 'mount-passphrase') {
    validatePassphraseBytes(input.secret, 'mount passphrase');
    return Buffer.from(input.secret);
  }
  if (source.wrappedPath === undefined) throw new AgentError('NOT_FOUND', `no wrapped-passphrase file next to ${source.lower}`, { hint: 'Name one with --wrapped FILE, or type the mount passphrase (--mount-passphrase)' });
  const file = readSmallFile(source.wrappedPath, { maxBytes: MAX_SMALL_FILE_BYTES, tooLargeCode: 'CORRUPT_FILE' });
  try {
    return unwrapPassphrase(file, input.secret, source.salt);
  } catch (e) {
    if (isAgentError(e, 'WRONG_PASSWORD')) {
      throw new AgentError('WRONG_PASSWORD', `wrong password for ${source.wrappedPath}; nothing changed`, {
        errno: 'EIO',
        hint: 'Type the login password the user had on that system (or the wrapping passphrase of a setup made with -w); without it, use the recorded mount passphrase: --mount-passphrase',
      });
    }
    throw e;
  }
}

function fnekDecision(source: RecoverySource, opts: RecoverOptions): { fnek: boolean; from: RecoveryResult['fnekFrom'] } {
  if (opts.fnek !== undefined) return { fnek: opts.fnek, from: 'option' };
  if (source.privateSig) return { fnek: source.privateSig.fnekSig !== undefined, from: 'Private.sig' };
  return { fnek: source.evidence.encryptedName !== undefined, from: 'file names' };
}

/**
 * Compares the key with everything the copy says about it; throws before anything is changed.
 * Pure apart from the error: exported for the unit tests.
 */
export function checkRecoveryKey(source: Pick<RecoverySource, 'lower' | 'privateSig' | 'evidence' | 'wrappedPath'>, got: ExpectedSigs, how: RecoveryKeyInput['kind']): string[] {
  const checked: string[] = [];
  const wrong = (what: string, expected: string, actual: string): AgentError =>
    how === 'mount-passphrase'
      ? new AgentError('WRONG_MOUNT_PASSPHRASE', `wrong mount passphrase for ${source.lower}: ${what} key sig ${expected}, this passphrase gives ${actual}; nothing changed`)
      : new AgentError('SIG_MISMATCH', `the passphrase in ${source.wrappedPath ?? 'the wrapped file'} is not the key of ${source.lower}: ${what} key sig ${expected}, it gives ${actual}; nothing changed`, {
          hint: 'That wrapped-passphrase file belongs to another setup: use the one copied with this .Private, or its mount passphrase (--mount-passphrase)',
        });
  const sig = source.privateSig;
  if (sig) {
    if (sig.fekSig.toLowerCase() !== got.fekSig) throw wrong('Private.sig names', sig.fekSig, got.fekSig);
    if (sig.fnekSig !== undefined && got.fnekSig !== undefined && sig.fnekSig.toLowerCase() !== got.fnekSig) throw wrong('Private.sig names the filename', sig.fnekSig, got.fnekSig);
    checked.push('Private.sig');
  }
  const { header, encryptedName } = source.evidence;
  if (header) {
    if (!header.keySigs.includes(got.fekSig)) throw wrong(`the header of ${header.path} names`, header.keySigs.join('/'), got.fekSig);
    checked.push(`the header of ${header.path}`);
  }
  if (encryptedName && got.fnekSig !== undefined) {
    if (encryptedName.fnekSig !== got.fnekSig) throw wrong(`the encrypted name ${basename(encryptedName.path).slice(0, 40)}… names the filename`, encryptedName.fnekSig, got.fnekSig);
    checked.push(`the encrypted name of ${encryptedName.path}`);
  }
  return checked;
}

function makeRecoverDir(): { parent: string; mountPoint: string } {
  const parent = fs.mkdtempSync(join(RECOVER_PARENT, RECOVER_DIR_PREFIX)); // mode 0700, ours alone
  fs.chmodSync(parent, 0o700);
  const mountPoint = join(parent, RECOVER_MOUNT_NAME);
  fs.mkdirSync(mountPoint, { mode: 0o700 });
  return { parent, mountPoint };
}

/** A directory recover made: /tmp/ecryptfs-recover-XXXXXX/Private. */
function recoverDirOf(mountPoint: string): string | null {
  const parent = dirname(mountPoint);
  return basename(mountPoint) === RECOVER_MOUNT_NAME && dirname(parent) === RECOVER_PARENT && /^ecryptfs-recover-[A-Za-z0-9]{6}$/.test(basename(parent)) ? parent : null;
}

function removeRecoverDir(parent: string): void {
  fs.rmdirSync(join(parent, RECOVER_MOUNT_NAME));
  fs.rmdirSync(parent);
}

function checkGivenMountPoint(path: string): string {
  const abs = resolve(path);
  let fd: number;
  try {
    fd = openDirNoUserSymlinks(abs, ROOT); // root-owned, approved fs type, no symlink games
  } catch (e) {
    if (isAgentError(e, 'BAD_OWNER')) throw new AgentError('BAD_OWNER', e.message, { hint: 'Give a directory owned by root (mkdir -m 700 DIR, as root), or leave out --mount-point' });
    throw e;
  }
  try {
    if (fs.readdirSync(`/proc/self/fd/${fd}`).length > 0) {
      throw new AgentError('ALREADY_EXISTS', `${abs} is not empty: its files would be hidden under the recovered directory`, { hint: 'Give an empty directory, or leave out --mount-point' });
    }
  } finally {
    fs.closeSync(fd);
  }
  return abs;
}

/**
 * Checks the key, then mounts. On any failure after the first change (directory made, keys
 * added) everything is taken back, so a failed recovery leaves nothing behind.
 */
export function recoverPrivate(source: RecoverySource, input: RecoveryKeyInput, opts: RecoverOptions = {}): RecoveryResult {
  const readOnly = opts.readOnly ?? true;
  const mountPassphrase = mountPassphraseFrom(source, input);
  let keys: { fek: AuthTok; fnek?: AuthTok } | undefined;
  try {
    const { fnek, from } = fnekDecision(source, opts);
    keys = deriveMountKeys(mountPassphrase, source.salt, fnek);
    const got: ExpectedSigs = keys.fnek ? { fekSig: keys.fek.sig, fnekSig: keys.fnek.sig } : { fekSig: keys.fek.sig };
    const checkedAgainst = checkRecoveryKey(source, got, input.kind);
    const mountPoint = opts.mountPoint === undefined ? undefined : checkGivenMountPoint(opts.mountPoint);

    const made = mountPoint === undefined ? makeRecoverDir() : undefined;
    const target = mountPoint ?? (made as { mountPoint: string }).mountPoint;
    const added: string[] = [];
    try {
      possessUserKeyring();
      for (const k of keys.fnek ? [keys.fnek, keys.fek] : [keys.fek]) {
        if (insertAuthTok(k.sig, k.payload, KEY_SPEC.USER).added) added.push(k.sig);
      }
      const mountOpts: EcryptfsOptions = {
        sigs: [keys.fek.sig],
        cipher: 'aes',
        keyBytes: source.evidence.header?.aesKeyBytes ?? 16,
        // root mounts a copy owned by anyone: no ruid check; the keys are forgotten by --unmount
        checkDevRuid: false,
        unlinkSigs: false,
      };
      if (keys.fnek) mountOpts.fnekSig = keys.fnek.sig;
      const fd = openDirNoUserSymlinks(target, ROOT);
      try {
        mountEcryptfs(source.lower, `/proc/self/fd/${fd}`, mountOpts, MS.NOEXEC | (readOnly ? MS.RDONLY : 0));
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      for (const sig of added) {
        try {
          removeAuthTok(sig, KEY_SPEC.USER);
        } catch {
          /* reported through e */
        }
      }
      if (made) {
        try {
          removeRecoverDir(made.parent);
        } catch {
          /* reported through e */
        }
      }
      if (isAgentError(e, 'NO_ECRYPTFS') || isAgentError(e, 'MOUNT')) {
        const why = e.code === 'NO_ECRYPTFS' ? 'this kernel has no eCryptfs' : e.message;
        throw new AgentError(e.code, `cannot mount ${source.lower}: ${why}${e.errno ? ` (${e.errno})` : ''}; nothing changed`, { ...(e.errno ? { errno: e.errno } : {}), cause: e });
      }
      throw e;
    }
    const result: RecoveryResult = { lower: source.lower, mountPoint: target, readOnly, fekSig: keys.fek.sig, fnekFrom: from, checkedAgainst, addedKeys: added };
    if (keys.fnek) result.fnekSig = keys.fnek.sig;
    return result;
  } finally {
    mountPassphrase.fill(0);
    keys?.fek.payload.fill(0);
    keys?.fnek?.payload.fill(0);
  }
}

// ------------------------------------------------------------------ cleaning up

export interface UnrecoverResult {
  mountPoint: string;
  /** sigs unlinked from root's keyring */
  removedKeys: string[];
  /** sigs kept because another eCryptfs mount still uses them */
  keptKeys: string[];
  /** the directory recover had made, when it was removed */
  removedDir?: string;
}

/** The eCryptfs mount at path, refusing a user's private directory (those are mounted with ecryptfs_unlink_sigs). */
export function findRecoveredMount(path: string, mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry {
  const abs = resolve(path);
  const entry = findMountsAt(abs, mounts)
    .filter((m) => m.fsType === 'ecryptfs')
    .pop();
  if (!entry) throw new AgentError('NOT_FOUND', `${abs} is not an eCryptfs mount`, { hint: 'Give the directory "recover" printed (the eCryptfs mounts: grep ecryptfs /proc/self/mountinfo)' });
  if (entry.superOptions.split(',').includes('ecryptfs_unlink_sigs')) {
    throw new AgentError('USAGE', `${entry.mountPoint} is a user's private directory (mounted with ecryptfs_unlink_sigs), not a recovered one; nothing changed`, {
      hint: 'Lock it with: ecryptfs-agent lock -u USER',
    });
  }
  return entry;
}

export function unmountRecovered(path: string): UnrecoverResult {
  const entry = findRecoveredMount(path);
  const sigs = sigsOfMount(entry);
  unmountExactly(entry, { lazyWhenBusy: false });
  const stillUsed = new Set(ecryptfsMounts().flatMap(sigsOfMount));
  possessUserKeyring();
  const out: UnrecoverResult = { mountPoint: entry.mountPoint, removedKeys: [], keptKeys: [] };
  for (const sig of sigs) {
    if (stillUsed.has(sig)) out.keptKeys.push(sig);
    else if (removeAuthTok(sig, KEY_SPEC.USER)) out.removedKeys.push(sig);
  }
  const dir = recoverDirOf(entry.mountPoint);
  if (dir !== null) {
    try {
      removeRecoverDir(dir);
      out.removedDir = dir;
    } catch {
      /* not empty or already gone: left as it is, and not claimed as removed */
    }
  }
  return out;
}
