/**
 * The resident agent's system edges (docs/resident-agent.md): the two listening sockets (from
 * systemd's socket activation, or bound here), accepting one connection with its peer's
 * credentials, the namespaces of a peer, pidfds of session processes and their readiness on the
 * event loop. Thin typed wrappers over the addon; no policy.
 */
import { readlinkSync } from 'node:fs';
import { AgentError } from '../errors';
import { call } from './native';

/** Which socket a connection came in on: PAM phases (root only) or a user's own unlock/lock. */
export type SocketKind = 'pam' | 'user';

export interface ListeningSocket {
  fd: number;
  kind: SocketKind;
}

export interface AcceptedPeer {
  /** the connected socket (blocking, CLOEXEC) */
  fd: number;
  kind: SocketKind;
  pid: number;
  uid: number;
  gid: number;
}

export const DEFAULT_RUN_DIR = '/run/ecryptfs-agent';
export const PAM_SOCKET_NAME = 'agent.sock';
export const USER_SOCKET_NAME = 'user.sock';

/**
 * The sockets systemd passed (sd_listen_fds_with_names: LISTEN_PID must be us, fds from 3, named
 * by FileDescriptorName= "pam" / "user"); [] when not socket-activated.
 */
export function socketsFromSystemd(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ListeningSocket[] {
  if (env.LISTEN_PID !== String(pid)) return [];
  const count = Number(env.LISTEN_FDS ?? '0');
  if (!Number.isInteger(count) || count <= 0 || count > 16) return [];
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const out: ListeningSocket[] = [];
  for (let i = 0; i < count; i++) {
    const name = names[i];
    if (name === 'pam' || name === 'user') out.push({ fd: 3 + i, kind: name });
  }
  return out;
}

/** A listening socket bound here (no socket activation): the PAM one 0600, the user one 0666. */
export function listenAt(path: string, kind: SocketKind, backlog = 64): ListeningSocket {
  const fd = call('system', `listen on ${path}`, (n) => n.listenUnix(path, kind === 'pam' ? 0o600 : 0o666, backlog));
  return { fd, kind };
}

/** Waits for a connection on any of the sockets (timeoutMs -1: no limit); null on timeout. */
export function acceptPeer(sockets: readonly ListeningSocket[], timeoutMs: number): AcceptedPeer | null {
  const r = call('system', 'accept a connection', (n) => n.acceptPeer(sockets.map((s) => s.fd), timeoutMs));
  if (r === null) return null;
  const socket = sockets[r.index];
  if (socket === undefined) throw new AgentError('NATIVE', `accept: unknown socket index ${r.index}`);
  return { fd: r.fd, kind: socket.kind, pid: r.pid, uid: r.uid, gid: r.gid };
}

/** Credentials of the process at the other end of a connected socket. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } {
  return call('system', 'read the peer credentials', (n) => n.peerCred(fd));
}

/** This process is SIGKILLed as soon as the peer of fd closes its end (it gave up waiting). */
export function killWhenPeerHangsUp(fd: number): void {
  call('system', 'watch the connection', (n) => n.killOnHangup(fd));
}

/** The answer is written: from now on the peer closing its end is the normal end. */
export function peerMayHangUpNow(): void {
  call('system', 'stop watching the connection', (n) => n.disarmHangupKill());
}

/** The signal this process gets when its parent dies (0: none). */
export function dieWithParent(signal: number): void {
  call('system', 'set the parent-death signal', (n) => n.setPdeathsig(signal));
}

function namespaceOf(pid: number | 'self', ns: 'mnt' | 'user'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/**
 * Whether process pid shares this process's mount and user namespaces. A login inside a container
 * or a unit with private mounts must mount in its own namespace: such a peer is told "spawn".
 * Unknown (the process is gone, /proc hidden) counts as different.
 */
export function sharesOurNamespaces(pid: number): boolean {
  for (const ns of ['mnt', 'user'] as const) {
    const theirs = namespaceOf(pid, ns);
    if (theirs === null || theirs !== namespaceOf('self', ns)) return false;
  }
  return true;
}

/** A pidfd of pid (readable once the process has exited); null when there is no such process. */
export function openPidfd(pid: number): number | null {
  try {
    return call('system', `pidfd_open ${pid}`, (n) => n.pidfdOpen(pid));
  } catch (e) {
    if ((e as AgentError).errno === 'ESRCH') return null;
    throw e;
  }
}

/** Calls fn once, on the event loop, when fd becomes readable; returns the function that stops it. */
export function whenReadable(fd: number, fn: () => void): () => void {
  const id = call('system', 'watch a descriptor', (n) => n.watchReadable(fd, fn));
  return () => call('system', 'stop watching a descriptor', (n) => n.unwatch(id));
}
