/**
 * open_session: count the session (before anything can fail, so a killed agent never leaves the
 * count short), unlock and mount the private directory when ~/.ecryptfs/auto-mount exists, then
 * the extra mounts (docs/extra-mounts.md) whose keys are in the keyring.
 *
 * The keys are loaded here and only here: the PAM module kept the login password from its auth
 * hook (pam_set_data) and sends it with this request, so only a login that PAM accepted (auth and
 * account) ever unwraps and loads anything (docs/protocol.md). The costly part (the unwrap and one
 * KDF per key) runs before the user's lock is taken; the keyring change, the record and the mount
 * run under it. Every way this can fail ends with one clear line for the user and one log line
 * with the reason and the fix; the login itself always proceeds, and a failing extra mount never
 * affects ~/Private.
 */
import type { MountKeys } from '../../src/auth-tok';
import { AgentError } from '../../src/errors';
import { mountConfiguredExtras } from '../../src/extra-mounts-io';
import { sigsNotInUse } from '../../src/mount';
import { examinePrivateMount, mountPrivate } from '../../src/private-mount';
import type { AgentReply } from '../../src/protocol';
import { copySecret } from '../../src/secret-memory';
import type { LoginOutcome } from '../../src/session';
import { deriveCheckedMountKeys, forgetKeys, insertDerivedKeys, keepKeys, keysPresent, removeKilledRewrapTemps, unwrapMountPassphrase, wipeMountKeys } from '../../src/unlock';
import { success, ignore, tildePath, UNCOUNTED_SERVICES, underUserLock, type PhaseContext } from '../context';

interface Said {
  info: string[];
  error: string[];
}

type Base = Record<string, string | number>;

/** The auth toks derived from this login's password, or why there are none. */
type Prepared = { keys: MountKeys } | { error: unknown } | { absent: 'no-password' | 'wrapping-independent' };

function asAgentError(e: unknown, code: 'IO' | 'MOUNT' = 'IO'): AgentError {
  return e instanceof AgentError ? e : new AgentError(code, (e as Error).message ?? String(e));
}

/** Unwraps (or, without `unwrap`, takes the password itself as the mount passphrase) and derives. */
function prepareKeys(ctx: PhaseContext): Prepared {
  const { req, user } = ctx;
  const setup = ctx.setup!;
  if (!req.authtok || req.authtok.length === 0) return { absent: 'no-password' };
  if (req.unwrap && setup.wrappingIndependent) return { absent: 'wrapping-independent' };
  let passphrase: Buffer | undefined;
  try {
    passphrase = req.unwrap ? unwrapMountPassphrase(user, setup, req.authtok) : copySecret(req.authtok); // legacy mode (no `unwrap`)
    return { keys: deriveCheckedMountKeys(setup, passphrase) };
  } catch (e) {
    return { error: e };
  } finally {
    passphrase?.fill(0);
  }
}

/** What the user is told when ~/Private stays locked, and the outcome recorded for status. */
interface LockedReport {
  outcome: LoginOutcome;
  /** for the log */
  message: string;
  /** for the user */
  lines: string[];
  isError: boolean;
  code?: string;
  fix: string;
}

function lockedReport(ctx: PhaseContext, prepared: Prepared): LockedReport {
  const upper = tildePath(ctx.user, ctx.setup!.upper);
  if ('absent' in prepared) {
    return prepared.absent === 'wrapping-independent'
      ? { outcome: 'wrapping-independent', message: 'wrapping passphrase is independent of the login password; not unwrapping', lines: [`${upper} is locked (separate wrapping passphrase). Unlock it with: ecryptfs-agent unlock`], isError: false, fix: 'ecryptfs-agent unlock' }
      : { outcome: 'no-password', message: 'no password reached this session; cannot unwrap', lines: [`${upper} is locked (no password reached this login: key login, or a client that authenticates in another process). Unlock it with: ecryptfs-agent unlock`], isError: false, fix: 'ecryptfs-agent unlock' };
  }
  const err = asAgentError('error' in prepared ? prepared.error : new Error('no keys'));
  if (err.code === 'WRONG_PASSWORD') {
    return {
      outcome: 'wrong-password',
      message: 'login password does not unwrap the wrapped passphrase',
      lines: [
        `${upper} stays locked: your login password does not unwrap ~/.ecryptfs/wrapped-passphrase (was the password changed by root or another tool?).`,
        'Fix: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase (enter the old password, then the new one).',
      ],
      isError: true,
      code: err.code,
      fix: 'ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase',
    };
  }
  if (err.code === 'SIG_MISMATCH') {
    return { outcome: 'sig-mismatch', message: err.message, lines: [`${upper} stays locked: ~/.ecryptfs/wrapped-passphrase does not match ~/.ecryptfs/Private.sig (damaged or from another setup); see the system log.`], isError: true, code: err.code, fix: err.hint };
  }
  return { outcome: 'error', message: `cannot unlock: ${err.message}`, lines: [`${upper} stays locked: ${err.message}.`, `Fix: ${err.hint}`], isError: true, code: err.code, fix: err.hint };
}

/** ~/Private, under the user's lock. Returns the outcome for the record and whether it is mounted. */
function openPrivate(ctx: PhaseContext, base: Base, prepared: () => Prepared, said: Said): { outcome: LoginOutcome; code?: string; mounted: boolean; unusedSigs: string[] } {
  const { user, log } = ctx;
  const setup = ctx.setup!;
  const ring = ctx.ring!;
  const now = examinePrivateMount(user, setup);
  if (now.state === 'ours') {
    keepKeys(ring, keysPresent(ring, setup).present);
    log.info('private directory already mounted', { ...base, outcome: 'already-mounted', mount: setup.upper });
    return { outcome: 'already-mounted', mounted: true, unusedSigs: [] };
  }
  if (now.state === 'foreign') {
    const err = new AgentError('NOT_YOURS', `${setup.upper} already has a mount that is not ${user.name}'s private directory (${now.why}); nothing mounted`);
    log.error(err.message, { ...base, outcome: 'not-yours', code: err.code, fix: err.hint });
    said.error.push(`${tildePath(user, setup.upper)} was not unlocked: ${err.message}.`, `Fix: ${err.hint}`);
    return { outcome: 'not-yours', code: err.code, mounted: false, unusedSigs: [] };
  }
  let added: string[] = [];
  const keys = keysPresent(ring, setup);
  if (keys.missing.length > 0) {
    const p = prepared();
    if (!('keys' in p)) {
      const r = lockedReport(ctx, p);
      const fields = { ...base, outcome: r.outcome, missing: keys.missing.join(','), fix: r.fix, ...(r.code ? { code: r.code } : {}) };
      if (r.outcome === 'wrong-password') log.warning(r.message, fields);
      else if (r.isError) log.error(r.message, fields);
      else log.info(r.message, fields);
      (r.isError ? said.error : said.info).push(...r.lines);
      return { outcome: r.outcome, ...(r.code ? { code: r.code } : {}), mounted: false, unusedSigs: [] };
    }
    try {
      added = insertDerivedKeys(ring, p.keys).added;
    } catch (e) {
      const err = asAgentError(e);
      log.error(`cannot load the keys: ${err.message}`, { ...base, outcome: 'error', code: err.code, fix: err.hint });
      said.error.push(`${tildePath(user, setup.upper)} stays locked: ${err.message}.`, `Fix: ${err.hint}`);
      return { outcome: 'error', code: err.code, mounted: false, unusedSigs: [] };
    }
  }
  keepKeys(ring, keysPresent(ring, setup).present);
  try {
    mountPrivate(ring, setup);
  } catch (e) {
    const err = asAgentError(e, 'MOUNT');
    log.error(`mount failed: ${err.message}`, { ...base, outcome: err.code === 'NOT_YOURS' ? 'not-yours' : 'mount-failed', code: err.code, errno: err.errno, fix: err.hint, keys_added: added.join(','), keys_removed: added.length > 0 ? 'after the extra mounts' : undefined });
    said.error.push(`${tildePath(user, setup.upper)} could not be mounted: ${err.message}`, `Fix: ${err.hint}`);
    // keys this login loaded must not outlive a mount that failed: forgotten after the extra mounts
    return { outcome: err.code === 'NOT_YOURS' ? 'not-yours' : 'mount-failed', code: err.code, mounted: false, unusedSigs: added };
  }
  log.notice('private directory mounted', { ...base, outcome: 'mounted', mount: setup.upper, keys_added: added.join(',') });
  return { outcome: 'mounted', mounted: true, unusedSigs: [] };
}

/** Lines for the user about extra mounts, at most this many (the reply holds 8 of each kind). */
const MAX_EXTRA_LINES = 4;

/** The extra mounts. Each entry: one log line; a line for the user only when they can act on it. */
function openExtras(ctx: PhaseContext, base: Base, privateMounted: boolean, said: Said): void {
  const { user, log, store } = ctx;
  const { results, problems } = mountConfiguredExtras(ctx.ring!, ctx.setup, store);
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
  if (setup.hasWrappedPassphrase) {
    const removed = removeKilledRewrapTemps(user, setup);
    if (removed.length > 0) log.notice('removed the temp file of a re-wrap that was killed before its rename', { user: user.name, phase: 'open_session', removed: removed.join(',') });
  }
  // The KDFs outside the lock, unless the directory is mounted already (a second login).
  let prepared: Prepared | null = null;
  if (setup.autoMount && examinePrivateMount(user, setup).state === 'none') prepared = prepareKeys(ctx);
  try {
    return underUserLock(ctx, () => {
      const { record, live, pruned } = store.open(user.uid, { pid: req.pamPid, service: req.service, tty: req.tty, rhost: req.rhost });
      const base = { user: user.name, phase: 'open_session', sessions: live.length, pruned: pruned.length, service: req.service };
      if (!setup.autoMount) {
        store.recordLastLogin(user.uid, { time: Date.now(), outcome: 'counted', service: req.service });
        log.info('session counted; no auto-mount', { ...base, outcome: 'counted' });
        return success([], [], record.id);
      }
      const said: Said = { info: [], error: [] };
      // (a logout may have locked the directory since the look above: derive under the lock then)
      const priv = openPrivate(ctx, base, () => (prepared ??= prepareKeys(ctx)), said);
      store.recordLastLogin(user.uid, { time: Date.now(), outcome: priv.outcome, service: req.service, ...(priv.code ? { code: priv.code } : {}) });
      try {
        openExtras(ctx, base, priv.mounted, said);
      } catch (e) {
        // Reading the mount table or the session state failed: ~/Private is unaffected.
        const err = asAgentError(e);
        log.error(`extra mounts not handled: ${err.message}`, { ...base, outcome: 'extra-failed', code: err.code, fix: err.hint });
        said.error.push(`Extra mounts were not handled: ${err.message}`);
      } finally {
        // After the extra mounts: a key ~/Private could not use may be shared by one of them.
        if (priv.unusedSigs.length > 0) forgetKeys(ctx.ring!, sigsNotInUse(priv.unusedSigs));
      }
      return success(said.info, said.error, record.id);
    });
  } finally {
    if (prepared !== null && 'keys' in prepared) wipeMountKeys(prepared.keys);
  }
}
