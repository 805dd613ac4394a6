/**
 * auth: with the login password, unwrap ~/.ecryptfs/wrapped-passphrase and add the auth toks
 * to the user keyring with an expiry. open_session clears the expiry once the login really
 * opens a session; a login that fails after this point (account expired, a later module
 * refuses) leaves no lasting key. Nothing is said to the user here: open_session reports,
 * because only it knows whether the login was accepted. The hook itself always returns
 * PAM_IGNORE (the shim never vouches for a password).
 */
import { AgentError } from '../../src/errors';
import { findPrivateMount } from '../../src/private-mount';
import type { AuthNote } from '../../src/session';
import type { MountKeys } from '../../src/auth-tok';
import { deriveCheckedMountKeys, insertDerivedKeys, keysPresent, removeKilledRewrapTemps, unwrapMountPassphrase, wipeMountKeys } from '../../src/unlock';
import { AUTH_KEY_TIMEOUT_SEC, ignore, underUserLock, type PhaseContext } from '../context';
import type { AgentReply } from '../../src/protocol';

export function handleAuth(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log, store } = ctx;
  if (!setup) return ignore();
  if (setup.hasWrappedPassphrase) {
    const removed = removeKilledRewrapTemps(user, setup);
    if (removed.length > 0) log.notice('removed the temp file of a re-wrap that was killed before its rename', { user: user.name, phase: 'auth', removed: removed.join(',') });
  }
  if (!setup.autoMount) {
    log.debug('no auto-mount: nothing to unlock at login', { user: user.name, phase: 'auth' });
    return ignore();
  }
  const base = { user: user.name, phase: 'auth' };
  const note = (outcome: AuthNote['outcome'], code?: string): void => {
    const n: AuthNote = { time: Date.now(), outcome, pid: req.pamPid };
    if (code !== undefined) n.code = code;
    store.recordAuth(user.uid, n);
  };
  const unlockedAlready = (): 'already-mounted' | 'keys-present' | null =>
    findPrivateMount(setup) ? 'already-mounted' : keysPresent(user, setup).missing.length === 0 ? 'keys-present' : null;
  const canUnwrap = req.authtok !== undefined && req.authtok.length > 0 && !(req.unwrap && setup.wrappingIndependent);

  // The auth toks, from the mount passphrase (legacy mode: the password itself). The costly part
  // (three KDFs: the unwrap and one per key) runs outside the user's lock; the keyring change and
  // the note run under it, so a last logout happening at the same time either sees this login's
  // note and hands the keys over, or has finished before this login looks at the keyring (see
  // close-session and SessionStore.pendingLogins).
  const derived: { keys: MountKeys | null; error: unknown } = { keys: null, error: null };
  const prepare = (): void => {
    let passphrase: Buffer | undefined;
    try {
      passphrase = req.unwrap
        ? unwrapMountPassphrase(user, setup, req.authtok as Buffer)
        : Buffer.from(req.authtok as Buffer); // legacy mode (no `unwrap` option)
      derived.keys = deriveCheckedMountKeys(setup, passphrase);
    } catch (e) {
      derived.error = e;
    } finally {
      passphrase?.fill(0);
    }
  };
  if (canUnwrap && unlockedAlready() === null) prepare();
  /** The keyring change and the note; true (nothing done) when the unwrap has to run first. */
  const lockedStep = (lastTry: boolean): boolean => {
    const already = unlockedAlready();
    if (already === 'already-mounted') {
      note(already);
      log.info('private directory already mounted; skipping unwrap', { ...base, outcome: already });
      return false;
    }
    if (already === 'keys-present') {
      note(already);
      log.info('auth toks already in the user keyring', { ...base, outcome: already });
      return false;
    }
    if (!req.authtok || req.authtok.length === 0) {
      note('no-password');
      log.info('no password from the PAM stack; cannot unwrap', { ...base, outcome: 'no-password' });
      return false;
    }
    if (!canUnwrap) {
      note('wrapping-independent');
      log.info('wrapping passphrase is independent of the login password; not unwrapping', { ...base, outcome: 'wrapping-independent' });
      return false;
    }
    if (derived.keys === null && derived.error === null) {
      if (!lastTry) return true; // locked by a logout meanwhile
      prepare();
    }
    try {
      if (derived.keys === null) throw derived.error;
      const result = insertDerivedKeys(user, derived.keys, AUTH_KEY_TIMEOUT_SEC);
      note('keys-added');
      log.notice('auth toks added to the user keyring', {
        ...base,
        outcome: 'keys-added',
        added: result.added.join(','),
        present: result.present.join(','),
        expires_in: AUTH_KEY_TIMEOUT_SEC,
      });
    } catch (e) {
      if (e instanceof AgentError && e.code === 'WRONG_PASSWORD') {
        note('wrong-password');
        log.warning('login password does not unwrap the wrapped passphrase', { ...base, outcome: 'wrong-password' });
      } else if (e instanceof AgentError && e.code === 'SIG_MISMATCH') {
        note('sig-mismatch');
        log.error(e.message, { ...base, outcome: 'sig-mismatch', fix: e.hint });
      } else {
        const code = e instanceof AgentError ? e.code : 'INTERNAL';
        note('error', code);
        log.error(`cannot unlock: ${(e as Error).message}`, { ...base, outcome: 'error', code, fix: e instanceof AgentError ? e.hint : undefined });
      }
    }
    return false;
  };

  // Under the lock it may turn out that a logout locked the directory after the look above: then
  // unwrap outside the lock and look again, so that a burst of logins never queues behind one
  // login's KDFs (50 parallel cycles of one user spent minutes there); the last try unwraps in place.
  const UNWRAP_TRIES = 3;
  try {
    for (let attempt = 1; ; attempt++) {
      const needsUnwrap = underUserLock(ctx, () => lockedStep(attempt === UNWRAP_TRIES));
      if (needsUnwrap !== true) break;
      prepare();
    }
  } finally {
    if (derived.keys) wipeMountKeys(derived.keys);
  }
  return ignore();
}
