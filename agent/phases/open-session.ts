/**
 * open_session: count the session (before anything can fail, so a killed agent never leaves
 * the count short), keep the keys that auth added, and mount the private directory when
 * ~/.ecryptfs/auto-mount exists. Every way this can fail ends with one clear line for the
 * user and one log line with the reason and the fix; the login itself always proceeds.
 */
import { AgentError } from '../../src/errors';
import { findPrivateMount, mountPrivate, sigsNoLongerMounted } from '../../src/private-mount';
import type { AgentReply } from '../../src/protocol';
import type { AuthNote } from '../../src/session';
import { forgetKeys, keepKeys, keysPresent } from '../../src/unlock';
import { ignore, success, tildePath, UNCOUNTED_SERVICES, type PhaseContext } from '../context';

function lockedMessage(ctx: PhaseContext, auth: AuthNote | null): string[] {
  const upper = ctx.setup ? tildePath(ctx.user, ctx.setup.upper) : '~/Private';
  switch (auth?.outcome) {
    case 'wrong-password':
      return [
        `${upper} stays locked: your login password does not unwrap ~/.ecryptfs/wrapped-passphrase (was the password changed by root or another tool?).`,
        'Fix: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase (enter the old password, then the new one).',
      ];
    case 'sig-mismatch':
      return [`${upper} stays locked: ~/.ecryptfs/wrapped-passphrase does not match ~/.ecryptfs/Private.sig (damaged or from another setup); see the system log.`];
    case 'error':
      return [`${upper} stays locked: unlocking failed (${auth.code ?? 'error'}); see the system log (journalctl -t ecryptfs-agent).`];
    case 'wrapping-independent':
      return [`${upper} is locked (separate wrapping passphrase). Unlock it with: ecryptfs-agent unlock`];
    default:
      return [`${upper} is locked (no password at this login). Unlock it with: ecryptfs-agent unlock`];
  }
}

export function handleOpenSession(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log, store } = ctx;
  if (UNCOUNTED_SERVICES.has(req.service)) {
    log.debug('session of the systemd user manager: not counted', { user: user.name, phase: 'open_session', service: req.service });
    return ignore();
  }
  if (!setup) return ignore();
  return store.withUserLock(user.uid, () => {
    const { record, live, pruned } = store.open(user.uid, { pid: req.pamPid, service: req.service, tty: req.tty, rhost: req.rhost });
    const base = { user: user.name, phase: 'open_session', sessions: live.length, pruned: pruned.length, service: req.service };
    const auth = store.takeAuth(user.uid, req.pamPid);
    if (!setup.autoMount) {
      log.info('session counted; no auto-mount', { ...base, outcome: 'counted' });
      return success([], [], record.id);
    }
    if (findPrivateMount(setup)) {
      keepKeys(user, keysPresent(user, setup).present);
      log.info('private directory already mounted', { ...base, outcome: 'already-mounted', mount: setup.upper });
      return success([], [], record.id);
    }
    const keys = keysPresent(user, setup);
    if (keys.missing.length > 0) {
      const message = lockedMessage(ctx, auth);
      // Keys auth added for this setup but that cannot be used now must not stay behind.
      forgetKeys(user, keys.present);
      log.warning('private directory not mounted: auth toks missing', {
        ...base,
        outcome: 'locked',
        missing: keys.missing.join(','),
        auth: auth?.outcome ?? 'none',
        fix: auth?.outcome === 'wrong-password' ? 'ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase' : 'ecryptfs-agent unlock',
      });
      const isError = auth !== null && ['wrong-password', 'sig-mismatch', 'error'].includes(auth.outcome);
      return isError ? success([], message, record.id) : success(message, [], record.id);
    }
    keepKeys(user, keys.present);
    try {
      mountPrivate(user, setup);
    } catch (e) {
      forgetKeys(user, sigsNoLongerMounted(setup));
      const err = e instanceof AgentError ? e : new AgentError('MOUNT', (e as Error).message);
      log.error(`mount failed: ${err.message}`, { ...base, outcome: 'mount-failed', code: err.code, errno: err.errno, fix: err.hint });
      return success([], [`${tildePath(user, setup.upper)} could not be mounted: ${err.message}`, `Fix: ${err.hint}`], record.id);
    }
    log.notice('private directory mounted', { ...base, outcome: 'mounted', mount: setup.upper, sigs: keys.present.join(',') });
    return success([], [], record.id);
  });
}
