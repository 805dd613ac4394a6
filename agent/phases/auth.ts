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
import { insertMountKeys, keysPresent, loadKeysFromWrapped } from '../../src/unlock';
import { AUTH_KEY_TIMEOUT_SEC, ignore, type PhaseContext } from '../context';
import type { AgentReply } from '../../src/protocol';

export function handleAuth(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log, store } = ctx;
  if (!setup) return ignore();
  if (!setup.autoMount) {
    log.debug('no auto-mount: nothing to unlock at login', { user: user.name, phase: 'auth' });
    return ignore();
  }
  const note = (outcome: AuthNote['outcome'], code?: string): void => {
    const n: AuthNote = { time: Date.now(), outcome };
    if (code !== undefined) n.code = code;
    store.recordAuth(user.uid, n);
  };
  if (findPrivateMount(setup)) {
    note('already-mounted');
    log.info('private directory already mounted; skipping unwrap', { user: user.name, phase: 'auth', outcome: 'already-mounted' });
    return ignore();
  }
  if (keysPresent(user, setup).missing.length === 0) {
    note('keys-present');
    log.info('auth toks already in the user keyring', { user: user.name, phase: 'auth', outcome: 'keys-present' });
    return ignore();
  }
  if (!req.authtok || req.authtok.length === 0) {
    note('no-password');
    log.info('no password from the PAM stack; cannot unwrap', { user: user.name, phase: 'auth', outcome: 'no-password' });
    return ignore();
  }
  if (req.unwrap && setup.wrappingIndependent) {
    note('wrapping-independent');
    log.info('wrapping passphrase is independent of the login password; not unwrapping', { user: user.name, phase: 'auth', outcome: 'wrapping-independent' });
    return ignore();
  }
  try {
    const result = req.unwrap
      ? loadKeysFromWrapped(user, setup, req.authtok, AUTH_KEY_TIMEOUT_SEC)
      : // Legacy mode (no `unwrap` option): the login password is the mount passphrase.
        insertMountKeys(user, setup, req.authtok, AUTH_KEY_TIMEOUT_SEC);
    note('keys-added');
    log.notice('auth toks added to the user keyring', {
      user: user.name,
      phase: 'auth',
      outcome: 'keys-added',
      added: result.added.join(','),
      present: result.present.join(','),
      expires_in: AUTH_KEY_TIMEOUT_SEC,
    });
  } catch (e) {
    if (e instanceof AgentError && e.code === 'WRONG_PASSWORD') {
      note('wrong-password');
      log.warning('login password does not unwrap the wrapped passphrase', { user: user.name, phase: 'auth', outcome: 'wrong-password' });
    } else if (e instanceof AgentError && e.code === 'SIG_MISMATCH') {
      note('sig-mismatch');
      log.error(e.message, { user: user.name, phase: 'auth', outcome: 'sig-mismatch', fix: e.hint });
    } else {
      const code = e instanceof AgentError ? e.code : 'INTERNAL';
      note('error', code);
      log.error(`cannot unlock: ${(e as Error).message}`, { user: user.name, phase: 'auth', outcome: 'error', code, fix: e instanceof AgentError ? e.hint : undefined });
    }
  }
  return ignore();
}
