/**
 * Reading a user's eCryptfs private-directory setup from ~/.ecryptfs, the layout that
 * ecryptfs-setup-private (111) writes: Private.sig, Private.mnt, auto-mount, auto-umount,
 * wrapping-independent, wrapped-passphrase, and the salt from ~/.ecryptfsrc.
 *
 * Call it as the user (credentials.asUser): every file is opened with the user's rights, so a
 * symlink planted in the home can never make root read something the user could not.
 * ~/.ecryptfs may itself be a symlink (the encrypted-home layout links it to
 * /home/.ecryptfs/USER/.ecryptfs) but then it must resolve to a directory the user owns;
 * the files read from it and ~/.ecryptfsrc are opened with O_NOFOLLOW, must be owned by the
 * user or by root, and must not be writable by group or others.
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseEcryptfsrcSalt, parsePrivateMnt, parsePrivateSig } from '../formats/config';
import type { UserRef } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { DEFAULT_SALT } from '../formats/kdf';
import { fileExists, readSmallFile } from '../os/secure-file';

export interface PrivateSetup {
  configDir: string;
  wrappedPassphrasePath: string;
  /** lower (ciphertext) directory, as ecryptfs-utils passes it: `$HOME/.Private` */
  lower: string;
  /** upper (plaintext) mount point, first line of Private.mnt or `$HOME/Private` */
  upper: string;
  fekSig: string;
  fnekSig?: string;
  autoMount: boolean;
  autoUmount: boolean;
  wrappingIndependent: boolean;
  hasWrappedPassphrase: boolean;
  /** salt for the main auth tok and for v1 wrapped files */
  salt: Buffer;
}

const MAX_CONFIG_BYTES = 4096;

function checkConfigDir(user: UserRef, dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new AgentError('NOT_FOUND', `${dir} does not exist`);
    throw new AgentError('IO', `cannot examine ${dir}: ${(e as Error).message}`);
  }
  if (st.isSymbolicLink()) {
    const target = realpathSync(dir);
    const tst = statSync(target);
    if (!tst.isDirectory() || tst.uid !== user.uid) {
      throw new AgentError('SYMLINK_REFUSED', `${dir} is a symbolic link to ${target}, which is not a directory owned by ${user.name}`);
    }
    return;
  }
  if (!st.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${dir} is not a directory`);
  if (st.uid !== user.uid) throw new AgentError('BAD_OWNER', `${dir} is not owned by ${user.name}`);
}

/** A config file of the user's that root acts on: the user's or root's, writable by no one else. */
function readUserConfig(owner: { uid: number; name: string }, path: string, opts: { groupWritableIfGid?: number } = {}): Buffer {
  return readSmallFile(path, { maxBytes: MAX_CONFIG_BYTES, expectUserOrRoot: owner, refuseGroupOrOtherWritable: true, ...opts });
}

/**
 * Returns the setup, or null when the user has none (no ~/.ecryptfs/Private.sig, and nothing
 * else of a setup either): the common case for users without an encrypted directory, which the
 * agent ignores quietly. ~/.ecryptfs with a wrapped passphrase or auto-mount but no Private.sig is
 * a setup that lost a file: SETUP_INCOMPLETE, so the login says why it stays locked.
 */
export function loadPrivateSetup(user: UserRef, configDir = join(user.home, '.ecryptfs')): PrivateSetup | null {
  try {
    checkConfigDir(user, configDir);
  } catch (e) {
    if (isAgentError(e, 'NOT_FOUND')) return null;
    throw e;
  }
  const sigPath = join(configDir, 'Private.sig');
  let sigBuf: Buffer;
  try {
    sigBuf = readUserConfig(user, sigPath);
  } catch (e) {
    if (!isAgentError(e, 'NOT_FOUND')) throw e;
    const left = ['wrapped-passphrase', 'auto-mount'].filter((f) => fileExists(join(configDir, f)));
    if (left.length === 0) return null;
    throw new AgentError('SETUP_INCOMPLETE', `${sigPath} is missing (${left.join(' and ')} ${left.length > 1 ? 'are' : 'is'} there): the encrypted private directory cannot be unlocked`);
  }
  const sigs = parsePrivateSig(sigBuf);

  let upper = join(user.home, 'Private');
  const mntPath = join(configDir, 'Private.mnt');
  if (fileExists(mntPath)) upper = parsePrivateMnt(readUserConfig(user, mntPath), user.home);

  const salt = readEcryptfsrcSalt(user.home, user);

  const wrappedPassphrasePath = join(configDir, 'wrapped-passphrase');
  const setup: PrivateSetup = {
    configDir,
    wrappedPassphrasePath,
    lower: join(user.home, '.Private'),
    upper,
    fekSig: sigs.fekSig,
    autoMount: fileExists(join(configDir, 'auto-mount')),
    autoUmount: fileExists(join(configDir, 'auto-umount')),
    wrappingIndependent: fileExists(join(configDir, 'wrapping-independent')),
    hasWrappedPassphrase: fileExists(wrappedPassphrasePath),
    salt,
  };
  if (sigs.fnekSig !== undefined) setup.fnekSig = sigs.fnekSig;
  return setup;
}

/**
 * The passphrase salt: `salt=` of HOME/.ecryptfsrc, else ecryptfs-utils' default (no file).
 * The salt decides the key, so the file counts only when it is `owner`'s (or root's) and
 * writable by no one else; otherwise BAD_OWNER says what to chown or chmod. Call as `owner`.
 */
export function readEcryptfsrcSalt(home: string, owner: { uid: number; gid: number; name: string }): Buffer {
  const rcPath = join(home, '.ecryptfsrc');
  try {
    // Written by hand, unlike Private.sig/Private.mnt (0600 from mktemp): with umask 002 on a
    // user-private-group system it is 0664, group = the user's own group; that is accepted.
    return parseEcryptfsrcSalt(readUserConfig(owner, rcPath, { groupWritableIfGid: owner.gid }), rcPath) ?? DEFAULT_SALT;
  } catch (e) {
    if (isAgentError(e, 'NOT_FOUND')) return DEFAULT_SALT;
    throw e;
  }
}

export function setupSigs(setup: PrivateSetup): string[] {
  return setup.fnekSig !== undefined ? [setup.fekSig, setup.fnekSig] : [setup.fekSig];
}
