// Harness for test/host/pam-shim.test.ts: builds the C test driver (tst-retval) and the
// test-only spy module at test time, lays out root-owned fake agents under /run, writes
// PAM service files into a temp confdir (pam_start_confdir) and parses what the driver,
// the spy, the conversation and the (captured) pam_syslog printed.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(__dirname, '..', '..', '..');
export const fixtures = join(repoRoot, 'test', 'fixtures', 'pam');
export const modulePath =
  process.env.ECRYPTFS_AGENT_PAM_MODULE ?? join(repoRoot, 'build', 'Release', 'pam_ecryptfs_agent.so');
/** Fixed directory where agent-marker leaves proof that it was executed. */
export const markerDir = '/run/eat-pam-test-markers';

export const PAM = {
  SUCCESS: 0,
  PERM_DENIED: 6,
  AUTH_ERR: 7,
  BAD_ITEM: 29,
  IGNORE: 25,
} as const;

export interface Harness {
  root: string;
  agents: string;
  dump: string;
  conf: string;
  tst: string;
  spy: string;
}

function mkdirRoot(p: string, mode = 0o755): void {
  mkdirSync(p, { recursive: true });
  chownSync(p, 0, 0);
  chmodSync(p, mode);
}

export function setupHarness(): Harness {
  if (!existsSync(modulePath)) {
    throw new Error(`PAM module not found at ${modulePath} (build it, or set ECRYPTFS_AGENT_PAM_MODULE)`);
  }
  const root = `/run/eat-pam-test-${randomBytes(4).toString('hex')}`;
  const h: Harness = {
    root,
    agents: join(root, 'agents'),
    dump: join(root, 'dump'),
    conf: join(root, 'conf'),
    tst: join(root, 'bin', 'tst-retval'),
    spy: join(root, 'bin', 'pam_tst_spy.so'),
  };
  for (const d of [root, h.agents, h.dump, h.conf, join(root, 'bin'), markerDir]) mkdirRoot(d);
  for (const name of readdirSync(join(fixtures, 'agents'))) {
    const dst = join(h.agents, name);
    copyFileSync(join(fixtures, 'agents', name), dst);
    chownSync(dst, 0, 0);
    chmodSync(dst, 0o755);
  }
  const cflags = ['-O2', '-Wall', '-Wextra', '-Werror'];
  execFileSync('cc', [...cflags, '-rdynamic', '-o', h.tst, join(fixtures, 'tst-retval.c'), '-lpam']);
  execFileSync('cc', [...cflags, '-shared', '-fPIC', '-o', h.spy, join(fixtures, 'pam_tst_spy.c'), '-lpam', '-ldl']);
  return h;
}

export function teardownHarness(h: Harness): void {
  rmSync(h.root, { recursive: true, force: true });
  rmSync(markerDir, { recursive: true, force: true });
}

export const hex = (b: Buffer | string): string => Buffer.from(b).toString('hex');

export function writeService(h: Harness, name: string, lines: string[]): void {
  writeFileSync(join(h.conf, name), lines.join('\n') + '\n');
}

export function clearDump(h: Harness): void {
  for (const f of readdirSync(h.dump)) rmSync(join(h.dump, f), { force: true });
  for (const f of readdirSync(markerDir)) rmSync(join(markerDir, f), { force: true });
}

/** One step in the life of an anonymous mapping a module made (tst-retval interposes the calls). */
export interface MemEvent {
  call: 'mmap' | 'mlock' | 'madvise' | 'munmap';
  id: number;
  len?: number;
  rc?: number;
  advice?: number;
  zeroed?: boolean;
  /** index of the line in stdout: orders it against the hooks' result lines */
  line: number;
}

export const MADV_DONTDUMP = 16;

export interface TstResult {
  pid: number;
  stdout: string;
  /** stdout's lines, in order */
  lines: string[];
  /** stack results: authenticate, setcred, open_session, close_session, chauthtok, start, end, … */
  codes: Record<string, number>;
  /** milliseconds each libpam call took */
  ms: Record<string, number>;
  /** what the spy saw our module return, in call order */
  spy: { hook: string; pass: string; rc: number }[];
  conv: { kind: string; text: string }[];
  syslog: { prio: number; msg: string }[];
  flags: Record<string, string>;
  mem: MemEvent[];
}

export function parseTst(pid: number, stdout: string): TstResult {
  const lines = stdout.split('\n');
  const r: TstResult = { pid, stdout, lines, codes: {}, ms: {}, spy: [], conv: [], syslog: [], flags: {}, mem: [] };
  for (const [i, line] of lines.entries()) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^spy (\S+) (\S+) rc=(-?\d+)$/))) r.spy.push({ hook: m[1], pass: m[2], rc: Number(m[3]) });
    else if ((m = line.match(/^mem (mmap|mlock|madvise|munmap) (\d+)((?: [a-z]+=-?\d+)*)$/))) {
      const e: MemEvent = { call: m[1] as MemEvent['call'], id: Number(m[2]), line: i };
      for (const [, k, v] of m[3].matchAll(/ ([a-z]+)=(-?\d+)/g)) {
        if (k === 'zeroed') e.zeroed = v === '1';
        else if (k === 'len' || k === 'rc' || k === 'advice') e[k] = Number(v);
      }
      r.mem.push(e);
    }
    else if ((m = line.match(/^conv (\S+) (.*)$/))) r.conv.push({ kind: m[1], text: m[2] });
    else if ((m = line.match(/^syslog (\d+) (.*)$/))) r.syslog.push({ prio: Number(m[1]), msg: m[2] });
    else if ((m = line.match(/^([a-z_]+)=(-?\d+)(?: (\d+)ms)?/))) {
      r.codes[m[1]] = Number(m[2]);
      if (m[3] !== undefined) r.ms[m[1]] = Number(m[3]);
    } else if ((m = line.match(/^([a-z_]+)=(\S+)$/))) r.flags[m[1]] = m[2];
  }
  return r;
}

/** The stdout line index of a hook's result line ("open_session=0 12ms …"), -1 when absent. */
export function resultLine(r: TstResult, hook: string, nth = 0): number {
  let seen = 0;
  for (const [i, l] of r.lines.entries()) {
    if (l.startsWith(`${hook}=`) && seen++ === nth) return i;
  }
  return -1;
}

/** CAP_SYS_RESOURCE (bit 24) in this process's effective set: needed to raise a hard rlimit. */
export function hasCapSysResource(): boolean {
  const m = readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\s+([0-9a-f]+)$/m);
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << 24n)) !== 0n;
}

/** Runs tst-retval; onStart is called with the driver's pid while it runs. */
export function runTst(
  h: Harness,
  service: string,
  args: string[],
  user = 'root',
  onStart?: (pid: number) => Promise<void>,
): Promise<TstResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(h.tst, [h.conf, service, user, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const started = onStart ? onStart(child.pid as number) : Promise.resolve();
    started.catch(() => undefined); // reported from 'close' below
    child.on('error', reject);
    child.on('close', (code, signal) => {
      started.then(
        () => {
          if (code !== 0) reject(new Error(`tst-retval exited ${code ?? signal}: ${err}\n${out}`));
          else resolvePromise(parseTst(child.pid as number, out));
        },
        reject,
      );
    });
  });
}

export interface Dump {
  pid: number;
  req: Buffer;
  argv?: string[];
  env?: string;
  status?: string;
  stat?: string;
  cwd?: string;
  /** agent-state: /proc/PID/limits and oom_score_adj */
  limits?: string;
  oom?: string;
}

export function readDumps(h: Harness): Dump[] {
  const out: Dump[] = [];
  for (const f of readdirSync(h.dump)) {
    const m = f.match(/^(\d+)\.req$/);
    if (!m) continue;
    const pid = Number(m[1]);
    const opt = (ext: string): Buffer | undefined => {
      const p = join(h.dump, `${pid}.${ext}`);
      return existsSync(p) ? readFileSync(p) : undefined;
    };
    const argv = opt('argv');
    out.push({
      pid,
      req: readFileSync(join(h.dump, f)),
      argv: argv ? argv.toString('utf8').split('\0').slice(0, -1) : undefined,
      env: opt('env')?.toString('utf8'),
      status: opt('status')?.toString('utf8'),
      stat: opt('stat')?.toString('utf8'),
      cwd: opt('cwd')?.toString('utf8').trim(),
      limits: opt('limits')?.toString('utf8'),
      oom: opt('oom')?.toString('utf8'),
    });
  }
  return out;
}

export interface ParsedRequest {
  keys: string[];
  fields: Record<string, string>;
  secrets: Record<string, Buffer>;
}

/** Strict parser of a protocol v1 request (throws on anything unexpected). */
export function parseRequest(buf: Buffer): ParsedRequest {
  const r: ParsedRequest = { keys: [], fields: {}, secrets: {} };
  let off = 0;
  const line = (): string => {
    const nl = buf.indexOf(0x0a, off);
    if (nl < 0) throw new Error('unterminated line');
    const s = buf.subarray(off, nl).toString('utf8');
    off = nl + 1;
    return s;
  };
  if (line() !== 'ECRYPTFS-AGENT 1') throw new Error('bad header');
  for (;;) {
    const l = line();
    if (l === 'end') break;
    const sm = l.match(/^secret ([a-z]+) (\d+)$/);
    if (sm) {
      const n = Number(sm[2]);
      r.secrets[sm[1]] = Buffer.from(buf.subarray(off, off + n));
      off += n;
      if (buf[off] !== 0x0a) throw new Error('secret not followed by a newline');
      off += 1;
      r.keys.push(`secret:${sm[1]}`);
      continue;
    }
    const fm = l.match(/^([a-z_]+)=(.*)$/);
    if (!fm) throw new Error(`bad line ${JSON.stringify(l)}`);
    r.fields[fm[1]] = fm[2];
    r.keys.push(fm[1]);
  }
  if (off !== buf.length) throw new Error('data after end');
  return r;
}

export interface ExpectedFields {
  phase: string;
  user: string;
  service: string;
  tty?: string;
  rhost?: string;
  ruser?: string;
  pam_pid: number;
  session?: string;
  unwrap?: boolean;
  debug?: boolean;
  silent?: boolean;
}

/** The exact bytes docs/protocol.md prescribes. */
export function expectedRequest(f: ExpectedFields, secrets: [string, Buffer][] = []): Buffer {
  const head =
    'ECRYPTFS-AGENT 1\n' +
    `phase=${f.phase}\nuser=${f.user}\nservice=${f.service}\n` +
    `tty=${f.tty ?? ''}\nrhost=${f.rhost ?? ''}\nruser=${f.ruser ?? ''}\n` +
    `pam_pid=${f.pam_pid}\nsession=${f.session ?? ''}\n` +
    `unwrap=${f.unwrap ? 1 : 0}\ndebug=${f.debug ? 1 : 0}\nsilent=${f.silent ? 1 : 0}\n`;
  const parts: Buffer[] = [Buffer.from(head)];
  for (const [name, value] of secrets) {
    parts.push(Buffer.from(`secret ${name} ${value.length}\n`), value, Buffer.from('\n'));
  }
  parts.push(Buffer.from('end\n'));
  return Buffer.concat(parts);
}

/** Lines of a service file stacking our module (direct, or wrapped by the spy). */
export interface StackOptions {
  control: string; // optional | required | …
  ours: string; // module spec, e.g. ourLine(h, 'spy', 'agent=…')
  /** our auth / session lines when they differ from `ours` (e.g. `unwrap` on one of them) */
  oursAuth?: string;
  oursSession?: string;
  authtok?: Buffer;
  oldauthtok?: Buffer;
  /** PAM_AUTHTOK per pam_authenticate call of the handle (null: unset); overrides authtok at auth */
  authtoks?: (Buffer | null)[];
}

/**
 * Starts with `socket=none`: a resident agent that happens to run on this host
 * (/run/ecryptfs-agent/agent.sock) must not serve these stacks. A test of the socket passes its
 * own `socket=` in args: the last one wins.
 */
export function ours(h: Harness, how: 'spy' | 'direct', args: string): string {
  return how === 'spy' ? `${h.spy} module=${modulePath} -- socket=none ${args}` : `${modulePath} socket=none ${args}`;
}

let tokN = 0;
/** Tokens go to the spy in files (a PAM config line cannot hold 2 × 512 bytes of hex). */
export function tokFile(h: Harness, tok: Buffer): string {
  const p = join(h.root, `tok-${++tokN}`);
  writeFileSync(p, tok, { mode: 0o600 });
  return p;
}

function tokArgs(h: Harness, o: StackOptions, pw: boolean): string {
  const a: string[] = [];
  if (o.authtok) a.push(`authtok=@${tokFile(h, o.authtok)}`);
  if (!pw && o.authtoks) a.push(`authtoks=${o.authtoks.map((t) => (t === null ? '-' : `@${tokFile(h, t)}`)).join(',')}`);
  if (pw && o.oldauthtok) a.push(`oldauthtok=@${tokFile(h, o.oldauthtok)}`);
  return a.join(' ');
}

/** Our module between pam_debug.so neighbours that succeed: the stack result must stay 0. */
export function neighbourStack(h: Harness, o: StackOptions): string[] {
  return [
    `auth     required ${h.spy} ${tokArgs(h, o, false)}`,
    'auth     required pam_debug.so auth=success cred=success',
    `auth     ${o.control} ${o.oursAuth ?? o.ours}`,
    'account  required pam_debug.so acct=success',
    `password required ${h.spy} ${tokArgs(h, o, true)}`,
    `password ${o.control} ${o.ours}`,
    'password required pam_debug.so prechauthtok=success chauthtok=success',
    'session  required pam_debug.so open_session=success close_session=success',
    `session  ${o.control} ${o.oursSession ?? o.ours}`,
  ];
}

/** Our module alone (the spy lines only set tokens and return PAM_IGNORE). */
export function aloneStack(h: Harness, o: StackOptions): string[] {
  return [
    `auth     required ${h.spy} ${tokArgs(h, o, false)}`,
    `auth     ${o.control} ${o.oursAuth ?? o.ours}`,
    `password required ${h.spy} ${tokArgs(h, o, true)}`,
    `password ${o.control} ${o.ours}`,
    `session  ${o.control} ${o.oursSession ?? o.ours}`,
  ];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitForFile(p: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!existsSync(p) || readFileSync(p, 'utf8').trim() === '') {
    if (Date.now() > end) throw new Error(`timed out waiting for ${p}`);
    await sleep(20);
  }
}

function statOf(pid: string): { state: string; pgrp: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], pgrp: Number(f[2]) };
  } catch {
    return undefined;
  }
}

/** Alive = exists and is not a zombie (this machine's PID 1 reaps orphans lazily). */
export function processAlive(pid: number): boolean {
  const st = statOf(String(pid));
  return st !== undefined && st.state !== 'Z';
}

/** Live (non-zombie) members of a process group. */
export function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      const st = statOf(d);
      return st !== undefined && st.pgrp === pgid && st.state !== 'Z';
    })
    .map(Number);
}
