/**
 * One PAM request, served: read it from a descriptor (docs/protocol.md), do the phase's work
 * through the use-cases in src/actions, write one reply. The same for an agent the PAM module
 * spawned (fd 0 and 1) and for a worker of the resident agent (the accepted connection). Never
 * throws: any failure becomes `result=ignore` plus a line for the user and one for the log.
 */
import { readSync, writeSync } from 'node:fs';
import { asUser, isValidUsername, lookupUser, type UserInfo } from '../src/os/credentials';
import { AgentError, asAgentError } from '../src/errors';
import { joinSessionKeyring } from '../src/os/keyring';
import { createLazyLogger, type LazyAgentLog } from '../src/os/log';
import { loadPrivateSetup } from '../src/actions/private-setup';
import { allocSecret } from '../src/formats/secret-memory';
import { MAX_REQUEST_BYTES, parseRequest, renderReply, wipeRequest, type AgentReply, type AgentRequest } from '../src/formats/protocol';
import { SessionStore } from '../src/actions/session';
import { possessUserKeyring } from '../src/actions/keys';
import { ignore, type PhaseContext, type PhaseHandler } from './context';
import { handleChauthtok } from './phases/chauthtok';
import { handleCloseSession } from './phases/close-session';
import { handleOpenSession } from './phases/open-session';

/** auth: nothing to do here. The PAM module keeps the password (pam_set_data) for open_session,
 * so only a login PAM accepted loads keys; a module older than that still sends auth: ignored. */
function handleAuth(log: LazyAgentLog): AgentReply {
  log.debug('auth: nothing to do (the password is used at open_session)', { phase: 'auth' });
  return ignore();
}

export const HANDLERS: Record<Exclude<AgentRequest['phase'], 'auth'>, PhaseHandler> = {
  open_session: handleOpenSession,
  close_session: handleCloseSession,
  chauthtok: handleChauthtok,
};

/** The account the request names, or null (quietly ignored): root, names the agent cannot serve. */
function servedUser(name: string): UserInfo | null {
  // uid 0 has no private directory of ours, and asUser refuses to act "as root for root"; a name
  // with characters mount.ecryptfs_private refuses cannot be put in paths and option strings.
  if (!isValidUsername(name)) return null;
  const user = lookupUser(name);
  return user.uid === 0 ? null : user;
}

/** One message from fd, up to EOF (bounded), in locked memory; the caller zeroes it. */
export function readRequest(fd: number): Buffer {
  const buf = allocSecret(MAX_REQUEST_BYTES + 1);
  let len = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, len, buf.length - len, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw e;
    }
    if (n === 0) break;
    len += n;
    if (len >= buf.length) break;
  }
  const out = allocSecret(len);
  buf.copy(out, 0, 0, len);
  buf.fill(0);
  return out;
}

export function writeReply(fd: number, r: AgentReply): void {
  const out = renderReply(r);
  let off = 0;
  while (off < out.length) off += writeSync(fd, out, off);
}

/**
 * Reads one request from inFd, serves it, writes the reply to outFd. The caller has reset the
 * inherited process state (notReset: what it could not reset, logged here).
 */
export function serveRequest(inFd: number, outFd: number, notReset: readonly string[]): void {
  const reply = (r: AgentReply): void => writeReply(outFd, r);
  let req: AgentRequest | undefined;
  let log = createLazyLogger({ debug: false, stderr: false });
  try {
    const raw = readRequest(inFd);
    try {
      req = parseRequest(raw);
    } finally {
      raw.fill(0);
    }
    log = createLazyLogger({ debug: req.debug, stderr: false });
    if (process.geteuid?.() !== 0) throw new AgentError('PERMISSION', 'the agent must run as root (from the PAM module)');
    if (notReset.length > 0) log.warning('inherited process state not fully reset', { phase: req.phase, problems: notReset.join('; ') });
    if (req.phase === 'auth') {
      reply(handleAuth(log));
      return;
    }
    // A keyring of our own: the PAM application's session keyring (root's, after `su - alice` run
    // by root) must not be searched by mount(2) for a user's key sig.
    joinSessionKeyring();
    const user = servedUser(req.user);
    if (user === null) {
      log.debug('not served: root, or a name the agent cannot use', { phase: req.phase });
      reply(ignore());
      return;
    }
    reply(HANDLERS[req.phase as Exclude<AgentRequest['phase'], 'auth'>](phaseContext(req, user, log)));
  } catch (e) {
    const err = asAgentError(e);
    // close_session has no one left to tell; an incomplete setup is said at open_session
    const quiet = err.code === 'NO_SUCH_USER' || (err.code === 'SETUP_INCOMPLETE' && req?.phase !== 'open_session');
    (quiet ? log.debug : log.error)(err.message, {
      user: req?.user,
      phase: req?.phase,
      outcome: 'failed',
      code: err.code,
      fix: err.hint,
    });
    const tellUser = !quiet && req !== undefined && req.phase !== 'auth';
    reply(ignore([], tellUser ? [`ecryptfs-agent: ${err.message}`, `Fix: ${err.hint}`] : []));
  } finally {
    if (req) wipeRequest(req);
  }
}

/** What a phase handler gets for req and its user. */
export function phaseContext(req: AgentRequest, user: UserInfo, log: LazyAgentLog): PhaseContext {
  const store = new SessionStore();
  const setup = asUser(user, () => loadPrivateSetup(user));
  // the keyring is needed for the session phases only (a re-wrap touches no key)
  const ring = setup && req.phase !== 'chauthtok' ? possessUserKeyring(user) : null;
  if (!setup) log.debug('no eCryptfs private directory set up', { user: user.name, phase: req.phase });
  return { req, user, setup, ring, log, store };
}

