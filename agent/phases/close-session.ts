/**
 * close_session: forget this session (idempotent: a second close removes nothing), prune the
 * sessions whose process is gone, and when no session is left and ~/.ecryptfs/auto-umount
 * exists: unmount the extra mounts logins made, in reverse order of mounting, then ~/Private
 * (lazily when busy, like umount.ecryptfs_private), then unlink the sigs that no remaining
 * eCryptfs mount uses (several mounts may share one sig). Each unmount reaches the mount through
 * fds walked as the user and happens only when it is this user's own (src/private-mount.ts);
 * another user's mount named by a hostile Private.mnt is left alone and reported.
 */
import { AgentError } from '../../src/errors';
import { unmountRecordedExtras } from '../../src/extra-mounts-io';
import { sigsNotInUse } from '../../src/mount';
import { unmountPrivate } from '../../src/private-mount';
import { setupSigs } from '../../src/private-setup';
import type { AgentReply } from '../../src/protocol';
import { forgetKeys } from '../../src/unlock';
import { ignore, success, tildePath, UNCOUNTED_SERVICES, underUserLock, type PhaseContext } from '../context';

/** Unmounts the recorded extra mounts (last first); returns their sigs and lines for the user. */
function closeExtras(ctx: PhaseContext, base: Record<string, string | number>): { sigs: string[]; error: string[] } {
  const { user, log, store } = ctx;
  const error: string[] = [];
  try {
    const { results, sigs } = unmountRecordedExtras(user, store);
    for (const r of results) {
      const fields = { ...base, mount: r.record.upper, lower: r.record.lower, entry: r.record.where };
      if (r.outcome === 'unmounted') {
        log.notice('extra mount unmounted', { ...fields, outcome: r.lazy ? 'extra-unmounted-lazy' : 'extra-unmounted' });
      } else if (r.outcome === 'gone') {
        log.info('extra mount already gone (unmounted by hand?); nothing to do', { ...fields, outcome: 'extra-gone' });
      } else if (r.outcome === 'foreign') {
        log.warning(`extra mount left alone: ${r.why}`, { ...fields, outcome: 'extra-not-yours' });
      } else {
        log.error(`cannot unmount an extra mount: ${r.error.message}`, { ...fields, outcome: 'extra-unmount-failed', code: r.error.code, fix: r.error.hint });
        error.push(`${tildePath(user, r.record.upper)} could not be unmounted: ${r.error.message}. Fix: ${r.error.hint}`);
      }
    }
    return { sigs, error };
  } catch (e) {
    const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message);
    log.error(`extra mounts not unmounted: ${err.message}`, { ...base, outcome: 'extra-failed', code: err.code, fix: err.hint });
    return { sigs: [], error: [`Extra mounts were not unmounted: ${err.message}`] };
  }
}

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
  return underUserLock(ctx, () => {
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
    const extras = closeExtras(ctx, base);
    try {
      const outcome = unmountPrivate(user, setup);
      const unused = sigsNotInUse([...setupSigs(setup), ...extras.sigs]);
      const forgotten = forgetKeys(ctx.ring!, unused);
      log.notice(outcome.unmounted ? 'last session closed; private directory locked' : 'last session closed; nothing was mounted', {
        ...base,
        outcome: outcome.unmounted ? (outcome.lazy ? 'unmounted-lazy' : 'unmounted') : 'not-mounted',
        mount: setup.upper,
        keys_removed: forgotten.join(','),
      });
      return success([], extras.error);
    } catch (e) {
      const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message);
      log.error(`cannot lock the private directory: ${err.message}`, { ...base, outcome: err.code === 'NOT_YOURS' ? 'not-yours' : 'unmount-failed', code: err.code, fix: err.hint });
      return success([], [...extras.error, `${tildePath(user, setup.upper)} could not be locked: ${err.message}`, `Fix: ${err.hint}`]);
    }
  });
}
