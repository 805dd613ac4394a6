/**
 * open_session: count the session (before anything can fail, so a killed agent never leaves
 * the count short), keep the keys that auth added, and mount the private directory when
 * ~/.ecryptfs/auto-mount exists; then the extra mounts (docs/extra-mounts.md) whose keys are
 * in the keyring and whose encrypted directory is there. Every way this can fail ends with one
 * clear line for the user and one log line with the reason and the fix; the login itself
 * always proceeds, and a failing extra mount never affects ~/Private.
 */
import { AgentError } from '../../src/errors';
import { mountConfiguredExtras } from '../../src/extra-mounts-io';
import { sigsNotInUse } from '../../src/mount';
import { findPrivateMount, mountPrivate } from '../../src/private-mount';
import type { AgentReply } from '../../src/protocol';
import type { AuthNote } from '../../src/session';
import { forgetKeys, keepKeys, keysPresent } from '../../src/unlock';
import { success, ignore, tildePath, UNCOUNTED_SERVICES, underUserLock, type PhaseContext } from '../context';

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

interface Said {
  info: string[];
  error: string[];
}

type Base = Record<string, string | number>;

/** ~/Private. Returns the sigs to unlink afterwards unless a mount uses them (keys auth added in vain). */
function openPrivate(ctx: PhaseContext, base: Base, auth: AuthNote | null, said: Said): { unusedSigs: string[]; mounted: boolean } {
  const { user, log } = ctx;
  const setup = ctx.setup!;
  if (findPrivateMount(setup)) {
    keepKeys(user, keysPresent(user, setup).present);
    log.info('private directory already mounted', { ...base, outcome: 'already-mounted', mount: setup.upper });
    return { unusedSigs: [], mounted: true };
  }
  const keys = keysPresent(user, setup);
  if (keys.missing.length > 0) {
    const message = lockedMessage(ctx, auth);
    log.warning('private directory not mounted: auth toks missing', {
      ...base,
      outcome: 'locked',
      missing: keys.missing.join(','),
      auth: auth?.outcome ?? 'none',
      fix: auth?.outcome === 'wrong-password' ? 'ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase' : 'ecryptfs-agent unlock',
    });
    const isError = auth !== null && ['wrong-password', 'sig-mismatch', 'error'].includes(auth.outcome);
    (isError ? said.error : said.info).push(...message);
    // Keys auth added for this setup but that cannot be used now must not stay behind.
    return { unusedSigs: keys.present, mounted: false };
  }
  keepKeys(user, keys.present);
  try {
    mountPrivate(user, setup);
  } catch (e) {
    const err = e instanceof AgentError ? e : new AgentError('MOUNT', (e as Error).message);
    log.error(`mount failed: ${err.message}`, { ...base, outcome: 'mount-failed', code: err.code, errno: err.errno, fix: err.hint });
    said.error.push(`${tildePath(user, setup.upper)} could not be mounted: ${err.message}`, `Fix: ${err.hint}`);
    return { unusedSigs: keys.present, mounted: false };
  }
  log.notice('private directory mounted', { ...base, outcome: 'mounted', mount: setup.upper, sigs: keys.present.join(',') });
  return { unusedSigs: [], mounted: true };
}

/** Lines for the user about extra mounts, at most this many (the reply holds 8 of each kind). */
const MAX_EXTRA_LINES = 4;

/** The extra mounts. Each entry: one log line; a line for the user only when they can act on it. */
function openExtras(ctx: PhaseContext, base: Base, privateMounted: boolean, said: Said): void {
  const { user, log, store } = ctx;
  const { results, problems } = mountConfiguredExtras(user, ctx.setup, store);
  const lines: Said = { info: [], error: [] };
  for (const p of problems) {
    log.error(`extra mount entry refused: ${p.error.message}`, { ...base, outcome: 'extra-invalid', entry: p.where, code: p.error.code, fix: p.error.hint });
    lines.error.push(`${p.error.message}; not mounted. Fix: ${p.error.hint}`);
  }
  for (const r of results) {
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
  const { req, user, setup, log, store } = ctx;
  if (UNCOUNTED_SERVICES.has(req.service)) {
    log.debug('session of the systemd user manager: not counted', { user: user.name, phase: 'open_session', service: req.service });
    return ignore();
  }
  if (!setup) return ignore();
  return underUserLock(ctx, () => {
    const { record, live, pruned } = store.open(user.uid, { pid: req.pamPid, service: req.service, tty: req.tty, rhost: req.rhost });
    const base = { user: user.name, phase: 'open_session', sessions: live.length, pruned: pruned.length, service: req.service };
    const auth = store.takeAuth(user.uid, req.pamPid);
    if (!setup.autoMount) {
      log.info('session counted; no auto-mount', { ...base, outcome: 'counted' });
      return success([], [], record.id);
    }
    const said: Said = { info: [], error: [] };
    const priv = openPrivate(ctx, base, auth, said);
    try {
      openExtras(ctx, base, priv.mounted, said);
    } catch (e) {
      // Reading the mount table or the session state failed: ~/Private is unaffected.
      const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message);
      log.error(`extra mounts not handled: ${err.message}`, { ...base, outcome: 'extra-failed', code: err.code, fix: err.hint });
      said.error.push(`Extra mounts were not handled: ${err.message}`);
    } finally {
      // After the extra mounts: a key ~/Private could not use may be shared by one of them.
      if (priv.unusedSigs.length > 0) forgetKeys(user, sigsNotInUse(priv.unusedSigs));
    }
    return success(said.info, said.error, record.id);
  });
}
