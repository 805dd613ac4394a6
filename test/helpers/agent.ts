/** Runs the compiled session agent the way the PAM shim does: request on stdin, reply on stdout. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { renderRequest, type AgentRequest } from '../../src/formats/protocol';

export const REPO = join(__dirname, '..', '..', '..');
export const AGENT = join(REPO, 'dist', 'agent', 'main.js');

export interface ParsedReply {
  result: string;
  info: string[];
  error: string[];
  session?: string;
  raw: string;
}

export function parseReply(raw: string): ParsedReply {
  const lines = raw.split('\n');
  if (lines[0] !== 'ECRYPTFS-AGENT 1' || !lines.includes('end')) throw new Error(`malformed reply: ${JSON.stringify(raw)}`);
  const out: ParsedReply = { result: '', info: [], error: [], raw };
  for (const l of lines.slice(1)) {
    const eq = l.indexOf('=');
    if (eq < 0) continue;
    const [k, v] = [l.slice(0, eq), l.slice(eq + 1)];
    if (k === 'result') out.result = v;
    else if (k === 'info') out.info.push(v);
    else if (k === 'error') out.error.push(v);
    else if (k === 'session') out.session = v;
  }
  return out;
}

/** The reply, and the agent's pid (its syslog lines carry it: SyslogCapture.linesOf). */
export function runAgent(req: Partial<AgentRequest> & Pick<AgentRequest, 'phase' | 'user'>): ParsedReply & { pid: number } {
  const full: AgentRequest = {
    service: 'eat-test',
    tty: '',
    rhost: '',
    ruser: '',
    pamPid: process.pid,
    session: '',
    unwrap: true,
    debug: true,
    silent: false,
    ...req,
  };
  const r = spawnSync(AGENT, ['pam'], {
    input: renderRequest(full),
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`agent exited ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  return { ...parseReply(r.stdout.toString()), pid: r.pid ?? -1 };
}
