/**
 * close_session: one use-case (actions/login.closeLoginSession: forget this session, prune the
 * dead ones, and after the last one lock: the extra mounts in reverse order, ~/Private, the keys
 * no mount still uses), rendered here into log lines and, when something could not be locked,
 * lines for the user. Only mounts that are the user's own are ever unmounted
 * (docs/security.md): another user's mount named by a hostile Private.mnt is left alone, said so.
 */
import { closeLoginSession, type LockOutcome } from '../../src/actions/login';
import type { AgentReply } from '../../src/formats/protocol';
import { ignore, notALogin, success, tildePath, type PhaseContext } from '../context';

type Base = Record<string, string | number>;

/** The extra mounts' lines; returns what the user is told. */
function renderExtras(ctx: PhaseContext, base: Base, lock: LockOutcome): string[] {
  const { user, log } = ctx;
  const error: string[] = [];
  if (lock.extrasError) {
    log.error(`extra mounts not unmounted: ${lock.extrasError.message}`, { ...base, outcome: 'extra-failed', code: lock.extrasError.code, fix: lock.extrasError.hint });
    error.push(`Extra mounts were not unmounted: ${lock.extrasError.message}`);
  }
  for (const r of lock.extras) {
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
  return error;
}

export function handleCloseSession(ctx: PhaseContext): AgentReply {
  const { req, user, setup, ring, log, store } = ctx;
  const skip = notALogin(ctx, 'close_session');
  if (skip) return skip;
  if (!setup || !ring) return ignore();
  log.load(); // before the user's lock, as open_session does
  const o = closeLoginSession({ user, setup, ring, store }, { id: req.session, pid: req.pamPid });
  const base = { user: user.name, phase: 'close_session', sessions: o.live, pruned: o.pruned, closed: o.closed ?? 'none' };
  if (o.kind === 'kept') {
    log.info('sessions remain; keeping the private directory mounted', { ...base, outcome: 'kept' });
    return success();
  }
  if (o.kind === 'no-auto-umount') {
    log.info('last session closed; no auto-umount', { ...base, outcome: 'kept' });
    return success();
  }
  const error = renderExtras(ctx, base, o.lock);
  const priv = o.lock.private;
  if ('error' in priv) {
    const e = priv.error;
    log.error(`cannot lock the private directory: ${e.message}`, { ...base, outcome: e.code === 'NOT_YOURS' ? 'not-yours' : 'unmount-failed', code: e.code, fix: e.hint, keys_removed: o.lock.keysRemoved.join(',') });
    return success([], [...error, `${tildePath(user, setup.upper)} could not be locked: ${e.message}`, `Fix: ${e.hint}`]);
  }
  log.notice(priv.unmounted ? 'last session closed; private directory locked' : 'last session closed; nothing was mounted', {
    ...base,
    outcome: priv.unmounted ? (priv.lazy ? 'unmounted-lazy' : 'unmounted') : 'not-mounted',
    mount: setup.upper,
    keys_removed: o.lock.keysRemoved.join(','),
  });
  return success([], error);
}
