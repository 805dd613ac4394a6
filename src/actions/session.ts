/**
 * Session accounting that survives crashes.
 *
 * Each open PAM session of a user is one record naming the process that opened it (pid and
 * its start time from /proc/PID/stat, so a recycled pid is not mistaken for it). A record
 * whose process is gone is a session that ended without a clean close_session (crash,
 * SIGKILL, `(sd-pam)` killed by systemd): it is pruned on every open and close. close is
 * idempotent: a second close of the same session removes nothing. The state lives in a
 * root-owned directory under /run (not /dev/shm, where logind's RemoveIPC deletes
 * user-owned files), one JSON file per uid, read and written under a per-uid lock.
 */
import { SESSION_ID_RE } from '../formats/protocol';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors';
import { withFileLock } from '../os/lock';
import { ensureRootDir, writeFileAtomic } from '../os/secure-file';
import { type ExtraMountRecord, parseExtraMountRecords } from '../formats/extra-mount-entries';

export const DEFAULT_STATE_DIR = '/run/ecryptfs-agent';

/**
 * How long a phase waits for the user's lock. Long on purpose: the shim's hard timeout bounds
 * the agent (its SIGKILL releases the flock), and an agent that gave up earlier would drop a
 * session's open or close (seen with 10 concurrent logouts of one user under load).
 */
export const LOCK_WAIT_MS = 120_000;

export interface SessionRecord {
  id: string;
  /** pid of the PAM application process that opened the session */
  pid: number;
  /** that process's start time in clock ticks since boot (field 22 of /proc/PID/stat) */
  start: string;
  service: string;
  tty: string;
  rhost: string;
  /** ISO time of open_session */
  opened: string;
}

/** Field 22 (starttime) of a /proc/PID/stat line; the comm field may hold spaces and parens. */
export function parseProcStatStart(stat: string): string | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const rest = stat.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); starttime is field 22 → rest[19].
  const start = rest[19];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

export function processStart(pid: number): string | null {
  try {
    return parseProcStatStart(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export type LivenessProbe = (pid: number, start: string) => boolean;

export const processIsAlive: LivenessProbe = (pid, start) => processStart(pid) === start;

/** Pure: splits records into the live ones and the ones whose opener is gone. */
export function pruneDead(records: SessionRecord[], alive: LivenessProbe): { live: SessionRecord[]; dead: SessionRecord[] } {
  const live: SessionRecord[] = [];
  const dead: SessionRecord[] = [];
  for (const r of records) (alive(r.pid, r.start) ? live : dead).push(r);
  return { live, dead };
}

function isRecord(x: unknown): x is SessionRecord {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.id === 'string' &&
    typeof r.pid === 'number' &&
    typeof r.start === 'string' &&
    typeof r.service === 'string' &&
    typeof r.tty === 'string' &&
    typeof r.rhost === 'string' &&
    typeof r.opened === 'string'
  );
}

/** Pure: parses the state file; a damaged file counts as no sessions (and is rewritten). */
export function parseSessions(text: string): SessionRecord[] {
  try {
    const data: unknown = JSON.parse(text);
    if (typeof data !== 'object' || data === null) return [];
    const list = (data as { sessions?: unknown }).sessions;
    return Array.isArray(list) ? list.filter(isRecord) : [];
  } catch {
    return [];
  }
}

export function newSessionId(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * How the last login's open_session ended for this user, kept for `ecryptfs-agent status` (a
 * login that stayed locked explains itself there too, not only in the log).
 */
export type LoginOutcome =
  | 'mounted'
  | 'already-mounted'
  | 'counted'
  | 'no-password'
  | 'wrapping-independent'
  | 'wrong-password'
  | 'sig-mismatch'
  | 'not-yours'
  | 'mount-failed'
  | 'error';

export interface LastLogin {
  time: number;
  outcome: LoginOutcome;
  service: string;
  /** AgentError code for the failures */
  code?: string;
}

/** Pure: the note of a UID.last-login file; damaged → null. */
export function parseLastLogin(text: string): LastLogin | null {
  try {
    const n = JSON.parse(text) as Record<string, unknown> | null;
    if (typeof n !== 'object' || n === null) return null;
    if (typeof n.time !== 'number' || typeof n.outcome !== 'string' || typeof n.service !== 'string') return null;
    if (n.code !== undefined && typeof n.code !== 'string') return null;
    const out: LastLogin = { time: n.time, outcome: n.outcome as LoginOutcome, service: n.service };
    if (typeof n.code === 'string') out.code = n.code;
    return out;
  } catch {
    return null;
  }
}

export interface SessionChange {
  live: SessionRecord[];
  /** sessions whose opener process is gone */
  pruned: SessionRecord[];
  /** sessions a close_session marked as closing (see markClosing) */
  closing: SessionRecord[];
}

export class SessionStore {
  constructor(
    readonly dir: string = DEFAULT_STATE_DIR,
    private readonly alive: LivenessProbe = processIsAlive,
  ) {}

  private ensureDir(): void {
    // 0755 as ecryptfs-agent.socket makes it (its user socket lives here); every file is 0600
    ensureRootDir(this.dir, 0o755);
  }

  private file(uid: number): string {
    return join(this.dir, `${uid}.sessions`);
  }

  /** Runs fn while holding the user's lock: every open/close/mount/unmount of one user is serial. */
  withUserLock<T>(uid: number, fn: () => T, timeoutMs = LOCK_WAIT_MS): T {
    this.ensureDir();
    return withFileLock(join(this.dir, `${uid}.lock`), fn, { timeoutMs });
  }

  private closingMarker(uid: number, id: string): string {
    return join(this.dir, `${uid}.closing-${id}`);
  }

  /**
   * Marks a session as closing, without the lock: whoever holds the lock next drops it, even
   * if this close_session's agent never gets the lock (killed at the shim's timeout). So a burst
   * of logouts cannot leave a count above zero and the directory mounted.
   */
  markClosing(uid: number, id: string): void {
    if (!SESSION_ID_RE.test(id)) return;
    this.ensureDir();
    writeFileSync(this.closingMarker(uid, id), '', { mode: 0o600 });
  }

  /** Reads and prunes (call under withUserLock). */
  load(uid: number): SessionChange {
    let text = '';
    try {
      text = readFileSync(this.file(uid), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const { live: alive, dead } = pruneDead(parseSessions(text), this.alive);
    const closing = alive.filter((r) => existsSync(this.closingMarker(uid, r.id)));
    const live = alive.filter((r) => !closing.includes(r));
    return { live, pruned: dead, closing };
  }

  /** Writes the records and removes the closing markers of sessions no longer among them. */
  save(uid: number, records: SessionRecord[]): void {
    const body = JSON.stringify({ version: 1, uid, sessions: records }, null, 1) + '\n';
    writeFileAtomic(this.file(uid), Buffer.from(body), { mode: 0o600 });
    const kept = new Set(records.map((r) => r.id));
    const prefix = `${uid}.closing-`;
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith(prefix) && !kept.has(name.slice(prefix.length))) rmSync(join(this.dir, name), { force: true });
    }
  }

  private lastLoginFile(uid: number): string {
    return join(this.dir, `${uid}.last-login`);
  }

  /** Keeps how this login's open_session ended (call under withUserLock). */
  recordLastLogin(uid: number, note: LastLogin): void {
    this.ensureDir();
    writeFileAtomic(this.lastLoginFile(uid), Buffer.from(JSON.stringify(note) + '\n'), { mode: 0o600 });
  }

  /** How the last login's open_session ended, or null. */
  lastLogin(uid: number): LastLogin | null {
    try {
      return parseLastLogin(readFileSync(this.lastLoginFile(uid), 'utf8'));
    } catch {
      return null;
    }
  }

  private extraMountsFile(uid: number): string {
    return join(this.dir, `${uid}.extra-mounts`);
  }

  /** The extra mounts logins made, in mounting order (call under withUserLock). */
  loadExtraMounts(uid: number): ExtraMountRecord[] {
    try {
      return parseExtraMountRecords(readFileSync(this.extraMountsFile(uid), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Replaces the record (call under withUserLock); an empty list removes the file. */
  saveExtraMounts(uid: number, records: readonly ExtraMountRecord[]): void {
    this.ensureDir();
    if (records.length === 0) {
      rmSync(this.extraMountsFile(uid), { force: true });
      return;
    }
    const body = JSON.stringify({ version: 1, uid, mounts: records }, null, 1) + '\n';
    writeFileAtomic(this.extraMountsFile(uid), Buffer.from(body), { mode: 0o600 });
  }

  /** Adds a session (call under withUserLock). */
  open(uid: number, entry: Omit<SessionRecord, 'id' | 'start' | 'opened'>): SessionChange & { record: SessionRecord } {
    const { live, pruned, closing } = this.load(uid);
    const start = processStart(entry.pid);
    if (start === null) throw new AgentError('IO', `cannot read the start time of process ${entry.pid}`);
    const record: SessionRecord = { ...entry, id: newSessionId(), start, opened: new Date().toISOString() };
    const next = [...live, record];
    this.save(uid, next);
    return { live: next, pruned, closing, record };
  }

  /**
   * Removes the session named by id, or failing that the one opened by pid (same start time).
   * Idempotent: closing an unknown or already closed session removes nothing.
   */
  close(uid: number, match: { id: string; pid: number }): SessionChange & { removed: SessionRecord | null } {
    const { live, pruned, closing } = this.load(uid);
    let removed = match.id !== '' ? (closing.find((r) => r.id === match.id) ?? null) : null;
    let next = live;
    if (!removed) {
      let idx = match.id !== '' ? live.findIndex((r) => r.id === match.id) : -1;
      if (idx < 0) {
        const start = processStart(match.pid);
        idx = live.findIndex((r) => r.pid === match.pid && r.start === start);
      }
      removed = idx >= 0 ? (live[idx] as SessionRecord) : null;
      next = idx >= 0 ? live.filter((_, i) => i !== idx) : live;
    }
    this.save(uid, next);
    return { live: next, pruned, closing, removed };
  }
}
