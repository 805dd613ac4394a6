/**
 * What every phase handler gets: the parsed request, the user and their setup (null when the
 * user has no eCryptfs private directory), the logger and the session store.
 */
import type { LazyAgentLog } from '../src/log';
import type { AgentReply, AgentRequest } from '../src/protocol';
import type { PrivateSetup, UserRef } from '../src/private-setup';
import type { SessionStore } from '../src/session';
import type { UserKeyring } from '../src/unlock';

export interface PhaseContext {
  req: AgentRequest;
  user: UserRef;
  setup: PrivateSetup | null;
  /** the user's keyring, possessed by this process; set whenever setup is */
  ring: UserKeyring | null;
  log: LazyAgentLog;
  store: SessionStore;
}

export type PhaseHandler = (ctx: PhaseContext) => AgentReply;

/**
 * Runs fn under the user's lock (SessionStore.withUserLock), with winston loaded before the wait:
 * the phase logs its outcome under the lock, and loading winston there (a large part of a phase
 * under emulation) would make every other login of the user queue behind it.
 */
export function underUserLock<T>(ctx: PhaseContext, fn: () => T): T {
  ctx.log.load();
  return ctx.store.withUserLock(ctx.user.uid, fn);
}

/** PAM services whose sessions are not user logins (see docs/sessions.md). */
export const UNCOUNTED_SERVICES: ReadonlySet<string> = new Set(['systemd-user']);

export function ignore(info: string[] = [], error: string[] = []): AgentReply {
  return { result: 'ignore', info, error };
}

export function success(info: string[] = [], error: string[] = [], session?: string): AgentReply {
  const r: AgentReply = { result: 'success', info, error };
  if (session !== undefined) r.session = session;
  return r;
}

/** `~/Private` rather than `/home/alice/Private` in messages to the user. */
export function tildePath(user: UserRef, path: string): string {
  return path === user.home ? '~' : path.startsWith(user.home + '/') ? '~' + path.slice(user.home.length) : path;
}
