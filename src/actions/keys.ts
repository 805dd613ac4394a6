/**
 * Key use-cases shared by the PAM agent and the CLI (one layer, two front-ends):
 * unwrap the mount passphrase, check it against Private.sig, put the auth toks in the
 * user's keyring; find, keep and forget them; re-wrap at a password change.
 * Every step that touches the user's files or keyring runs with the user's effective ids
 * (credentials.asUser); the user's keyring is named by its serial (UserKeyring).
 */
import { deriveMountKeys, type MountKeys } from '../formats/auth-tok';
import { asUser } from '../os/credentials';
import { AgentError } from '../errors';
import { describeKey, insertAuthTok, KEY_SPEC, linkKey, possessUserKeyring as linkUserKeyringIntoProcess, removeAuthTok, searchUserKey, setKeyTimeout } from '../os/keyring';
import { call, native } from '../os/native';
import type { PrivateSetup } from './private-setup';
import type { UserRef } from '../os/credentials';
import { setupSigs } from './private-setup';
import { readSmallFile, removeStaleTemps, writeFileAtomic } from '../os/secure-file';
import { unwrapPassphrase, wrapPassphrase } from '../formats/wrapped-passphrase';

const MAX_WRAPPED_FILE_BYTES = 1024;

/**
 * A user's keyring (@u) as this process reaches it: by serial, linked into our process keyring
 * so that we possess it (docs/keyring.md). Every later key operation names `id` and runs with the
 * user's effective ids and root's real ids (credentials.asUser 'files' mode).
 */
export interface UserKeyring {
  owner: UserRef;
  id: number;
}

/**
 * Links the user's keyring (@u) into this process's own keyring and returns it. Without that link
 * this root process does not *possess* the user's keys: setting an expiry or unlinking by id would
 * be refused (the default key permission gives the owner only "view"), and mount(2)'s request_key
 * would not find the auth toks. Affects this process only. See docs/keyring.md.
 * Root acting for a user never takes her real uid for this (KEY_SPEC_USER_KEYRING is chosen by
 * the real uid): a short child with her ids names the keyring's serial (native.userKeyringId),
 * and the link is made with her effective ids, as its owner.
 */
export function possessUserKeyring(owner: UserRef): UserKeyring {
  const ids = native().getresuid();
  if (ids.ruid === owner.uid && ids.euid === owner.uid) return { owner, id: linkUserKeyringIntoProcess() }; // the user herself
  const id = call('keyring', `the keyring of ${owner.name}`, (n) => n.userKeyringId(owner.uid, owner.gid));
  asUser(owner, () => linkKey(id, KEY_SPEC.PROCESS));
  return { owner, id };
}

export interface KeyLoadResult {
  /** sigs whose auth toks this call added */
  added: string[];
  /** sigs that were already in the keyring (left as they were, like ecryptfs-utils) */
  present: string[];
}

/** Unwraps the mount passphrase (as the user). The caller zeroes the result. */
export function unwrapMountPassphrase(owner: UserRef, setup: PrivateSetup, wrappingPassphrase: Buffer): Buffer {
  return asUser(owner, () => {
    if (!setup.hasWrappedPassphrase) {
      throw new AgentError('NOT_FOUND', `${setup.wrappedPassphrasePath} does not exist`, {
        hint: 'Wrap your mount passphrase: ecryptfs-agent wrap-passphrase ~/.ecryptfs/wrapped-passphrase',
      });
    }
    const file = readSmallFile(setup.wrappedPassphrasePath, { maxBytes: MAX_WRAPPED_FILE_BYTES });
    return unwrapPassphrase(file, wrappingPassphrase, setup.salt);
  });
}

/**
 * Derives the auth toks from the mount passphrase (the costly part: one KDF per key) and checks
 * them against Private.sig. The caller zeroes them (wipeMountKeys). A damaged wrapped file (the
 * format has no MAC) gives SIG_MISMATCH here, before anything could reach the keyring.
 */
export function deriveCheckedMountKeys(setup: PrivateSetup, mountPassphrase: Buffer): MountKeys {
  const keys = deriveMountKeys(mountPassphrase, setup.salt, setup.fnekSig !== undefined);
  if (keys.fek.sig !== setup.fekSig || (setup.fnekSig !== undefined && keys.fnek?.sig !== setup.fnekSig)) {
    wipeMountKeys(keys);
    throw new AgentError('SIG_MISMATCH', `the unwrapped mount passphrase does not match ${setup.configDir}/Private.sig`);
  }
  return keys;
}

export function wipeMountKeys(keys: MountKeys): void {
  keys.fek.payload.fill(0);
  keys.fnek?.payload.fill(0);
}

/**
 * Adds the missing auth toks to the user keyring (FNEK first, as ecryptfs-utils does), owned by
 * the user; nothing half-added on failure.
 */
export function insertDerivedKeys(ring: UserKeyring, keys: MountKeys): KeyLoadResult {
  const ordered = keys.fnek ? [keys.fnek, keys.fek] : [keys.fek];
  return asUser(ring.owner, () => {
    const result: KeyLoadResult = { added: [], present: [] };
    try {
      for (const k of ordered) {
        const { added } = insertAuthTok(k.sig, k.payload, ring.id);
        (added ? result.added : result.present).push(k.sig);
      }
    } catch (e) {
      // Nothing half-added: take back what this call put in.
      for (const sig of result.added) removeAuthTok(sig, ring.id);
      throw e;
    }
    return result;
  });
}

/** deriveCheckedMountKeys, then insertDerivedKeys. */
export function insertMountKeys(ring: UserKeyring, setup: PrivateSetup, mountPassphrase: Buffer): KeyLoadResult {
  const keys = deriveCheckedMountKeys(setup, mountPassphrase);
  try {
    return insertDerivedKeys(ring, keys);
  } finally {
    wipeMountKeys(keys);
  }
}

/** Which of `sigs` are in the user keyring now. */
export function sigsPresent(ring: UserKeyring, sigs: readonly string[]): { present: string[]; missing: string[] } {
  return asUser(ring.owner, () => {
    const present: string[] = [];
    const missing: string[] = [];
    for (const sig of sigs) (searchUserKey(sig, ring.id) !== null ? present : missing).push(sig);
    return { present, missing };
  });
}

/** Which of the setup's sigs are in the user keyring now. */
export function keysPresent(ring: UserKeyring, setup: PrivateSetup): { present: string[]; missing: string[] } {
  return sigsPresent(ring, setupSigs(setup));
}

/**
 * The auth toks a mount will use must be the user's own: found in the user's keyring with the
 * user's rights, and owned by the user. mount(2) searches with the user's fs ids in this
 * process's keyrings, which hold nothing but the user's keyring (the agent joined an empty
 * session keyring of its own), so it finds exactly these. NOT_YOURS names a key another uid owns.
 */
export function checkKeysAreUsers(ring: UserKeyring, sigs: readonly string[]): void {
  asUser(ring.owner, () => {
    for (const sig of sigs) {
      const id = searchUserKey(sig, ring.id);
      if (id === null) throw new AgentError('KEY_NOT_FOUND', `the key ${sig} is not in the user keyring of ${ring.owner.name}`);
      const d = describeKey(id);
      if (d.type !== 'user' || d.uid !== ring.owner.uid) {
        throw new AgentError('NOT_YOURS', `the key ${sig} in the keyring of ${ring.owner.name} is not ${ring.owner.name}'s own (type ${d.type}, owner uid ${d.uid}); not mounting with it`, {
          hint: `Unlink it (keyctl unlink ${id} @u) and log in again`,
        });
      }
    }
  });
}

/** Removes any expiry on these auth toks (a key with a timeout would break a mount using it). */
export function keepKeys(ring: UserKeyring, sigs: string[]): void {
  asUser(ring.owner, () => {
    for (const sig of sigs) {
      const id = searchUserKey(sig, ring.id);
      if (id !== null) setKeyTimeout(id, 0);
    }
  });
}

/** Unlinks the given auth toks from the user keyring; returns the sigs that were removed. */
export function forgetKeys(ring: UserKeyring, sigs: string[]): string[] {
  return asUser(ring.owner, () => sigs.filter((sig) => removeAuthTok(sig, ring.id)));
}

/**
 * Re-wraps the wrapped-passphrase file with a new wrapping passphrase, atomically (temp file,
 * fsync, rename): the file on disk is always the old one or the new one. Checks the unwrapped
 * passphrase against Private.sig first, so a damaged file is never re-wrapped into a "valid" one.
 */
export function rewrapForNewPassword(owner: UserRef, setup: PrivateSetup, oldPassphrase: Buffer, newPassphrase: Buffer): void {
  const mountPassphrase = unwrapMountPassphrase(owner, setup, oldPassphrase);
  try {
    const keys = deriveMountKeys(mountPassphrase, setup.salt, false);
    keys.fek.payload.fill(0);
    if (keys.fek.sig !== setup.fekSig) {
      throw new AgentError('SIG_MISMATCH', `the unwrapped mount passphrase does not match ${setup.configDir}/Private.sig; not re-wrapping`);
    }
    const wrapped = wrapPassphrase(mountPassphrase, newPassphrase);
    asUser(owner, () => writeFileAtomic(setup.wrappedPassphrasePath, wrapped, { mode: 0o600 }));
  } finally {
    mountPassphrase.fill(0);
  }
}

/**
 * Removes what a re-wrap killed between writing its temp file and renaming it left in
 * ~/.ecryptfs (`wrapped-passphrase.tmp-PID-XXXXXX` of a process that is gone). Such a file holds
 * only a wrapped (encrypted) copy, and the next re-wrap would remove it too; the next login does
 * it sooner. Returns the names removed.
 */
export function removeKilledRewrapTemps(owner: UserRef, setup: PrivateSetup): string[] {
  return asUser(owner, () => removeStaleTemps(setup.wrappedPassphrasePath));
}
