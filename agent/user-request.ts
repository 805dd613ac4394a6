/**
 * A user's own request on the resident agent's user socket (docs/resident-agent.md): unlock or
 * lock the private directory of exactly the asking user (the socket's peer credentials), with the
 * same code root's `ecryptfs-agent unlock -u USER` runs, the messages written for the user.
 * Wrong passphrases are counted (src/actions/unlock-attempts.ts).
 */
import { writeSync } from 'node:fs';
import { AgentError, asAgentError, isAgentError } from '../src/errors';
import { lookupUid } from '../src/os/credentials';
import { joinSessionKeyring } from '../src/os/keyring';
import type { AgentLog } from '../src/os/log';
import type { AcceptedPeer } from '../src/os/service';
import { parseUserRequest, renderUserReply, type UserRequest } from '../src/formats/protocol';
import { SessionStore } from '../src/actions/session';
import { UnlockAttempts, waitBeforeNextTry } from '../src/actions/unlock-attempts';
import type { CliIO } from '../src/cli/command';
import { fail, lockForUser, unlockForUser } from '../src/cli/private-commands';
import { readRequest } from './serve';

/** A CliIO that keeps what the command would print, for the reply. */
function capturingIO(home: string): CliIO & { outText: string[]; errText: string[] } {
  const outText: string[] = [];
  const errText: string[] = [];
  return {
    outText,
    errText,
    out: (t) => outText.push(t.toString()),
    err: (t) => errText.push(t),
    passphrases: {
      read: () => Promise.reject(new AgentError('USAGE', 'the resident agent asks for no passphrase')),
    },
    home: () => home,
  };
}

function lines(texts: string[]): string[] {
  return texts.join('').split('\n').filter((l) => l !== '');
}

function runOp(io: CliIO, req: UserRequest, peer: AcceptedPeer, log: AgentLog): number {
  const user = lookupUid(peer.uid);
  if (req.user !== undefined && req.user !== user.name) {
    log.warning(`refused: ${user.name} asked to ${req.op} the private directory of another user`, { user: user.name, asked_for: req.user, peer_pid: peer.pid, outcome: 'refused' });
    throw new AgentError('PERMISSION', `only root can ${req.op} the private directory of ${req.user}`, { hint: `Run it as that user, or as root: sudo ecryptfs-agent ${req.op} -u ${req.user}` });
  }
  const store = new SessionStore();
  const attempts = new UnlockAttempts(store.dir);
  if (req.op === 'lock') return lockForUser(io, user, req.force);
  const wait = store.withUserLock(user.uid, () => waitBeforeNextTry(attempts.failures(user.uid), Date.now()));
  if (wait > 0) {
    log.warning('unlock refused: too many wrong passphrases', { user: user.name, outcome: 'rate-limited', wait_s: Math.ceil(wait / 1000) });
    throw new AgentError('PERMISSION', `too many wrong passphrases; try again in ${Math.ceil(wait / 1000)} s`, { hint: 'Wait, then type the passphrase carefully' });
  }
  try {
    const status = unlockForUser(io, user, req.passphrase);
    if (req.passphrase) store.withUserLock(user.uid, () => attempts.clear(user.uid));
    return status;
  } catch (e) {
    if (isAgentError(e, 'WRONG_PASSWORD') || isAgentError(e, 'SIG_MISMATCH')) {
      store.withUserLock(user.uid, () => attempts.recordFailure(user.uid, Date.now()));
    }
    throw e;
  }
}

export function serveUserRequest(peer: AcceptedPeer, log: AgentLog): void {
  let req: UserRequest | undefined;
  let status: number;
  const io = capturingIO('/');
  try {
    const raw = readRequest(peer.fd);
    try {
      req = parseUserRequest(raw);
    } finally {
      raw.fill(0);
    }
    if (peer.uid === 0) throw new AgentError('USAGE', 'root acts directly: ecryptfs-agent unlock -u USER (or lock -u USER)');
    // a keyring of this request's own, not the service's (shared by every worker)
    joinSessionKeyring();
    status = runOp(io, req, peer, log);
    log.notice(`${req.op} asked by the user`, { uid: peer.uid, pid: peer.pid, outcome: status === 0 ? 'done' : 'refused' });
  } catch (e) {
    const err = asAgentError(e);
    log.warning(`${req?.op ?? 'request'} asked by the user failed: ${err.message}`, { uid: peer.uid, pid: peer.pid, outcome: 'failed', code: err.code });
    status = fail(io, req?.op ?? 'unlock', err);
  } finally {
    req?.passphrase?.fill(0);
  }
  const reply = renderUserReply({ status, out: lines(io.outText), err: lines(io.errText) });
  let off = 0;
  while (off < reply.length) off += writeSync(peer.fd, reply, off);
}
