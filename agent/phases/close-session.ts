/**
 * close_session: forget this session (idempotent: a second close removes nothing), prune the
 * sessions whose process is gone, and when no session is left and ~/.ecryptfs/auto-umount
 * exists: unmount (lazily when busy, like umount.ecryptfs_private), then unlink the sigs that
 * no remaining eCryptfs mount uses.
 */
import { AgentError } from '../../src/errors';
import { findPrivateMount, sigsNoLongerMounted, unmountPrivate } from '../../src/private-mount';
import type { AgentReply } from '../../src/protocol';
import { forgetKeys, handOverKeys } from '../../src/unlock';
import { AUTH_KEY_TIMEOUT_SEC, ignore, success, tildePath, UNCOUNTED_SERVICES, type PhaseContext } from '../context';

export function handleCloseSession(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log, store } = ctx;
  if (UNCOUNTED_SERVICES.has(req.service)) {
    log.debug('session of the systemd user manager: not counted', { user: user.name, phase: 'close_session', service: req.service });
    return ignore();
  }
  if (!setup) return ignore();
  // Before waiting for the lock: even if this agent is killed while waiting, the next holder
  // of the lock knows this session is over.
  if (req.session !== '') store.markClosing(user.uid, req.session);
  return store.withUserLock(user.uid, () => {
    const { removed, live, pruned, closing } = store.close(user.uid, { id: req.session, pid: req.pamPid });
    const base = {
      user: user.name,
      phase: 'close_session',
      sessions: live.length,
      pruned: pruned.length + closing.length - (removed && closing.includes(removed) ? 1 : 0),
      closed: removed ? removed.id : 'none',
    };
    if (live.length > 0) {
      log.info('sessions remain; keeping the private directory mounted', { ...base, outcome: 'kept' });
      return success();
    }
    if (!setup.autoUmount) {
      log.info('last session closed; no auto-umount', { ...base, outcome: 'kept' });
      return success();
    }
    try {
      const mounted = findPrivateMount(setup) !== undefined;
      const outcome = mounted ? unmountPrivate(setup) : { unmounted: false, lazy: false };
      // A login of this user between its auth and its open_session (concurrent logins) will use
      // the keys: hand them over with the auth expiry instead of pulling them from under it.
      const pending = store.pendingLogins(user.uid, AUTH_KEY_TIMEOUT_SEC * 1000);
      const unused = sigsNoLongerMounted(setup);
      const forgotten = pending.length === 0 ? forgetKeys(user, unused) : [];
      const handedOver = pending.length === 0 ? [] : handOverKeys(user, unused, AUTH_KEY_TIMEOUT_SEC);
      store.dropFinishedAuths(user.uid);
      log.notice(outcome.unmounted ? 'last session closed; private directory locked' : 'last session closed; nothing was mounted', {
        ...base,
        outcome: outcome.unmounted ? (outcome.lazy ? 'unmounted-lazy' : 'unmounted') : 'not-mounted',
        mount: setup.upper,
        keys_removed: forgotten.join(','),
        ...(pending.length > 0 ? { keys_handed_over: handedOver.join(','), pending_logins: pending.map((n) => n.pid).join(',') } : {}),
      });
      return success();
    } catch (e) {
      const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message);
      log.error(`cannot lock the private directory: ${err.message}`, { ...base, outcome: 'unmount-failed', code: err.code, fix: err.hint });
      return success([], [`${tildePath(user, setup.upper)} could not be locked: ${err.message}`, `Fix: ${err.hint}`]);
    }
  });
}
