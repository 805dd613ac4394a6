/**
 * What every phase handler gets: the parsed request, the user and their setup (null when the
 * user has no eCryptfs private directory), their keyring (open/close only), the logger and the
 * session store; and the reply helpers. A handler calls one use-case of src/actions/login.ts and
 * renders its outcome.
 */
import type { LazyAgentLog } from '../src/os/log';
import type { AgentReply, AgentRequest } from '../src/formats/protocol';
import type { PrivateSetup } from '../src/actions/private-setup';
import type { UserRef } from '../src/os/credentials';
import type { SessionStore } from '../src/actions/session';
import type { UserKeyring } from '../src/actions/keys';
import { UNCOUNTED_SERVICES } from '../src/actions/login';

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

/** The reply to a session of a service that is not a user login (docs/sessions.md), else null. */
export function notALogin(ctx: PhaseContext, phase: 'open_session' | 'close_session'): AgentReply | null {
  if (!UNCOUNTED_SERVICES.has(ctx.req.service)) return null;
  ctx.log.debug('session of the systemd user manager: not counted', { user: ctx.user.name, phase, service: ctx.req.service });
  return ignore();
}
