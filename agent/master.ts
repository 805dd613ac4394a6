/**
 * The resident agent's master (docs/resident-agent.md), run by ecryptfs-agent.service on the
 * sockets of ecryptfs-agent.socket / ecryptfs-agent-user.socket (or, without systemd, on sockets
 * it binds itself: --listen DIR). It never reads a request or a secret. It
 *  - keeps spare workers started (agent/worker.ts: the agent loaded, waiting in accept) so that a
 *    PAM phase pays no Node start-up; a worker serves one connection and exits, the master
 *    starts the next one off the critical path; at most --max-workers at once (a burst beyond
 *    waits in the sockets' backlog, bounded by the socket unit);
 *  - kills a worker still busy after the longest timeout a PAM line can set (the PAM module kills
 *    a worker itself, through the connection, when its own timeout runs out);
 *  - holds a pidfd for the process of every counted session (the records in the state directory,
 *    followed with inotify) and, when one exits with its session still recorded (no
 *    close_session: a killed sshd, a crashed display manager), starts `reap` for it: the close
 *    PAM would have run, so the last one locks ~/Private;
 *  - exits after --idle-exit seconds with no session and no request (socket activation brings it
 *    back); on SIGTERM it stops the spares, lets busy workers finish, then exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, type FSWatcher, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, watch } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseSessions, processStart, type SessionRecord } from '../src/actions/session';
import { createLazyLogger } from '../src/os/log';
import { ensureRootDir } from '../src/os/secure-file';
import { DEFAULT_RUN_DIR, type ListeningSocket, listenAt, openPidfd, PAM_SOCKET_NAME, socketsFromSystemd, USER_SOCKET_NAME, whenReadable } from '../src/os/service';

/** The PAM module's longest `timeout=` (pam/pam_ecryptfs_agent.c MAX_TIMEOUT) plus a margin. */
const BUSY_LIMIT_MS = 330_000;
/** A worker that dies before it is ready: start the next one after this, doubling up to 30 s. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export interface MasterOptions {
  spares: number;
  maxWorkers: number;
  /** 0: never */
  idleExitMs: number;
  /** bind the sockets here instead of taking them from systemd */
  listenDir: string | null;
  stateDir: string;
  /** the agent bundle the workers and reapers run */
  agentScript: string;
}

export function parseMasterArgs(argv: readonly string[]): MasterOptions {
  const o: MasterOptions = {
    spares: 1,
    maxWorkers: 8,
    idleExitMs: 600_000,
    listenDir: null,
    stateDir: DEFAULT_RUN_DIR,
    agentScript: join(__dirname, 'main.js'),
  };
  const num = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !/^[0-9]+$/.test(v) || n < min || n > max) throw new Error(`${name} takes a whole number from ${min} to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--spares') o.spares = num(a, v, 0, 16);
    else if (a === '--max-workers') o.maxWorkers = num(a, v, 1, 64);
    else if (a === '--idle-exit') o.idleExitMs = num(a, v, 0, 86_400) * 1000;
    else if (a === '--listen') o.listenDir = v ?? '';
    else if (a === '--state-dir') o.stateDir = v ?? '';
    else throw new Error(`unknown option ${a}`);
    i++;
  }
  if (o.listenDir === '' || o.stateDir === '') throw new Error('--listen and --state-dir take a directory');
  if (o.spares > o.maxWorkers) o.spares = o.maxWorkers;
  return o;
}

type WorkerState = 'starting' | 'ready' | 'busy';

interface Worker {
  child: ChildProcess;
  state: WorkerState;
  /** what it serves once busy ("pam 0", "user 1000"): named when it dies serving it */
  request?: string;
  timer?: NodeJS.Timeout;
}

interface WatchedSession {
  uid: number;
  record: SessionRecord;
  pidfd: number;
  stop: () => void;
}

/** A clean environment: nothing of whoever started the master reaches a worker. */
const WORKER_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', NODE_ENV: 'production' };

export class Master {
  private readonly workers = new Map<number, Worker>();
  private readonly sessions = new Map<string, WatchedSession>();
  private readonly reaping = new Set<string>();
  private readonly log = createLazyLogger({ stderr: false });
  private backoffMs = 0;
  private backoffTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private stateWatcher: FSWatcher | undefined;
  private stopping = false;

  constructor(
    private readonly opts: MasterOptions,
    private readonly sockets: readonly ListeningSocket[],
    /** socket files this master bound itself (--listen): removed when it exits */
    private readonly boundPaths: readonly string[] = [],
  ) {}

  start(): void {
    this.watchStateDir();
    this.log.info('resident agent started', { sockets: this.sockets.map((s) => s.kind).join(','), spares: this.opts.spares, sessions: this.sessions.size });
    this.ensureSpares();
    this.checkIdle();
  }

  // ---------------------------------------------------------------- workers

  private ensureSpares(): void {
    if (this.stopping || this.backoffTimer) return;
    const waiting = [...this.workers.values()].filter((w) => w.state !== 'busy').length;
    for (let n = waiting; n < this.opts.spares && this.workers.size < this.opts.maxWorkers; n++) this.startWorker();
  }

  private startWorker(): void {
    // child fds: 3 = status pipe, 4.. = the listening sockets
    const args = this.sockets.map((s, i) => `${4 + i}:${s.kind}`);
    // --v8-pool-size=0: no V8 helper threads. Every set*id call of a worker (its uid switches to act
    // as the user) is broadcast by glibc to each thread of the process, so fewer threads make each
    // switch cheaper; a worker's one short request needs no background compiling or GC threads.
    const child = spawn(process.execPath, ['--v8-pool-size=0', this.opts.agentScript, 'worker', ...args], {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe', ...this.sockets.map((s) => s.fd)],
      env: WORKER_ENV,
      cwd: '/',
    });
    const pid = child.pid;
    if (pid === undefined) {
      this.workerFailed('spawn failed');
      return;
    }
    const w: Worker = { child, state: 'starting' };
    this.workers.set(pid, w);
    const status = child.stdio[3];
    if (status && 'on' in status) {
      createInterface({ input: status as NodeJS.ReadableStream }).on('line', (line) => this.onStatus(pid, line));
    }
    child.on('exit', (code, signal) => this.onExit(pid, code, signal));
    child.on('error', () => undefined); // reported by 'exit'
  }

  private onStatus(pid: number, line: string): void {
    const w = this.workers.get(pid);
    if (!w) return;
    if (line === 'ready') {
      w.state = 'ready';
      this.backoffMs = 0;
      return;
    }
    if (line.startsWith('busy ')) {
      w.state = 'busy';
      w.request = line.slice(5);
      this.clearIdle();
      w.timer = setTimeout(() => {
        this.log.warning('worker still busy after the longest PAM timeout: killed', { worker: pid, request: line.slice(5) });
        w.child.kill('SIGKILL');
      }, BUSY_LIMIT_MS);
      this.ensureSpares();
    }
  }

  private onExit(pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    const w = this.workers.get(pid);
    this.workers.delete(pid);
    if (w?.timer) clearTimeout(w.timer);
    if (w && w.state !== 'busy' && !this.stopping) this.workerFailed(`exited before a request (${signal ?? `status ${code}`})`);
    // The PAM module saw only a hang-up (and logged it, and told the user); the cause is said here.
    if (w?.state === 'busy' && signal !== null) this.log.error(`a worker was killed by ${signal} while serving a request`, { worker: pid, request: w.request, outcome: 'worker-killed' });
    if (this.stopping) {
      if (this.workers.size === 0) process.exit(0);
      return;
    }
    this.ensureSpares();
    this.checkIdle();
  }

  private workerFailed(why: string): void {
    this.backoffMs = this.backoffMs === 0 ? FIRST_BACKOFF_MS : Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.log.error(`a worker ${why}; next one in ${this.backoffMs} ms`, { outcome: 'worker-failed' });
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.ensureSpares();
    }, this.backoffMs);
  }

  // ---------------------------------------------------------------- sessions

  private watchStateDir(): void {
    try {
      mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o755 });
      this.stateWatcher = watch(this.opts.stateDir, (_event, name) => {
        const m = /^([0-9]+)\.sessions$/.exec(String(name ?? ''));
        if (m) this.rescan(Number(m[1]));
      });
    } catch (e) {
      this.log.error(`cannot follow the session records in ${this.opts.stateDir}: ${(e as Error).message}`, { outcome: 'no-session-watch' });
    }
    let names: string[] = [];
    try {
      names = readdirSync(this.opts.stateDir);
    } catch {
      // nothing recorded yet
    }
    for (const name of names) {
      const m = /^([0-9]+)\.sessions$/.exec(name);
      if (m) this.rescan(Number(m[1]));
    }
  }

  private static key(uid: number, id: string): string {
    return `${uid}:${id}`;
  }

  private readRecords(uid: number): SessionRecord[] {
    try {
      return parseSessions(readFileSync(join(this.opts.stateDir, `${uid}.sessions`), 'utf8'));
    } catch {
      return [];
    }
  }

  /** Brings the pidfds of uid's sessions in line with its record file. */
  private rescan(uid: number): void {
    if (this.stopping) return;
    const records = this.readRecords(uid);
    const keys = new Set(records.map((r) => Master.key(uid, r.id)));
    for (const [k, s] of this.sessions) {
      if (s.uid === uid && !keys.has(k)) this.unwatch(k);
    }
    for (const r of records) {
      const k = Master.key(uid, r.id);
      if (!this.sessions.has(k) && !this.reaping.has(k)) this.watchSession(uid, r);
    }
    this.checkIdle();
  }

  private watchSession(uid: number, r: SessionRecord): void {
    const k = Master.key(uid, r.id);
    let pidfd: number | null;
    try {
      pidfd = openPidfd(r.pid);
    } catch (e) {
      this.log.error(`cannot watch session ${r.id} (pid ${r.pid}): ${(e as Error).message}`, { uid });
      return;
    }
    // the pidfd pins the process; its start time says it is the one that opened the session
    if (pidfd === null || processStart(r.pid) !== r.start) {
      if (pidfd !== null) closeSync(pidfd);
      this.reap(uid, r);
      return;
    }
    const fd = pidfd;
    const stop = whenReadable(fd, () => {
      this.sessions.delete(k);
      closeSync(fd);
      // its close_session may have just removed it: only a session still recorded is reaped
      if (this.readRecords(uid).some((x) => x.id === r.id)) this.reap(uid, r);
      this.checkIdle();
    });
    this.sessions.set(k, { uid, record: r, pidfd: fd, stop });
    this.clearIdle();
  }

  private unwatch(k: string): void {
    const s = this.sessions.get(k);
    if (!s) return;
    s.stop();
    closeSync(s.pidfd);
    this.sessions.delete(k);
  }

  private reap(uid: number, r: SessionRecord): void {
    const k = Master.key(uid, r.id);
    if (this.reaping.has(k) || this.stopping) return;
    this.reaping.add(k);
    this.clearIdle();
    const child = spawn(process.execPath, [this.opts.agentScript, 'reap', String(uid), r.id, String(r.pid), r.start], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: WORKER_ENV,
      cwd: '/',
    });
    const done = (): void => {
      this.reaping.delete(k);
      this.rescan(uid);
    };
    child.on('exit', done);
    child.on('error', (e) => {
      this.log.error(`cannot start the close of session ${r.id}: ${e.message}`, { uid });
      done();
    });
  }

  // ---------------------------------------------------------------- lifetime

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private checkIdle(): void {
    if (this.opts.idleExitMs === 0 || this.stopping || this.idleTimer) return;
    const busy = [...this.workers.values()].some((w) => w.state === 'busy');
    if (busy || this.sessions.size > 0 || this.reaping.size > 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      const stillIdle = ![...this.workers.values()].some((w) => w.state === 'busy') && this.sessions.size === 0 && this.reaping.size === 0;
      if (stillIdle) {
        this.log.info('no session and no request for a while: exiting (socket activation starts it again)', { idle_s: this.opts.idleExitMs / 1000 });
        this.stop();
      }
    }, this.opts.idleExitMs);
    this.idleTimer.unref?.();
  }

  /** Stops the spares at once; busy workers finish (bounded by BUSY_LIMIT_MS); then exits. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    // no new connection to a master that is going (the PAM module spawns the agent instead)
    for (const p of this.boundPaths) rmSync(p, { force: true });
    this.clearIdle();
    this.stateWatcher?.close();
    for (const k of [...this.sessions.keys()]) this.unwatch(k);
    for (const w of this.workers.values()) if (w.state !== 'busy') w.child.kill('SIGTERM');
    if (this.workers.size === 0) process.exit(0);
  }

  /** For `status`-like reporting and tests. */
  snapshot(): { workers: Record<WorkerState, number>; sessions: number; reaping: number } {
    const workers: Record<WorkerState, number> = { starting: 0, ready: 0, busy: 0 };
    for (const w of this.workers.values()) workers[w.state]++;
    return { workers, sessions: this.sessions.size, reaping: this.reaping.size };
  }
}

/**
 * The directory of the sockets, 0755 root: users must reach user.sock in it. It is also the
 * agents' state directory, which a spawned agent that ran before the sockets existed made 0700
 * (the files in it are 0600 each; only their names become visible).
 */
function socketDirReachable(dir: string): void {
  ensureRootDir(dir, 0o755, { exactMode: true });
}

/** The sockets bound here (no systemd): DIR 0755 root; agent.sock 0600, user.sock 0666. */
function bindSockets(dir: string): { sockets: ListeningSocket[]; paths: string[] } {
  socketDirReachable(dir);
  const out: ListeningSocket[] = [];
  for (const [name, kind] of [
    [PAM_SOCKET_NAME, 'pam'],
    [USER_SOCKET_NAME, 'user'],
  ] as const) {
    const path = join(dir, name);
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path); // a previous master's
    } catch {
      // not there
    }
    out.push(listenAt(path, kind));
  }
  return { sockets: out, paths: [PAM_SOCKET_NAME, USER_SOCKET_NAME].map((n) => join(dir, n)) };
}

function main(argv: readonly string[]): void {
  if (process.geteuid?.() !== 0) {
    process.stderr.write('ecryptfs-agent master: must run as root (ecryptfs-agent.service)\n');
    process.exit(2);
  }
  let opts: MasterOptions;
  try {
    opts = parseMasterArgs(argv);
  } catch (e) {
    process.stderr.write(`ecryptfs-agent master: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let bound: { sockets: ListeningSocket[]; paths: string[] };
  try {
    if (opts.listenDir === null) socketDirReachable(DEFAULT_RUN_DIR); // systemd made the sockets there
    bound = opts.listenDir === null ? { sockets: socketsFromSystemd(), paths: [] } : bindSockets(opts.listenDir);
  } catch (e) {
    process.stderr.write(`ecryptfs-agent master: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const { sockets } = bound;
  if (!sockets.some((s) => s.kind === 'pam')) {
    process.stderr.write('ecryptfs-agent master: no PAM socket (not started by ecryptfs-agent.socket; use --listen DIR)\n');
    process.exit(2);
  }
  process.umask(0o022);
  const master = new Master(opts, sockets, bound.paths);
  process.on('SIGTERM', () => master.stop());
  process.on('SIGINT', () => master.stop());
  master.start();
}

if (require.main === module) main(process.argv.slice(2));
