/**
 * Key use-cases shared by the PAM agent and the CLI (one layer, two front-ends):
 * unwrap the mount passphrase, check it against Private.sig, put the auth toks in the
 * user's keyring; find, keep and forget them; re-wrap at a password change.
 * Every step that touches the user's files or keyring runs with the user's credentials.
 */
import { deriveMountKeys, type MountKeys } from './auth-tok';
import { asUser } from './credentials';
import { AgentError } from './errors';
import { insertAuthTok, KEY_SPEC, possessUserKeyring as linkUserKeyringIntoProcess, removeAuthTok, searchUserKey, setKeyTimeout } from './keyring';
import type { PrivateSetup, UserRef } from './private-setup';
import { setupSigs } from './private-setup';
import { readSmallFile, removeStaleTemps, writeFileAtomic } from './secure-file';
import { unwrapPassphrase, wrapPassphrase } from './wrapped-passphrase';

const MAX_WRAPPED_FILE_BYTES = 1024;


/**
 * Links the user's keyring (@u of the user, resolved by the real uid) into this process's own
 * keyring. Without it this root process, whose session keyring came from the PAM application,
 * does not *possess* the user's keys: setting an expiry or unlinking by id would be refused
 * (the default key permission gives the owner only "view"), and mount(2)'s request_key would
 * not find the auth toks. Affects this process only. See docs/keyring.md.
 */
export function possessUserKeyring(owner: UserRef): void {
  asUser(owner, () => linkUserKeyringIntoProcess());
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
 * Adds the missing auth toks to the user keyring (FNEK first, as ecryptfs-utils does); nothing
 * half-added on failure. `timeoutSec` puts an expiry on keys this call adds.
 */
export function insertDerivedKeys(owner: UserRef, keys: MountKeys, timeoutSec?: number): KeyLoadResult {
  const ordered = keys.fnek ? [keys.fnek, keys.fek] : [keys.fek];
  return asUser(owner, () => {
    const result: KeyLoadResult = { added: [], present: [] };
    try {
      for (const k of ordered) {
        const { id, added } = insertAuthTok(k.sig, k.payload, KEY_SPEC.USER);
        if (added) {
          result.added.push(k.sig);
          if (timeoutSec !== undefined) setKeyTimeout(id, timeoutSec);
        } else {
          result.present.push(k.sig);
        }
      }
    } catch (e) {
      // Nothing half-added: take back what this call put in.
      for (const sig of result.added) removeAuthTok(sig, KEY_SPEC.USER);
      throw e;
    }
    return result;
  });
}

/** deriveCheckedMountKeys, then insertDerivedKeys. */
export function insertMountKeys(owner: UserRef, setup: PrivateSetup, mountPassphrase: Buffer, timeoutSec?: number): KeyLoadResult {
  const keys = deriveCheckedMountKeys(setup, mountPassphrase);
  try {
    return insertDerivedKeys(owner, keys, timeoutSec);
  } finally {
    wipeMountKeys(keys);
  }
}

/** Unwrap with the wrapping (login) passphrase, then insert. */
export function loadKeysFromWrapped(owner: UserRef, setup: PrivateSetup, wrappingPassphrase: Buffer, timeoutSec?: number): KeyLoadResult {
  const mountPassphrase = unwrapMountPassphrase(owner, setup, wrappingPassphrase);
  try {
    return insertMountKeys(owner, setup, mountPassphrase, timeoutSec);
  } finally {
    mountPassphrase.fill(0);
  }
}

/** Which of the setup's sigs are in the user keyring now. */
export function keysPresent(owner: UserRef, setup: PrivateSetup): { present: string[]; missing: string[] } {
  return asUser(owner, () => {
    const present: string[] = [];
    const missing: string[] = [];
    for (const sig of setupSigs(setup)) (searchUserKey(sig, KEY_SPEC.USER) !== null ? present : missing).push(sig);
    return { present, missing };
  });
}

/** Removes any expiry set at authentication: the session now uses these keys. */
export function keepKeys(owner: UserRef, sigs: string[]): void {
  asUser(owner, () => {
    for (const sig of sigs) {
      const id = searchUserKey(sig, KEY_SPEC.USER);
      if (id !== null) setKeyTimeout(id, 0);
    }
  });
}

/**
 * Puts an expiry on the given auth toks instead of unlinking them: a login between its auth and
 * its open_session will use them (its open_session clears the expiry); if it never opens, they
 * go away on their own. Returns the sigs found.
 */
export function handOverKeys(owner: UserRef, sigs: string[], timeoutSec: number): string[] {
  return asUser(owner, () =>
    sigs.filter((sig) => {
      const id = searchUserKey(sig, KEY_SPEC.USER);
      if (id !== null) setKeyTimeout(id, timeoutSec);
      return id !== null;
    }),
  );
}

/** Unlinks the given auth toks from the user keyring; returns the sigs that were removed. */
export function forgetKeys(owner: UserRef, sigs: string[]): string[] {
  return asUser(owner, () => sigs.filter((sig) => removeAuthTok(sig, KEY_SPEC.USER)));
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
