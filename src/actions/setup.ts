/**
 * Setting up a private directory: the files ecryptfs-setup-private (111) writes, byte for
 * byte, so that its peer tools (mount.ecryptfs_private, pam_ecryptfs) and our agent both use
 * the result (docs: /work/shared/notes/ecryptfs-utils-111.md §5):
 *
 *   ~/.ecryptfs                 700
 *   ~/.ecryptfs/wrapped-passphrase   v2, 0600, written atomically
 *   ~/.ecryptfs/Private.sig     "<fek sig>\n[<fnek sig>\n]"
 *   ~/.ecryptfs/Private.mnt     "$HOME/Private\n"
 *   ~/.ecryptfs/auto-mount, auto-umount   (empty; unless --noautomount / --noautoumount)
 *   ~/.ecryptfs/wrapping-independent      (only with a separate wrapping passphrase; removed otherwise)
 *   ~/.Private                  700 (ciphertext)
 *   ~/Private                   700, then 500 (the mount point; read-only while locked)
 *
 * Unlike ecryptfs-setup-private no key is put in the keyring and nothing is mounted: the sigs
 * are computed (deriveMountKeys), and the user unlocks with `ecryptfs-agent unlock` or by
 * logging in. Everything runs with the user's credentials (credentials.asUser), so root setting up
 * for a user (`-u USER`) creates files the user owns and can never be tricked by a symlink the
 * user planted into writing elsewhere. All checks come first; a failure half-way takes back
 * what this call created (Private.sig, the file that makes a setup visible, is written last).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { deriveMountKeys } from '../formats/auth-tok';
import { renderPrivateSig } from '../formats/config';
import { AgentError } from '../errors';
import { readMountInfo } from '../os/mount';
import { readEcryptfsrcSalt } from './private-setup';
import type { UserRef } from '../os/credentials';
import { lstatOrNull, writeFileAtomic } from '../os/secure-file';
import { asUser } from '../os/credentials';
import { wrapPassphrase } from '../formats/wrapped-passphrase';

export const FNEK_VERSION_BIT = 0x100; // ECRYPTFS_VERSIONING_FILENAME_ENCRYPTION
export const SYSFS_ECRYPTFS_VERSION = '/sys/fs/ecryptfs/version';
/** auto-mount, auto-umount, wrapping-independent: empty, world-readable like `touch` makes them (the directory is 700). */
export const FLAG_FILE_MODE = 0o644;

/** 32 lowercase hex characters from the kernel RNG (what ecryptfs-setup-private generates). Caller zeroes it. */
export function newMountPassphrase(): Buffer {
  const raw = randomBytes(16);
  const hex = Buffer.from(raw.toString('hex'), 'latin1');
  raw.fill(0);
  return hex;
}

/** The eCryptfs kernel version word, or null when the module is not loaded (no sysfs file). */
export function readEcryptfsVersion(file = SYSFS_ECRYPTFS_VERSION): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'latin1').trim(), 10);
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/** FNEK on by default iff the kernel supports it; without the module: a clear error, as ecryptfs-setup-private. */
export function decideFnek(noFnek: boolean, version: number | null = readEcryptfsVersion()): boolean {
  if (version === null) {
    throw new AgentError('NO_ECRYPTFS', `cannot get the eCryptfs version from ${SYSFS_ECRYPTFS_VERSION}: is the ecryptfs kernel module loaded?`);
  }
  return !noFnek && (version & FNEK_VERSION_BIT) !== 0;
}

/** Where a setup lives: config files, ciphertext, mount point. */
export interface SetupLayout {
  configDir: string;
  lower: string;
  upper: string;
}

/** ecryptfs-setup-private's default: ~/.ecryptfs, ~/.Private mounted on ~/Private. */
export function privateLayout(owner: UserRef): SetupLayout {
  return { configDir: join(owner.home, '.ecryptfs'), lower: join(owner.home, '.Private'), upper: join(owner.home, 'Private') };
}

export interface SetupPrivateOptions {
  /** default privateLayout(owner); the encrypted-home layout (migrate-home) passes its own */
  layout?: SetupLayout;
  fnek: boolean;
  /** a separate wrapping passphrase (creates ~/.ecryptfs/wrapping-independent) instead of the login password */
  wrappingIndependent: boolean;
  autoMount: boolean;
  autoUmount: boolean;
  /** move a non-empty wrapped-passphrase / Private.sig aside (NAME.YYYYmmddHHMMSS) instead of refusing */
  force: boolean;
  now?: Date;
}

export interface SetupPrivateResult {
  configDir: string;
  lower: string;
  upper: string;
  fekSig: string;
  fnekSig?: string;
  /** files moved aside with --force */
  backups: string[];
}

/** Entries that make a directory "non-empty" the way ecryptfs-setup-private counts them. */
function blockingEntries(dir: string, skipSymlinks: boolean): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => !(skipSymlinks && d.isSymbolicLink())).map((d) => d.name);
}

/** An existing directory we may use: a real directory of the owner, with nothing in it. */
function checkEmptyDir(owner: UserRef, path: string, skipSymlinks: boolean): 'missing' | 'empty' {
  const st = lstatOrNull(path);
  if (st === null) return 'missing';
  if (st.isSymbolicLink()) throw new AgentError('SYMLINK_REFUSED', `${path} is a symbolic link; setup-private creates a real directory there`, { hint: `Move it away: mv ${path} ${path}.old` });
  if (!st.isDirectory()) throw new AgentError('ALREADY_EXISTS', `${path} exists and is not a directory`, { hint: `Move it away: mv ${path} ${path}.old` });
  if (st.uid !== owner.uid) throw new AgentError('BAD_OWNER', `${path} is not owned by ${owner.name}`);
  const entries = blockingEntries(path, skipSymlinks);
  if (entries.length > 0) {
    throw new AgentError('ALREADY_EXISTS', `${path} must be empty before setting up (it holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`, {
      hint: `Move its contents away first (mv ${path} ${path}.old); setup-private never overwrites data`,
    });
  }
  return 'empty';
}

function nonEmptyFile(path: string): boolean {
  const st = lstatOrNull(path);
  return st !== null && (!st.isFile() || st.size > 0);
}

function timestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * Checks that a setup can be created without clobbering anything (as the owner). Throws the
 * first reason it cannot; changes nothing.
 */
export function checkSetupPossible(owner: UserRef, opts: Pick<SetupPrivateOptions, 'force' | 'layout'>): void {
  const { configDir, lower, upper } = opts.layout ?? privateLayout(owner);
  asUser(owner, () => {
    const home = lstatOrNull(owner.home);
    if (home === null || !home.isDirectory()) throw new AgentError('NOT_FOUND', `home directory ${owner.home} of ${owner.name} does not exist`);
    const cst = lstatOrNull(configDir);
    if (cst !== null) {
      if (cst.isSymbolicLink()) {
        throw new AgentError('SYMLINK_REFUSED', `${configDir} is a symbolic link (an encrypted-home layout?); setup-private sets up ~/Private only`);
      }
      if (!cst.isDirectory()) throw new AgentError('ALREADY_EXISTS', `${configDir} exists and is not a directory`);
      if (cst.uid !== owner.uid) throw new AgentError('BAD_OWNER', `${configDir} is not owned by ${owner.name}`);
      for (const name of ['wrapped-passphrase', 'Private.sig']) {
        const path = join(configDir, name);
        if (!opts.force && nonEmptyFile(path)) {
          throw new AgentError('ALREADY_EXISTS', `${path} already exists: a private directory is already set up`, {
            hint: 'Use it (ecryptfs-agent unlock), or pass --force to move the old files aside (NAME.<timestamp>) and set up anew',
          });
        }
        const st = lstatOrNull(path);
        if (st !== null && !st.isFile()) throw new AgentError('NOT_REGULAR_FILE', `${path} is not a regular file`);
      }
    }
    for (const m of readMountInfo()) {
      if (m.mountPoint === upper || m.mountPoint === lower) {
        throw new AgentError('ALREADY_EXISTS', `${m.mountPoint} is mounted`, { hint: 'Lock it first: ecryptfs-agent lock' });
      }
    }
    checkEmptyDir(owner, upper, true); // ecryptfs-setup-private ignores the README symlinks it leaves there
    checkEmptyDir(owner, lower, false);
  });
}

/**
 * Creates the setup. `mountPassphrase` and `wrappingPassphrase` are not zeroed here (the caller
 * owns them). Returns the sigs written to Private.sig.
 */
export function setupPrivate(owner: UserRef, mountPassphrase: Buffer, wrappingPassphrase: Buffer, opts: SetupPrivateOptions): SetupPrivateResult {
  checkSetupPossible(owner, opts);
  const { configDir, lower, upper } = opts.layout ?? privateLayout(owner);
  return asUser(owner, () => {
    const salt = readEcryptfsrcSalt(owner.home, owner);
    const keys = deriveMountKeys(mountPassphrase, salt, opts.fnek);
    keys.fek.payload.fill(0);
    keys.fnek?.payload.fill(0);
    const wrapped = wrapPassphrase(mountPassphrase, wrappingPassphrase);
    const sigs = keys.fnek ? { fekSig: keys.fek.sig, fnekSig: keys.fnek.sig } : { fekSig: keys.fek.sig };

    const undo: Array<() => void> = [];
    const backups: string[] = [];
    const mkdir = (path: string): void => {
      if (lstatOrNull(path) !== null) return;
      fs.mkdirSync(path, { mode: 0o700 });
      fs.chmodSync(path, 0o700); // the umask must not loosen it
      undo.push(() => fs.rmdirSync(path));
    };
    const write = (name: string, data: Buffer, mode = 0o600): void => {
      const path = join(configDir, name);
      const existed = lstatOrNull(path) !== null;
      writeFileAtomic(path, data, { mode });
      if (!existed) undo.push(() => fs.rmSync(path, { force: true }));
    };
    try {
      mkdir(configDir);
      mkdir(lower);
      mkdir(upper);
      fs.chmodSync(upper, 0o500);
      undo.push(() => fs.chmodSync(upper, 0o700));
      if (opts.force) {
        const stamp = timestamp(opts.now ?? new Date());
        for (const name of ['wrapped-passphrase', 'Private.sig']) {
          const path = join(configDir, name);
          if (nonEmptyFile(path)) {
            fs.renameSync(path, `${path}.${stamp}`);
            backups.push(`${path}.${stamp}`);
            undo.push(() => fs.renameSync(`${path}.${stamp}`, path));
          }
        }
      }
      write('wrapped-passphrase', wrapped);
      write('Private.mnt', Buffer.from(`${upper}\n`, 'utf8'));
      // the empty flag files as ecryptfs-setup-private's `touch` (umask 022) makes them
      if (opts.autoMount) write('auto-mount', Buffer.alloc(0), FLAG_FILE_MODE);
      if (opts.autoUmount) write('auto-umount', Buffer.alloc(0), FLAG_FILE_MODE);
      if (opts.wrappingIndependent) write('wrapping-independent', Buffer.alloc(0), FLAG_FILE_MODE);
      else fs.rmSync(join(configDir, 'wrapping-independent'), { force: true });
      write('Private.sig', renderPrivateSig(sigs));
    } catch (e) {
      for (const step of undo.reverse()) {
        try {
          step();
        } catch {
          /* best effort: report the original failure */
        }
      }
      if (e instanceof AgentError) throw e;
      throw new AgentError('IO', `setting up the private directory failed: ${(e as Error).message}`, { cause: e });
    }
    const result: SetupPrivateResult = { configDir, lower, upper, fekSig: sigs.fekSig, backups };
    if (sigs.fnekSig !== undefined) result.fnekSig = sigs.fnekSig;
    return result;
  });
}
