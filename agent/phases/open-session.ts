/**
 * open_session: one use-case (actions/login.openLoginSession: count, unlock with the password the
 * PAM module kept from auth, the extra mounts), rendered here into one log line per outcome and
 * the lines the user sees. The login itself always proceeds, and a failing extra mount never
 * affects ~/Private.
 */
import { type ExtrasOutcome, openLoginSession, type UnlockOutcome } from '../../src/actions/login';
import type { AgentReply } from '../../src/formats/protocol';
import { ignore, notALogin, success, tildePath, type PhaseContext } from '../context';

interface Said {
  info: string[];
  error: string[];
}

type Base = Record<string, string | number>;

/** ~/Private's outcome: one log line, and what the user is told. */
function renderPrivate(ctx: PhaseContext, base: Base, o: UnlockOutcome, said: Said): void {
  const { log, user } = ctx;
  const setup = ctx.setup!;
  const upper = tildePath(user, setup.upper);
  switch (o.kind) {
    case 'mounted':
      log.notice('private directory mounted', { ...base, outcome: 'mounted', mount: setup.upper, keys_added: o.keysAdded.join(',') });
      return;
    case 'already-mounted':
      log.info('private directory already mounted', { ...base, outcome: 'already-mounted', mount: setup.upper });
      return;
    case 'not-yours':
      log.error(o.error.message, { ...base, outcome: 'not-yours', code: o.error.code, fix: o.error.hint });
      said.error.push(`${upper} was not unlocked: ${o.error.message}.`, `Fix: ${o.error.hint}`);
      return;
    case 'mount-failed':
      log.error(`mount failed: ${o.error.message}`, { ...base, outcome: 'mount-failed', code: o.error.code, errno: o.error.errno, fix: o.error.hint, keys_added: o.keysAdded.join(',') });
      said.error.push(`${upper} could not be mounted: ${o.error.message}`, `Fix: ${o.error.hint}`);
      return;
    case 'locked':
      break;
  }
  const fields = { ...base, outcome: o.reason, ...(o.error ? { code: o.error.code } : {}) };
  switch (o.reason) {
    case 'no-password':
      log.info('no password reached this session; cannot unwrap', { ...fields, fix: 'ecryptfs-agent unlock' });
      said.info.push(`${upper} is locked (no password reached this login: key login, or a client that authenticates in another process). Unlock it with: ecryptfs-agent unlock`);
      return;
    case 'wrapping-independent':
      log.info('wrapping passphrase is independent of the login password; not unwrapping', { ...fields, fix: 'ecryptfs-agent unlock' });
      said.info.push(`${upper} is locked (separate wrapping passphrase). Unlock it with: ecryptfs-agent unlock`);
      return;
    case 'wrong-password':
      log.warning('login password does not unwrap the wrapped passphrase', { ...fields, fix: 'ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase' });
      said.error.push(
        `${upper} stays locked: your login password does not unwrap ~/.ecryptfs/wrapped-passphrase (was the password changed by root or another tool?).`,
        'Fix: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase (enter the old password, then the new one).',
      );
      return;
    case 'sig-mismatch':
      log.error(o.error?.message ?? 'sig mismatch', { ...fields, fix: o.error?.hint });
      said.error.push(`${upper} stays locked: ~/.ecryptfs/wrapped-passphrase does not match ~/.ecryptfs/Private.sig (damaged or from another setup); see the system log.`);
      return;
    default:
      log.error(`cannot unlock: ${o.error?.message ?? o.reason}`, { ...fields, fix: o.error?.hint });
      said.error.push(`${upper} stays locked: ${o.error?.message ?? o.reason}.`, `Fix: ${o.error?.hint ?? 'see the system log'}`);
  }
}

/** Lines for the user about extra mounts, at most this many (the reply holds 8 of each kind). */
const MAX_EXTRA_LINES = 4;

/** The extra mounts. Each entry: one log line; a line for the user only when they can act on it. */
function renderExtras(ctx: PhaseContext, base: Base, privateMounted: boolean, outcome: ExtrasOutcome, said: Said): void {
  const { user, log } = ctx;
  if ('error' in outcome) {
    // reading the mount table or the session state failed: ~/Private is unaffected
    log.error(`extra mounts not handled: ${outcome.error.message}`, { ...base, outcome: 'extra-failed', code: outcome.error.code, fix: outcome.error.hint });
    said.error.push(`Extra mounts were not handled: ${outcome.error.message}`);
    return;
  }
  const lines: Said = { info: [], error: [] };
  for (const p of outcome.problems) {
    log.error(`extra mount entry refused: ${p.error.message}`, { ...base, outcome: 'extra-invalid', entry: p.where, code: p.error.code, fix: p.error.hint });
    lines.error.push(`${p.error.message}; not mounted. Fix: ${p.error.hint}`);
  }
  for (const r of outcome.results) {
    const fields = { ...base, mount: r.entry.upper, lower: r.entry.lower, entry: r.entry.where };
    const where = tildePath(user, r.entry.upper);
    if (r.outcome === 'mounted') {
      log.notice('extra mount mounted', { ...fields, outcome: 'extra-mounted', sigs: r.entry.ecryptfs.sigs.concat(r.entry.ecryptfs.fnekSig ?? []).join(',') });
    } else if (r.outcome === 'failed') {
      log.error(`extra mount failed: ${r.error.message}`, { ...fields, outcome: 'extra-mount-failed', code: r.error.code, errno: r.error.errno, fix: r.error.hint });
      lines.error.push(`${where} could not be mounted: ${r.error.message}. Fix: ${r.error.hint}`);
    } else if (r.reason === 'mounted-earlier' || r.reason === 'mounted-by-other') {
      log.info(`extra mount skipped: ${r.detail}`, { ...fields, outcome: `extra-${r.reason}` });
    } else if (r.reason === 'keys-missing') {
      log.warning(`extra mount skipped: ${r.detail}`, { ...fields, outcome: 'extra-keys-missing', fix: 'load the key at login (same mount passphrase as ~/Private) or with ecryptfs-agent add-passphrase, then log in again' });
      // With ~/Private locked too, its own line already says why nothing is unlocked.
      if (privateMounted) lines.info.push(`${where} is not mounted: ${r.detail}.`);
    } else if (r.reason === 'lower-missing') {
      log.info(`extra mount skipped: ${r.detail}`, { ...fields, outcome: 'extra-lower-missing', fix: `make ${r.entry.lower} available, then log in again` });
      lines.info.push(`${where} is not mounted: ${r.entry.lower} is not there. Make it available (e.g. mount it), then log in again.`);
    } else {
      log.warning(`extra mount skipped: ${r.detail}`, { ...fields, outcome: `extra-${r.reason}`, fix: `remove the entry at ${r.entry.where}` });
      lines.error.push(`${r.entry.where}: ${r.detail}.`);
    }
  }
  const over = lines.info.length + lines.error.length - MAX_EXTRA_LINES;
  said.error.push(...lines.error.slice(0, MAX_EXTRA_LINES));
  said.info.push(...lines.info.slice(0, Math.max(0, MAX_EXTRA_LINES - lines.error.length)));
  if (over > 0) said.info.push(`(${over} more about extra mounts: journalctl -t ecryptfs-agent)`);
}

export function handleOpenSession(ctx: PhaseContext): AgentReply {
  const { req, user, setup, ring, log, store } = ctx;
  const skip = notALogin(ctx, 'open_session');
  if (skip) return skip;
  if (!setup || !ring) return ignore();
  // winston before the user's lock: other logins of the user would wait while it loads
  log.load();
  const o = openLoginSession({ user, setup, ring, store }, { pid: req.pamPid, service: req.service, tty: req.tty, rhost: req.rhost }, req.authtok, req.unwrap ? 'login-password' : 'mount-passphrase');
  const base = { user: user.name, phase: 'open_session', sessions: o.live, pruned: o.pruned, service: req.service };
  if (o.rewrapTempsRemoved.length > 0) log.notice('removed the temp file of a re-wrap that was killed before its rename', { ...base, removed: o.rewrapTempsRemoved.join(',') });
  if (o.kind === 'counted') {
    log.info('session counted; no auto-mount', { ...base, outcome: 'counted' });
    return success([], [], o.record.id);
  }
  const said: Said = { info: [], error: [] };
  renderPrivate(ctx, base, o.private, said);
  renderExtras(ctx, base, o.private.kind === 'mounted' || o.private.kind === 'already-mounted', o.extras, said);
  if (o.keysTakenBack.length > 0) log.info('keys this login added and no mount uses were taken back', { ...base, keys_removed: o.keysTakenBack.join(',') });
  return success(said.info, said.error, o.record.id);
}
