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
