/**
 * Secret hygiene of the session agent, against the running process and the system:
 *  - the agent is non-dumpable and has RLIMIT_CORE 0 before it reads a secret: it is held
 *    mid-request (the request pipe stays open, the secret already written) and inspected through
 *    /proc. Root's /proc files are root's anyway, so dumpability is proven with the agent started
 *    as an ordinary user: its /proc/PID files then belong to root (the kernel's task_dump_owner
 *    for a non-dumpable task) and that user cannot read its environ, unlike a control process;
 *  - full auth / open_session / chauthtok / close_session cycles, through the agent directly and
 *    through pamtester with the real shim, while a poller scans every /proc/*\/cmdline and
 *    environ: the password, the new password and the mount passphrase are in no syslog line
 *    (captured at /dev/log), no cmdline or environment, no file under /tmp /run /var/tmp /dev/shm.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { renderRequest, type AgentRequest } from '../../src/formats/protocol';
import { AGENT, REPO, parseReply } from '../helpers/agent';
import { SyslogCapture } from '../helpers/syslog';
import { createUser, deleteUser, setupPrivateWithUtils, type TestUser, type UtilsSetup } from '../helpers/users';

const MODULE = process.env.ECRYPTFS_AGENT_PAM_MODULE ?? join(REPO, 'build', 'Release', 'pam_ecryptfs_agent.so');
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/**
 * Polls /proc/*\/cmdline and environ (as root) until stopped; the needles come on stdin so they
 * are not in the poller's own cmdline. Reports hits and how many agent processes it saw alive.
 */
class ProcScanner {
  private proc: ChildProcess | undefined;
  private out = '';
  start(needles: string[]): void {
    const py = [
      'import os,sys,json,signal',
      'needles=[l.encode() for l in sys.stdin.read().split("\\n") if l]',
      'me=str(os.getpid()); hits=set(); agents=set(); rounds=0; stop=[False]',
      'signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))',
      'while not stop[0]:',
      '  rounds+=1',
      '  for p in os.listdir("/proc"):',
      '    if not p.isdigit() or p==me: continue',
      '    for f in ("cmdline","environ"):',
      '      try:',
      '        with open("/proc/"+p+"/"+f,"rb") as fh: d=fh.read()',
      '      except OSError: continue',
      '      if f=="cmdline" and b"dist/agent/main.js\\0pam" in d: agents.add(p)',
      '      for n in needles:',
      '        if n in d: hits.add(p+"/"+f+": "+d[:80].decode("utf8","replace"))',
      'print(json.dumps({"hits":sorted(hits),"agents":len(agents),"rounds":rounds}),flush=True)',
    ].join('\n');
    this.proc = spawn('python3', ['-c', py], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc.stdout!.on('data', (d) => (this.out += d));
    this.proc.stdin!.end(needles.join('\n') + '\n');
  }
  async stop(): Promise<{ hits: string[]; agents: number; rounds: number }> {
    const done = new Promise((r) => this.proc!.once('exit', r));
    this.proc!.kill('SIGTERM');
    await done;
    return JSON.parse(this.out) as { hits: string[]; agents: number; rounds: number };
  }
}

const users: TestUser[] = [];
const services: string[] = [];
const syslog = new SyslogCapture();
let capturing = false;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  capturing = await syslog.start();
});
after(() => {
  syslog.stop();
  for (const u of users) deleteUser(u);
  for (const s of services) rmSync(`/etc/pam.d/${s}`, { force: true });
});

/** Starts the agent (optionally as uid) and writes a request up to and including the secret, without `end`. */
function heldAgent(user: string, secret: Buffer, asUid?: number): ChildProcess {
  const cmd = asUid === undefined ? [AGENT, 'pam'] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', AGENT, 'pam'];
  const child = spawn(cmd[0]!, cmd.slice(1), { env: ENV, stdio: ['pipe', 'pipe', 'pipe'] });
  const req = renderRequest({ phase: 'open_session', user, service: 'eat-secrets', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: true, silent: false, authtok: secret });
  child.stdin!.write(req.subarray(0, req.length - 'end\n'.length));
  return child;
}

/** Waits until the agent has hardened itself (RLIMIT_CORE 0 is set right after PR_SET_DUMPABLE 0). */
async function hardened(pid: number): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    if (/^Max core file size\s+0\s+0\s/m.test(limits)) return limits;
    await sleep(25);
  }
  throw new Error(`agent ${pid} never set RLIMIT_CORE 0`);
}

async function finish(child: ChildProcess): Promise<string> {
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin!.end('end\n');
  await exited;
  return out;
}

describe('the running agent', () => {
  test('as root, holding a secret mid-request: RLIMIT_CORE 0, the secret in locked memory (VmLck), no secret in cmdline/environ; coredump_filter reported', async (t) => {
    const secret = Buffer.from(`held-secret-${randomBytes(8).toString('hex')}`);
    const child = heldAgent('eat-nobody-held', secret);
    try {
      const limits = await hardened(child.pid!);
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const filter = readFileSync(`/proc/${child.pid}/coredump_filter`, 'utf8').trim();
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`);
      const environ = readFileSync(`/proc/${child.pid}/environ`);
      const line = (re: RegExp, s: string) => (re.exec(s)?.[0] ?? '').replace(/\s+/g, ' ');
      t.diagnostic(`limits: ${line(/^Max core file size.*$/m, limits)}; status: ${line(/^Uid:.*$/m, status)}; coredump_filter ${filter}; /proc/PID/status owner uid ${statSync(`/proc/${child.pid}/status`).uid}`);
      t.diagnostic(`cmdline: ${JSON.stringify(cmdline.toString().split('\0').filter(Boolean))}; environ: ${JSON.stringify(environ.toString().split('\0').filter(Boolean))}`);
      assert.match(limits, /^Max core file size\s+0\s+0\s+bytes/m);
      // the request (with the password) is read into pages of its own, locked in RAM: 16 KiB + 1
      const vmlck = Number(/^VmLck:\s*(\d+)\s*kB/m.exec(status)?.[1]);
      t.diagnostic(`VmLck ${vmlck} kB while the agent reads a request holding a password`);
      assert.ok(vmlck >= 20, `VmLck ${vmlck} kB: the request buffer is locked`);
      assert.ok(!cmdline.includes(secret) && !environ.includes(secret));
      assert.deepEqual(environ.toString().split('\0').filter(Boolean).sort(), ['LANG=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    } finally {
      const reply = parseReply(await finish(child));
      assert.equal(reply.result, 'ignore');
    }
  });

  test('PR_SET_DUMPABLE 0: started as a user, its /proc files are root\'s and the user cannot read them; a control process is not', async (t) => {
    const u = createUser('eatsec');
    users.push(u);
    const control = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', 'sleep', '30']);
    const child = heldAgent(u.name, Buffer.from('x'), u.uid);
    try {
      await hardened(child.pid!);
      const pid = child.pid!;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${u.uid}\\s+${u.uid}\\s+${u.uid}\\s+${u.uid}$`, 'm'), 'the agent really runs as the user');
      for (const f of ['status', 'environ', 'mem', 'maps']) assert.equal(statSync(`/proc/${pid}/${f}`).uid, 0, `/proc/PID/${f} owned by root: not dumpable`);
      await sleep(100);
      assert.equal(statSync(`/proc/${control.pid}/environ`).uid, u.uid, 'control: a dumpable process of the user owns its /proc files');
      const asUser = (f: string) => spawnSync('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', 'cat', f], { encoding: 'utf8' });
      const denied = asUser(`/proc/${pid}/environ`);
      const allowed = asUser(`/proc/${control.pid}/environ`);
      t.diagnostic(`user reads agent environ: status ${denied.status} ${denied.stderr.trim()}; control environ: status ${allowed.status}`);
      assert.notEqual(denied.status, 0);
      assert.match(denied.stderr, /Permission denied/);
      assert.equal(allowed.status, 0);
    } finally {
      control.kill('SIGKILL');
      const reply = parseReply(await finish(child));
      assert.equal(reply.result, 'ignore', 'as a non-root user it refuses to work');
    }
  });
});

describe('no trace of secrets after full cycles', () => {
  let u: TestUser;
  let s: UtilsSetup;
  const newPw = `new-pw-${randomBytes(6).toString('hex')}`;
  const resetPw = `reset-pw-${randomBytes(6).toString('hex')}`;
  let scan: { hits: string[]; agents: number; rounds: number };
  let logs: string[] = [];

  before(async () => {
    u = createUser('eatsec');
    users.push(u);
    s = setupPrivateWithUtils(u);
    const needles = [u.password, s.mountPassphrase, newPw, resetPw];
    const scanner = new ProcScanner();
    scanner.start(needles);
    await sleep(300);
    const mark = syslog.msgs.length;
    try {
      // 1. the agent directly: auth (a no-op), open (unlocks), chauthtok (old → new), close
      const run = (req: Partial<AgentRequest> & Pick<AgentRequest, 'phase' | 'user'>) => {
        const r = spawnSync(AGENT, ['pam'], {
          input: renderRequest({ service: 'eat-secrets', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: true, silent: false, ...req }),
          env: ENV,
        });
        return parseReply(r.stdout.toString());
      };
      run({ phase: 'auth', user: u.name, authtok: Buffer.from(u.password) });
      const open = run({ phase: 'open_session', user: u.name, authtok: Buffer.from(u.password) });
      assert.match(open.error.join(' '), /could not be mounted/, 'the cycle got as far as mount(2)');
      assert.equal(run({ phase: 'chauthtok', user: u.name, oldauthtok: Buffer.from(u.password), authtok: Buffer.from(newPw) }).result, 'success');
      run({ phase: 'close_session', user: u.name, session: open.session ?? '' });

      // 2. pamtester with the real shim: pam_unix then ours, auth+open+close, then a root reset (chauthtok)
      const svc = `eat-secrets-${randomBytes(3).toString('hex')}`;
      services.push(svc);
      // socket=none: the spawned agents are what this test watches, not a resident agent the host may run
      const ours = `${MODULE} debug agent=${AGENT} timeout=60 socket=none`;
      writeFileSync(`/etc/pam.d/${svc}`, [
        'auth     required  pam_unix.so',
        `auth     optional  ${ours} unwrap`,
        'account  required  pam_unix.so',
        'session  required  pam_unix.so',
        `session  optional  ${ours}`,
        'password required  pam_unix.so',
        `password optional  ${ours}`,
        '',
      ].join('\n'));
      spawnSync('chpasswd', [], { input: `${u.name}:${newPw}\n` });
      const login = spawnSync('pamtester', [svc, u.name, 'authenticate', 'open_session', 'close_session'], { input: `${newPw}\n`, encoding: 'utf8', env: ENV });
      assert.equal(login.status, 0, login.stdout + login.stderr);
      assert.match(login.stdout + login.stderr, /could not be mounted/, 'our agent ran through the shim');
      const reset = spawnSync('pamtester', [svc, u.name, 'chauthtok'], { input: `${resetPw}\n${resetPw}\n`, encoding: 'utf8', env: ENV });
      assert.equal(reset.status, 0, reset.stdout + reset.stderr);
      assert.match(reset.stdout + reset.stderr, /still wrapped with the old password/);
      await sleep(300);
    } finally {
      scan = await scanner.stop();
      logs = syslog.msgs.slice(mark);
    }
  });

  test('no /proc/*/cmdline or environ held a secret while the agents ran', (t) => {
    t.diagnostic(`poller: ${scan.rounds} rounds over /proc, saw ${scan.agents} agent processes alive`);
    assert.ok(scan.agents >= 6, `the poller saw the agents running (${scan.agents})`);
    assert.deepEqual(scan.hits, []);
  });

  test('no syslog line holds a secret (agent, shim, pam_unix)', (t) => {
    if (!capturing) return t.skip('/dev/log busy: another listener held it');
    const agentLines = logs.filter((l) => l.includes('ecryptfs-agent['));
    const shimLines = logs.filter((l) => l.includes('pam_ecryptfs_agent'));
    t.diagnostic(`${logs.length} syslog lines captured (${agentLines.length} from the agent, ${shimLines.length} from the shim)`);
    assert.ok(agentLines.length >= 6, `the agent logged the cycles (${agentLines.length} lines)`);
    for (const l of logs) for (const n of [u.password, s.mountPassphrase, newPw, resetPw]) assert.ok(!l.includes(n), `secret in: ${l}`);
  });

  test('no file under /tmp /run /var/tmp /dev/shm holds a secret', () => {
    const dirs = ['/tmp', '/run', '/var/tmp', '/dev/shm'].filter((d) => existsSync(d));
    const args = ['-rlaF', '--no-messages', '-D', 'skip'];
    for (const n of [u.password, s.mountPassphrase, newPw, resetPw]) args.push('-e', n);
    const grep = spawnSync('grep', [...args, ...dirs], { encoding: 'utf8' });
    assert.equal(grep.stdout, '', 'no file holds a secret');
  });
});
