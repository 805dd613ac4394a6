/**
 * The private directory's lifecycle, once, for both front-ends (the PAM phases in agent/ and the
 * CLI's unlock/lock): unlock (keys from a password, ~/Private, the extra mounts) and lock (the
 * extra mounts in reverse order, ~/Private, the keys no mount still uses), and the login session
 * accounting around them. Every use-case returns a typed outcome; the front-ends only turn
 * outcomes into log fields and lines for the user.
 *
 * Order and locking (docs/sessions.md): the costly part of an unlock (the unwrap and one KDF per
 * key) runs before the user's lock is taken (prepareKeys); everything that changes the keyring,
 * the mounts or the session records runs under it.
 */
import type { MountKeys } from '../formats/auth-tok';
import { AgentError, asAgentError } from '../errors';
import type { LoginOutcome } from './session';
import { copySecret } from '../formats/secret-memory';
import type { UserRef } from '../os/credentials';
import { sigsNotInUse } from '../os/mount';
import { mountConfiguredExtras, unmountRecordedExtras, type ExtraMountResult, type ExtraUnmountResult } from './extra-mounts';
import type { ExtraMountProblem } from '../formats/extra-mount-entries';
import { deriveCheckedMountKeys, forgetKeys, insertDerivedKeys, keepKeys, keysPresent, removeKilledRewrapTemps, rewrapForNewPassword, unwrapMountPassphrase, wipeMountKeys, type UserKeyring } from './keys';
import { examinePrivateMount, mountPrivate, unmountPrivate, type UnmountOutcome } from './private-mount';
import { type PrivateSetup, setupSigs } from './private-setup';
import type { SessionRecord, SessionStore } from './session';

/** What the use-cases act on: the user, their setup, their keyring (possessed), the session store. */
export interface LoginScope {
  user: UserRef;
  setup: PrivateSetup;
  ring: UserKeyring;
  store: SessionStore;
}

/** PAM services whose sessions are not user logins (see docs/sessions.md). */
export const UNCOUNTED_SERVICES: ReadonlySet<string> = new Set(['systemd-user']);

// ------------------------------------------------------------------ keys from a password

/** The auth toks derived from a password, or why there are none. */
export type PreparedKeys = { keys: MountKeys } | { error: AgentError } | { absent: 'no-password' | 'wrapping-independent' };

/**
 * What the password given to an unlock is:
 *  - login-password: the login password, which wraps the mount passphrase (unless the setup has a
 *    wrapping passphrase of its own: then a login cannot unlock);
 *  - wrapping-passphrase: what wraps the mount passphrase, whichever it is (the CLI asks for it);
 *  - mount-passphrase: the mount passphrase itself (pam_ecryptfs's mode without `unwrap`).
 */
export type PasswordRole = 'login-password' | 'wrapping-passphrase' | 'mount-passphrase';

/**
 * The costly part of an unlock, outside any lock: the mount passphrase from `password` (see
 * PasswordRole) and the auth toks derived from it, checked against Private.sig. The caller wipes
 * the keys (releaseKeys).
 */
export function prepareKeys(user: UserRef, setup: PrivateSetup, password: Buffer | undefined, role: PasswordRole): PreparedKeys {
  if (!password || password.length === 0) return { absent: 'no-password' };
  if (role === 'login-password' && setup.wrappingIndependent) return { absent: 'wrapping-independent' };
  let passphrase: Buffer | undefined;
  try {
    passphrase = role === 'mount-passphrase' ? copySecret(password) : unwrapMountPassphrase(user, setup, password);
    return { keys: deriveCheckedMountKeys(setup, passphrase) };
  } catch (e) {
    return { error: asAgentError(e) };
  } finally {
    passphrase?.fill(0);
  }
}

export function releaseKeys(p: PreparedKeys | null): void {
  if (p !== null && 'keys' in p) wipeMountKeys(p.keys);
}

// ------------------------------------------------------------------ unlock

export type UnlockOutcome =
  | { kind: 'mounted'; keysAdded: string[] }
  | { kind: 'already-mounted' }
  /** the keys could not be had: no password, a wrong one, a damaged file … */
  | { kind: 'locked'; reason: Exclude<LoginOutcome, 'mounted' | 'already-mounted' | 'counted' | 'not-yours' | 'mount-failed'>; error?: AgentError }
  /** something that is not this user's private directory is mounted there: left alone */
  | { kind: 'not-yours'; error: AgentError }
  /** keysAdded: what this unlock put in the keyring; the caller takes it back (takeBackKeys) */
  | { kind: 'mount-failed'; error: AgentError; keysAdded: string[] };

/**
 * Under the user's lock: ~/Private. Keys already in the keyring are used as they are; missing ones
 * come from `prepared` (called only then: a second login of a mounted directory derives nothing).
 */
export function unlockPrivate(scope: LoginScope, prepared: () => PreparedKeys): UnlockOutcome {
  const { user, setup, ring } = scope;
  const now = examinePrivateMount(user, setup);
  if (now.state === 'ours') {
    keepKeys(ring, keysPresent(ring, setup).present);
    return { kind: 'already-mounted' };
  }
  if (now.state === 'foreign') {
    return { kind: 'not-yours', error: new AgentError('NOT_YOURS', `${setup.upper} already has a mount that is not ${user.name}'s private directory (${now.why}); nothing mounted`) };
  }
  let keysAdded: string[] = [];
  const keys = keysPresent(ring, setup);
  if (keys.missing.length > 0) {
    const p = prepared();
    if ('absent' in p) return { kind: 'locked', reason: p.absent };
    if ('error' in p) {
      const reason = p.error.code === 'WRONG_PASSWORD' ? 'wrong-password' : p.error.code === 'SIG_MISMATCH' ? 'sig-mismatch' : 'error';
      return { kind: 'locked', reason, error: p.error };
    }
    try {
      keysAdded = insertDerivedKeys(ring, p.keys).added;
    } catch (e) {
      return { kind: 'locked', reason: 'error', error: asAgentError(e) };
    }
  }
  // keys that were there before may carry an expiry someone set: a mount using them must not lose them
  keepKeys(ring, keys.present);
  try {
    mountPrivate(ring, setup);
  } catch (e) {
    const error = asAgentError(e, 'MOUNT');
    return error.code === 'NOT_YOURS' ? { kind: 'not-yours', error } : { kind: 'mount-failed', error, keysAdded };
  }
  return { kind: 'mounted', keysAdded };
}

/** Under the user's lock: the extra mounts a login makes (docs/extra-mounts.md). */
export function unlockExtras(scope: LoginScope): { results: ExtraMountResult[]; problems: ExtraMountProblem[] } {
  return mountConfiguredExtras(scope.ring, scope.setup, scope.store);
}

/** Keys an unlock added that no mount ended up using (call after the extra mounts: they may share one). */
export function takeBackKeys(scope: LoginScope, added: readonly string[]): string[] {
  return added.length === 0 ? [] : forgetKeys(scope.ring, sigsNotInUse(added));
}

// ------------------------------------------------------------------ lock

export interface LockOutcome {
  extras: ExtraUnmountResult[];
  /** the extra mounts could not even be looked at */
  extrasError?: AgentError;
  /** ~/Private: unmounted or not there; or why not (NOT_YOURS: another mount, left alone; UNMOUNT_BUSY) */
  private: UnmountOutcome | { error: AgentError };
  /** sigs unlinked: those of ~/Private and of the extra mounts that no remaining mount uses */
  keysRemoved: string[];
}

/**
 * Under the user's lock: the extra mounts logins made, in reverse order of mounting, then
 * ~/Private, then the keys no remaining eCryptfs mount uses. Busy mounts are detached lazily
 * unless lazyWhenBusy is false. Only mounts that are the user's own are touched.
 */
export function lockPrivate(scope: LoginScope, opts: { lazyWhenBusy: boolean }): LockOutcome {
  const { user, setup, ring, store } = scope;
  let extras: ExtraUnmountResult[] = [];
  let extraSigs: string[] = [];
  let extrasError: AgentError | undefined;
  try {
    const r = unmountRecordedExtras(user, store, { lazyWhenBusy: opts.lazyWhenBusy });
    extras = r.results;
    extraSigs = r.sigs;
  } catch (e) {
    extrasError = asAgentError(e);
  }
  let priv: LockOutcome['private'];
  try {
    priv = unmountPrivate(user, setup, { lazyWhenBusy: opts.lazyWhenBusy });
  } catch (e) {
    priv = { error: asAgentError(e, 'MOUNT') };
  }
  const keysRemoved = forgetKeys(ring, sigsNotInUse([...setupSigs(setup), ...extraSigs]));
  const out: LockOutcome = { extras, private: priv, keysRemoved };
  if (extrasError) out.extrasError = extrasError;
  return out;
}

// ------------------------------------------------------------------ login sessions

export interface SessionOpener {
  /** the PAM application process that opens the session */
  pid: number;
  service: string;
  tty: string;
  rhost: string;
}

export type ExtrasOutcome = { results: ExtraMountResult[]; problems: ExtraMountProblem[] } | { error: AgentError };

export type OpenSessionOutcome = {
  /** temp files of a re-wrap killed before its rename, removed (the wrapped file itself is whole) */
  rewrapTempsRemoved: string[];
} & (
  | { kind: 'counted'; record: SessionRecord; live: number; pruned: number }
  | {
      kind: 'unlocked-or-not';
      record: SessionRecord;
      live: number;
      pruned: number;
      private: UnlockOutcome;
      extras: ExtrasOutcome;
      /** keys this login added that no mount uses, taken back */
      keysTakenBack: string[];
    }
);

/**
 * A login's open_session: counts the session first (an agent killed later never leaves the count
 * short), then, with ~/.ecryptfs/auto-mount, unlocks ~/Private and the extra mounts, and keeps how
 * it ended for `status`. `password`: what the PAM module kept from auth (none: a key login, or a
 * client that authenticated in another process).
 */
export function openLoginSession(scope: LoginScope, opener: SessionOpener, password: Buffer | undefined, role: PasswordRole): OpenSessionOutcome {
  const { user, setup, store } = scope;
  const rewrapTempsRemoved = setup.hasWrappedPassphrase ? removeKilledRewrapTemps(user, setup) : [];
  // The KDFs outside the lock, unless the directory is mounted already (a second login).
  let prepared: PreparedKeys | null = null;
  if (setup.autoMount && examinePrivateMount(user, setup).state === 'none') prepared = prepareKeys(user, setup, password, role);
  try {
    return store.withUserLock(user.uid, () => {
      const { record, live, pruned } = store.open(user.uid, opener);
      if (!setup.autoMount) {
        store.recordLastLogin(user.uid, { time: Date.now(), outcome: 'counted', service: opener.service });
        return { kind: 'counted', rewrapTempsRemoved, record, live: live.length, pruned: pruned.length };
      }
      // (a logout may have locked the directory since the look above: then derive under the lock)
      const priv = unlockPrivate(scope, () => (prepared ??= prepareKeys(user, setup, password, role)));
      store.recordLastLogin(user.uid, lastLoginNote(priv, opener.service));
      let extras: ExtrasOutcome;
      try {
        extras = unlockExtras(scope);
      } catch (e) {
        extras = { error: asAgentError(e) };
      }
      // after the extra mounts: a key ~/Private could not use may be shared by one of them
      const keysTakenBack = priv.kind === 'mount-failed' ? takeBackKeys(scope, priv.keysAdded) : [];
      return { kind: 'unlocked-or-not', rewrapTempsRemoved, record, live: live.length, pruned: pruned.length, private: priv, extras, keysTakenBack };
    });
  } finally {
    releaseKeys(prepared);
  }
}

function lastLoginNote(o: UnlockOutcome, service: string): { time: number; outcome: LoginOutcome; service: string; code?: string } {
  const base = { time: Date.now(), service };
  switch (o.kind) {
    case 'mounted':
    case 'already-mounted':
      return { ...base, outcome: o.kind };
    case 'locked':
      return o.error ? { ...base, outcome: o.reason, code: o.error.code } : { ...base, outcome: o.reason };
    case 'not-yours':
    case 'mount-failed':
      return { ...base, outcome: o.kind, code: o.error.code };
  }
}

export type CloseSessionOutcome = { live: number; pruned: number; closed: string | null } & (
  | { kind: 'kept' }
  | { kind: 'no-auto-umount' }
  | { kind: 'locked'; lock: LockOutcome }
);

/**
 * A login's close_session: forgets the session (by its id, else by the calling process; a second
 * close removes nothing), prunes the ones whose process is gone, and after the last one, with
 * ~/.ecryptfs/auto-umount, locks (lockPrivate, busy mounts detached lazily as
 * umount.ecryptfs_private does). The closing marker is dropped before the lock is waited for: an
 * agent killed while waiting still has its session count as closed by the next lock holder.
 */
export function closeLoginSession(scope: LoginScope, closing: { id: string; pid: number }): CloseSessionOutcome {
  const { user, setup, store } = scope;
  if (closing.id !== '') store.markClosing(user.uid, closing.id);
  return store.withUserLock(user.uid, () => {
    const { removed, live, pruned, closing: marked } = store.close(user.uid, closing);
    const counts = {
      live: live.length,
      pruned: pruned.length + marked.length - (removed && marked.includes(removed) ? 1 : 0),
      closed: removed ? removed.id : null,
    };
    if (live.length > 0) return { ...counts, kind: 'kept' };
    if (!setup.autoUmount) return { ...counts, kind: 'no-auto-umount' };
    return { ...counts, kind: 'locked', lock: lockPrivate(scope, { lazyWhenBusy: true }) };
  });
}

// ------------------------------------------------------------------ password change

export type PasswordChangeOutcome =
  | { kind: 'rewrapped' }
  /** nothing to do: no wrapped file, or it is wrapped with a passphrase of its own (-w) */
  | { kind: 'not-wrapped-with-login-password' }
  /** the old password was not given (root reset) or does not unwrap the file: the file keeps its wrapping */
  | { kind: 'not-rewrapped'; reason: 'no-old-password' | 'failed'; error?: AgentError };

/**
 * chauthtok: re-wraps ~/.ecryptfs/wrapped-passphrase with the new login password, atomically,
 * under the user's lock and as the user. A wrong or missing old password changes nothing.
 */
export function changeLoginPassword(user: UserRef, setup: PrivateSetup, store: SessionStore, oldPassword: Buffer | undefined, newPassword: Buffer): PasswordChangeOutcome {
  if (!setup.hasWrappedPassphrase || setup.wrappingIndependent) return { kind: 'not-wrapped-with-login-password' };
  if (!oldPassword || oldPassword.length === 0) return { kind: 'not-rewrapped', reason: 'no-old-password' };
  try {
    store.withUserLock(user.uid, () => rewrapForNewPassword(user, setup, oldPassword, newPassword));
  } catch (e) {
    return { kind: 'not-rewrapped', reason: 'failed', error: asAgentError(e) };
  }
  return { kind: 'rewrapped' };
}
