/**
 * What every phase handler gets: the parsed request, the user and their setup (null when the
 * user has no eCryptfs private directory), the logger and the session store.
 */
import type { AgentLog } from '../src/log';
import type { AgentReply, AgentRequest } from '../src/protocol';
import type { PrivateSetup, UserRef } from '../src/private-setup';
import type { SessionStore } from '../src/session';

export interface PhaseContext {
  req: AgentRequest;
  user: UserRef;
  setup: PrivateSetup | null;
  log: AgentLog;
  store: SessionStore;
}

export type PhaseHandler = (ctx: PhaseContext) => AgentReply;

/** PAM services whose sessions are not user logins (see docs/sessions.md). */
export const UNCOUNTED_SERVICES: ReadonlySet<string> = new Set(['systemd-user']);

/** Seconds an auth tok added at authentication lives unless open_session keeps it. */
export const AUTH_KEY_TIMEOUT_SEC = 300;

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
