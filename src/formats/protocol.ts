/**
 * The shim ⇄ agent protocol, version 1 (docs/protocol.md): pure parsing of the request the
 * PAM shim writes on the agent's stdin and rendering of the reply the agent writes back.
 * Secrets arrive as length-prefixed raw bytes and stay in Buffers the caller must zero.
 */
import { AgentError } from '../errors';
import { allocSecret } from './secret-memory';
import { escapeControls } from './text';

export const PROTOCOL_HEADER = 'ECRYPTFS-AGENT 1';
export const MAX_REQUEST_BYTES = 16 * 1024;
const MAX_SECRET_BYTES = 512; // PAM_MAX_RESP_SIZE
const MAX_MESSAGE_LINES = 8;
const MAX_LINE_BYTES = 1024;
/** The kernel's ceiling for /proc/sys/kernel/pid_max is 4 Mi (PID_MAX_LIMIT): every pid is below it. */
export const MAX_PAM_PID = 4 * 1024 * 1024 - 1;

export type Phase = 'auth' | 'open_session' | 'close_session' | 'chauthtok';
const PHASES: readonly Phase[] = ['auth', 'open_session', 'close_session', 'chauthtok'];

export interface AgentRequest {
  phase: Phase;
  user: string;
  service: string;
  tty: string;
  rhost: string;
  ruser: string;
  /** pid of the PAM application process that called the hook */
  pamPid: number;
  /** session id handed back by open_session, empty when the PAM handle lost it */
  session: string;
  unwrap: boolean;
  debug: boolean;
  silent: boolean;
  authtok?: Buffer;
  oldauthtok?: Buffer;
}

export interface AgentReply {
  /** spawn: (the resident agent) serve this request with a spawned agent instead (docs/resident-agent.md) */
  result: 'success' | 'ignore' | 'spawn';
  info: string[];
  error: string[];
  session?: string;
}

/** A session id: what the agent hands out at open_session and the shim gives back at close (also a file name part). */
export const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function malformed(why: string): AgentError {
  return new AgentError('USAGE', `malformed request from the PAM shim: ${why}`, {
    hint: 'The PAM module and the agent come from different versions; reinstall ecryptfs-agent',
  });
}

/**
 * A number as the shim prints it (%ld, %zu): decimal digits only, no sign, no leading zero, no
 * spaces, at most `max` (Number() would also take "0x10", "1e3", " 12"). Null when it is not one.
 */
function shimNumber(text: string, max: number): number | null {
  if (!/^(0|[1-9][0-9]*)$/.test(text) || text.length > String(max).length) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/** The lines of a message: `key=value` fields and length-prefixed secrets, up to `end`. */
interface Message {
  fields: Map<string, string>;
  secrets: Map<string, Buffer>;
}

/** Splits a complete message (header, fields, secrets, end). The caller zeroes the secrets. */
function parseMessage(buf: Buffer, malformed: (why: string) => AgentError): Message {
  if (buf.length > MAX_REQUEST_BYTES) throw malformed('too long');
  const fields = new Map<string, string>();
  const secrets = new Map<string, Buffer>();
  let pos = 0;
  let sawEnd = false;
  const nextLine = (): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) throw malformed('unterminated line');
    const line = buf.subarray(pos, nl);
    if (line.includes(0)) throw malformed('NUL in a field');
    pos = nl + 1;
    return line.toString('utf8');
  };
  try {
    if (nextLine() !== PROTOCOL_HEADER) throw malformed('bad header');
    while (pos < buf.length) {
      const line = nextLine();
      if (line === 'end') {
        sawEnd = true;
        break;
      }
      const secret = /^secret ([a-z_]+) ([0-9]+)$/.exec(line);
      if (secret) {
        const name = secret[1] as string;
        const len = shimNumber(secret[2] as string, Number.MAX_SAFE_INTEGER);
        if (len === null) throw malformed(`secret ${name}: bad length`);
        if (len > MAX_SECRET_BYTES) throw malformed(`secret ${name} too long`);
        if (pos + len + 1 > buf.length || buf[pos + len] !== 0x0a) throw malformed(`secret ${name} truncated`);
        // Copy: the caller zeroes the request buffer and keeps only these.
        const value = allocSecret(len);
        buf.copy(value, 0, pos, pos + len);
        const previous = secrets.get(name);
        if (previous) previous.fill(0);
        secrets.set(name, value);
        pos += len + 1;
        continue;
      }
      const eq = line.indexOf('=');
      if (eq <= 0 || !/^[a-z_]+$/.test(line.slice(0, eq))) throw malformed('bad field line');
      fields.set(line.slice(0, eq), line.slice(eq + 1));
    }
    if (!sawEnd) throw malformed('missing end');
    return { fields, secrets };
  } catch (e) {
    for (const v of secrets.values()) v.fill(0);
    throw e;
  }
}

/** Parses a complete request. Throws AgentError('USAGE') on anything malformed. */
export function parseRequest(buf: Buffer): AgentRequest {
  const { fields, secrets } = parseMessage(buf, malformed);
  try {
    const phase = fields.get('phase') ?? '';
    if (!(PHASES as readonly string[]).includes(phase)) throw malformed(`unknown phase "${phase}"`);
    const user = fields.get('user') ?? '';
    if (user === '') throw malformed('no user');
    const pamPid = shimNumber(fields.get('pam_pid') ?? '', MAX_PAM_PID);
    if (pamPid === null || pamPid === 0) throw malformed('bad pam_pid');
    const session = fields.get('session') ?? '';
    if (session !== '' && !SESSION_ID_RE.test(session)) throw malformed('bad session id');
    const req: AgentRequest = {
      phase: phase as Phase,
      user,
      service: fields.get('service') ?? '',
      tty: fields.get('tty') ?? '',
      rhost: fields.get('rhost') ?? '',
      ruser: fields.get('ruser') ?? '',
      pamPid,
      session,
      unwrap: fields.get('unwrap') === '1',
      debug: fields.get('debug') === '1',
      silent: fields.get('silent') === '1',
    };
    const authtok = secrets.get('authtok');
    if (authtok) req.authtok = authtok;
    const oldauthtok = secrets.get('oldauthtok');
    if (oldauthtok) req.oldauthtok = oldauthtok;
    return req;
  } catch (e) {
    for (const v of secrets.values()) v.fill(0);
    throw e;
  }
}

/** Zeroes the secrets a request carried. */
export function wipeRequest(req: AgentRequest): void {
  req.authtok?.fill(0);
  req.oldauthtok?.fill(0);
}

function oneLine(s: string): string {
  // Messages go to a terminal (root's, after `su - alice`): one line, nothing a terminal acts on
  // (text.ts: C0, C1, bidi controls), bounded length.
  let out = escapeControls(s.replace(/[\n\r\t]+/g, ' ').trim());
  while (Buffer.byteLength(out) > MAX_LINE_BYTES - 16) out = out.slice(0, -1);
  return out;
}

export function renderReply(reply: AgentReply): Buffer {
  const lines = [PROTOCOL_HEADER, `result=${reply.result}`];
  for (const m of reply.info.slice(0, MAX_MESSAGE_LINES)) lines.push(`info=${oneLine(m)}`);
  for (const m of reply.error.slice(0, MAX_MESSAGE_LINES)) lines.push(`error=${oneLine(m)}`);
  if (reply.session !== undefined) {
    if (!SESSION_ID_RE.test(reply.session)) throw new AgentError('USAGE', 'invalid session id in reply');
    lines.push(`session=${reply.session}`);
  }
  lines.push('end');
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

/** Renders a request; used by tests and by the CLI's `pam-test` helper. */
export function renderRequest(req: AgentRequest): Buffer {
  const head = [
    PROTOCOL_HEADER,
    `phase=${req.phase}`,
    `user=${req.user}`,
    `service=${req.service}`,
    `tty=${req.tty}`,
    `rhost=${req.rhost}`,
    `ruser=${req.ruser}`,
    `pam_pid=${req.pamPid}`,
    `session=${req.session}`,
    `unwrap=${req.unwrap ? 1 : 0}`,
    `debug=${req.debug ? 1 : 0}`,
    `silent=${req.silent ? 1 : 0}`,
  ];
  const parts: Buffer[] = [Buffer.from(head.join('\n') + '\n')];
  for (const [name, value] of [['authtok', req.authtok], ['oldauthtok', req.oldauthtok]] as const) {
    if (value) parts.push(Buffer.from(`secret ${name} ${value.length}\n`), value, Buffer.from('\n'));
  }
  parts.push(Buffer.from('end\n'));
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------ a user's own request

/**
 * What a user may ask the resident agent on its user socket (docs/resident-agent.md): unlock or
 * lock their OWN private directory; who they are is the socket's peer credentials, never a field.
 */
export interface UserRequest {
  op: 'unlock' | 'lock';
  /** whose directory the user named (-u); anyone but themself is refused, and logged */
  user?: string;
  /** lock: detach a busy mount lazily */
  force: boolean;
  /** unlock: the passphrase that wraps the mount passphrase (absent when the keys are loaded) */
  passphrase?: Buffer;
}

/** The answer: what the command prints and its exit status. */
export interface UserReply {
  status: number;
  out: string[];
  err: string[];
}

function malformedUser(why: string): AgentError {
  return new AgentError('USAGE', `malformed request to the resident agent: ${why}`, {
    hint: 'The ecryptfs-agent command and the resident agent come from different versions; reinstall ecryptfs-agent',
  });
}

export function parseUserRequest(buf: Buffer): UserRequest {
  const { fields, secrets } = parseMessage(buf, malformedUser);
  const passphrase = secrets.get('passphrase');
  for (const [name, v] of secrets) if (name !== 'passphrase') v.fill(0);
  const op = fields.get('op');
  if (op !== 'unlock' && op !== 'lock') {
    passphrase?.fill(0);
    throw malformedUser(`unknown op "${op ?? ''}"`);
  }
  const req: UserRequest = { op, force: fields.get('force') === '1' };
  const user = fields.get('user');
  if (user !== undefined && user !== '') req.user = user;
  if (passphrase) req.passphrase = passphrase;
  return req;
}

export function renderUserRequest(req: UserRequest): Buffer {
  if (req.user !== undefined && /[\n\0]/.test(req.user)) throw new AgentError('USAGE', 'a user name has no line breaks');
  const parts: Buffer[] = [Buffer.from(`${PROTOCOL_HEADER}\nop=${req.op}\nforce=${req.force ? 1 : 0}\n${req.user !== undefined ? `user=${req.user}\n` : ''}`)];
  if (req.passphrase) parts.push(Buffer.from(`secret passphrase ${req.passphrase.length}\n`), req.passphrase, Buffer.from('\n'));
  parts.push(Buffer.from('end\n'));
  return Buffer.concat(parts);
}

export function renderUserReply(reply: UserReply): Buffer {
  const lines = [PROTOCOL_HEADER, `status=${reply.status}`];
  for (const m of reply.out.slice(0, 4 * MAX_MESSAGE_LINES)) lines.push(`out=${oneLine(m)}`);
  for (const m of reply.err.slice(0, 4 * MAX_MESSAGE_LINES)) lines.push(`err=${oneLine(m)}`);
  lines.push('end');
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

export function parseUserReply(buf: Buffer): UserReply {
  const lines = buf.toString('utf8').split('\n');
  if (lines[0] !== PROTOCOL_HEADER || !lines.includes('end')) throw malformedUser('bad reply');
  const reply: UserReply = { status: 1, out: [], err: [] };
  for (const line of lines.slice(1, lines.indexOf('end'))) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'status' && /^[0-9]$/.test(value)) reply.status = Number(value);
    else if (key === 'out') reply.out.push(value);
    else if (key === 'err') reply.err.push(value);
  }
  return reply;
}
