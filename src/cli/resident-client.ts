/**
 * The user's side of the resident agent's user socket (docs/resident-agent.md): `unlock` and
 * `lock` run by the user ask the agent, which acts for exactly the asking user (its peer
 * credentials) with root's privileges; no setuid helper is involved.
 */
import { lstatSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { AgentError } from '../errors';
import { DEFAULT_RUN_DIR, USER_SOCKET_NAME } from '../os/service';
import { onlyRootCanChange } from '../os/secure-file';
import { parseUserReply, renderUserRequest, type UserRequest } from '../formats/protocol';
import type { CliIO } from './command';

const USER_SOCKET = join(DEFAULT_RUN_DIR, USER_SOCKET_NAME);
/** unlock runs the KDF and a mount; under emulation and load that takes a while */
const ANSWER_TIMEOUT_MS = 120_000;

/**
 * Whether the agent's user socket is there and is root's: a socket in a root-owned directory
 * that no one else can write, so only root can have put it there.
 */
export function residentAgentListens(path: string = USER_SOCKET): boolean {
  try {
    const dir = lstatSync(join(path, '..'));
    const sock = lstatSync(path);
    return dir.isDirectory() && onlyRootCanChange(dir) && sock.isSocket() && sock.uid === 0;
  } catch {
    return false;
  }
}

function exchange(path: string, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = createConnection(path);
    sock.setTimeout(ANSWER_TIMEOUT_MS, () => sock.destroy(new Error('no answer in time')));
    sock.on('connect', () => sock.end(request));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Sends the request, prints the answer; returns the exit status the agent gave. */
export async function askResidentAgent(io: CliIO, req: UserRequest, path: string = USER_SOCKET): Promise<number> {
  const request = renderUserRequest(req);
  let answer: Buffer;
  try {
    answer = await exchange(path, request);
  } catch (e) {
    throw new AgentError('IO', `the resident agent (${path}) did not answer: ${(e as Error).message}`, {
      hint: 'Check it: systemctl status ecryptfs-agent.socket ecryptfs-agent.service (or ask root: sudo ecryptfs-agent unlock -u USER)',
    });
  } finally {
    request.fill(0);
  }
  const reply = parseUserReply(answer);
  for (const line of reply.out) io.out(`${line}\n`);
  for (const line of reply.err) io.err(`${line}\n`);
  return reply.status;
}
