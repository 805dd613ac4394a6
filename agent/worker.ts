/**
 * A worker of the resident agent (docs/resident-agent.md): started by the master ahead of time,
 * from the service's clean state, with the agent loaded (winston, the addon, NSS) so that a PAM
 * phase pays no start-up. It waits for ONE connection on the sockets it inherited, tells the
 * master it is busy (so the next spare starts), serves that one request and exits: every request
 * still gets a fresh process, as with a spawned agent.
 *
 * fds: 3 = status pipe to the master (lines "ready", "busy KIND UID"); the listening sockets at
 * the fds named on the command line (`worker 4:pam 5:user`).
 */
import { closeSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { lookupUid } from '../src/os/credentials';
import { createLazyLogger } from '../src/os/log';
import { acceptPeer, dieWithParent, killWhenPeerHangsUp, type ListeningSocket, peerMayHangUpNow, sharesOurNamespaces } from '../src/os/service';
import { readRequest, serveRequest, writeReply } from './serve';
import { serveUserRequest } from './user-request';

const STATUS_FD = 3;

function status(line: string): void {
  try {
    writeSync(STATUS_FD, `${line}\n`);
  } catch {
    // the master is gone: the parent-death signal ends us, or the request is served all the same
  }
}

/** `4:pam 5:user` → the listening sockets. */
export function parseListenArgs(args: readonly string[]): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const a of args) {
    const m = /^([0-9]{1,4}):(pam|user)$/.exec(a);
    if (!m) throw new Error(`bad socket argument "${a}" (want FD:pam or FD:user)`);
    out.push({ fd: Number(m[1]), kind: m[2] as 'pam' | 'user' });
  }
  return out;
}

/** What a first request would otherwise load while the user waits. */
function warmUp(): void {
  createLazyLogger().load(); // winston: the largest part of an agent's start-up
  lookupUid(0); // NSS modules
}

export function runWorker(notReset: readonly string[], args: readonly string[]): number {
  const sockets = parseListenArgs(args);
  const master = process.ppid;
  // An idle spare ends with the master; a busy one finishes its request (cleared below).
  dieWithParent(constants.signals.SIGTERM);
  if (process.ppid !== master) return 0;
  warmUp();
  status('ready');
  const peer = acceptPeer(sockets, -1);
  if (peer === null) return 0;
  dieWithParent(0);
  status(`busy ${peer.kind} ${peer.uid}`);
  // The PAM module closing the connection (its timeout) kills us, as it kills an agent it spawned.
  killWhenPeerHangsUp(peer.fd);
  const log = createLazyLogger();
  try {
    if (peer.kind === 'user') {
      serveUserRequest(peer, log);
    } else if (peer.uid !== 0) {
      // the socket is root's (0600): only a process that became root another way gets here
      log.warning('refused a PAM request from a process that is not root', { peer_uid: peer.uid, peer_pid: peer.pid });
    } else if (!sharesOurNamespaces(peer.pid)) {
      // a login in a container or a unit with private mounts mounts in its own namespace
      log.info('PAM request from another mount or user namespace: told to spawn the agent', { peer_pid: peer.pid });
      readRequest(peer.fd).fill(0); // read to its end: a reply before that would reset the connection
      writeReply(peer.fd, { result: 'spawn', info: [], error: [] });
    } else {
      serveRequest(peer.fd, peer.fd, notReset);
    }
  } finally {
    peerMayHangUpNow();
    closeSync(peer.fd);
  }
  return 0;
}
