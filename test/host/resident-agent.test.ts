/**
 * The resident agent on the host (docs/resident-agent.md): the master bound on the real state
 * directory (/run/ecryptfs-agent, as ecryptfs-agent.socket would), its workers, the user socket,
 * the session reaper and the master's own lifetime, against the real keyring and kernel. The
 * mount itself (no eCryptfs module here) and the PAM module's side are proven in the VM and in
 * pam-shim.test.ts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { renderRequest, type AgentRequest } from '../../src/formats/protocol';
import { AGENT, parseReply, REPO, runAgent, type ParsedReply } from '../helpers/agent';
import { SyslogCapture } from '../helpers/syslog';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, userKeys, type TestUser } from '../helpers/users';

const RUN = '/run/ecryptfs-agent';
const PAM_SOCK = join(RUN, 'agent.sock');
const USER_SOCK = join(RUN, 'user.sock');
const MASTER = join(REPO, 'dist', 'agent', 'master.js');
const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const users: TestUser[] = [];
function newUser(opts: { autoMount?: boolean } = {}): TestUser {
  const u = createUser('eatra');
  users.push(u);
  setupPrivateWithUtils(u, { fnek: true, ...opts });
  return u;
}

let master: ChildProcess | undefined;
async function startMaster(args: string[] = []): Promise<ChildProcess> {
  const m = spawn(process.execPath, [MASTER, '--listen', RUN, '--idle-exit', '0', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 200 && !existsSync(PAM_SOCK); i++) await sleep(25);
  // a spare is ready once it is in accept: until then connections wait in the backlog anyway
  return m;
}
async function stopMaster(m: ChildProcess | undefined): Promise<void> {
  if (!m || m.exitCode !== null) return;
  const gone = new Promise((r) => m.once('exit', r));
  m.kill('SIGTERM');
  await gone;
}

function workerPids(): number[] {
  const r = spawnSync('pgrep', ['-f', `${AGENT} worker`]);
  return r.stdout.toString().split('\n').filter(Boolean).map(Number);
}

function request(req: Partial<AgentRequest> & Pick<AgentRequest, 'phase' | 'user'>): Buffer {
  return renderRequest({ service: 'eat-test', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: true, silent: false, ...req });
}

/** One exchange on a socket: the whole request, then the reply up to EOF. */
function exchange(path: string, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = createConnection(path);
    s.on('connect', () => s.end(body));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}
const ask = async (req: Partial<AgentRequest> & Pick<AgentRequest, 'phase' | 'user'>): Promise<ParsedReply> => parseReply(await exchange(PAM_SOCK, request(req)));

function sessionIds(u: TestUser): string[] {
  const f = join(RUN, `${u.uid}.sessions`);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id) : [];
}

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (let i = 0; i < ms / 50; i++) {
    if (cond()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  assert.ok(!existsSync(PAM_SOCK), `${PAM_SOCK} exists: a resident agent already runs here; stop it for this suite`);
  // as a spawned agent of an earlier version left it: the master must open it to users
  mkdirSync(RUN, { recursive: true });
  chmodSync(RUN, 0o700);
  master = await startMaster();
});
after(async () => {
  await stopMaster(master);
  rmSync(PAM_SOCK, { force: true });
  rmSync(USER_SOCK, { force: true });
  for (const u of users) deleteUser(u);
});

describe('sockets and workers', () => {
  test('the socket directory is 0755 root although a spawned agent made it 0700 first: users reach user.sock', () => {
    const st = statSync(RUN);
    assert.equal(st.mode & 0o7777, 0o755);
    assert.equal(st.uid, 0);
  });

  test('the PAM socket is root-only (0600), the user socket open to all (0666), in a 0755 root directory', () => {
    assert.equal(statSync(PAM_SOCK).mode & 0o777, 0o600);
    assert.equal(statSync(USER_SOCK).mode & 0o777, 0o666);
    const d = statSync(RUN);
    assert.equal(d.uid, 0);
    assert.equal(d.mode & 0o777, 0o755);
  });

  test('a request on the socket gets the reply a spawned agent gives (close_session of a user without sessions)', async () => {
    const u = newUser();
    const warm = await ask({ phase: 'close_session', user: u.name });
    const spawned = runAgent({ phase: 'close_session', user: u.name });
    assert.deepEqual([warm.result, warm.info, warm.error], [spawned.result, spawned.info, spawned.error]);
  });

  test('each request is served by a fresh process: the worker that served it is gone, a new spare waits', async () => {
    await waitFor('a spare', () => workerPids().length === 1);
    const [before1] = workerPids();
    await ask({ phase: 'close_session', user: 'nobody' });
    await waitFor('the next spare', () => workerPids().length === 1 && workerPids()[0] !== before1);
  });

  test('a non-root process cannot even connect to the PAM socket', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `require('net').createConnection(${JSON.stringify(PAM_SOCK)}).on('error', (e) => { console.log(e.code); process.exit(0); }).on('connect', () => { console.log('connected'); process.exit(0); })`]);
    assert.equal(r.stdout.toString().trim(), 'EACCES');
  });

  test('a PAM application in another mount namespace is told to spawn the agent', async () => {
    const script = `const s=require('net').createConnection(${JSON.stringify(PAM_SOCK)});const c=[];s.on('connect',()=>s.end(Buffer.from(process.argv[1],'base64')));s.on('data',d=>c.push(d));s.on('close',()=>process.stdout.write(Buffer.concat(c)))`;
    const r = spawnSync('unshare', ['-m', process.execPath, '-e', script, request({ phase: 'close_session', user: 'nobody' }).toString('base64')]);
    assert.equal(parseReply(r.stdout.toString()).result, 'spawn');
  });

  test('a worker whose client hangs up (the PAM module\'s timeout) is killed at once', async () => {
    const u = newUser();
    // hold the user's lock: the worker serving a close for them waits on it
    const holder = spawn('flock', [join(RUN, `${u.uid}.lock`), 'sleep', '60'], { stdio: 'ignore' });
    try {
      await sleep(200);
      await waitFor('a spare', () => workerPids().length >= 1);
      const spare = workerPids()[0] as number;
      const s = createConnection(PAM_SOCK);
      await new Promise((r) => s.on('connect', r));
      s.write(request({ phase: 'close_session', user: u.name, session: 'abcdefgh' }));
      s.end(); // half-close: the request is complete; the worker now waits for the lock
      await sleep(1500);
      assert.ok(existsSync(`/proc/${spare}`), 'the worker waits for the lock while the client waits');
      s.destroy(); // the client gives up
      await waitFor('the worker killed', () => !existsSync(`/proc/${spare}`), 3000);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('a flood of connections is served by at most --max-workers processes at once, every one answered', async () => {
    await stopMaster(master);
    master = await startMaster(['--max-workers', '3', '--spares', '1']);
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, workerPids().length)), 20);
    try {
      const replies = await Promise.all(Array.from({ length: 24 }, () => ask({ phase: 'close_session', user: 'nobody' })));
      assert.deepEqual(new Set(replies.map((r) => r.result)), new Set(['ignore']));
    } finally {
      clearInterval(sampler);
    }
    assert.ok(most <= 3, `at most 3 workers at once, saw ${most}`);
    assert.ok(most >= 2, `the burst was served in parallel (saw ${most})`);
  });
});

describe('sessions that end without close_session', () => {
  const syslog = new SyslogCapture();
  let logging = false;
  before(async () => {
    logging = await syslog.start();
  });
  after(() => syslog.stop());

  test('the opener killed: the master closes its session within seconds (reap), as PAM would have', async (t) => {
    const u = newUser({ autoMount: false });
    const opener = spawn('sleep', ['300'], { stdio: 'ignore' });
    const open = await ask({ phase: 'open_session', user: u.name, pamPid: opener.pid as number });
    assert.equal(open.result, 'success');
    assert.deepEqual(sessionIds(u), [open.session]);
    await sleep(300); // the master follows the record file
    opener.kill('SIGKILL');
    await waitFor('the session closed', () => sessionIds(u).length === 0, 8000);
    if (!logging) return t.diagnostic('no /dev/log listener: the log line is not checked');
    await waitFor('the log line', () => syslog.msgs.some((m) => m.includes('session ended without close_session') && m.includes(u.name)), 3000);
  });

  test('a master restarted while sessions are open finds them again and still reaps', async () => {
    const u = newUser({ autoMount: false });
    const opener = spawn('sleep', ['300'], { stdio: 'ignore' });
    const open = await ask({ phase: 'open_session', user: u.name, pamPid: opener.pid as number });
    assert.equal(open.result, 'success');
    await stopMaster(master);
    master = await startMaster();
    await sleep(500);
    assert.deepEqual(sessionIds(u), [open.session], 'a restart closes nothing');
    opener.kill('SIGKILL');
    await waitFor('the session closed', () => sessionIds(u).length === 0, 8000);
  });

  test('a session closed by PAM is not reaped again when its process exits', async () => {
    const u = newUser({ autoMount: false });
    const opener = spawn('sleep', ['300'], { stdio: 'ignore' });
    const open = await ask({ phase: 'open_session', user: u.name, pamPid: opener.pid as number });
    const close = await ask({ phase: 'close_session', user: u.name, pamPid: opener.pid as number, session: open.session as string });
    assert.equal(close.result, 'success');
    const before1 = syslog.msgs.length;
    opener.kill('SIGKILL');
    await sleep(1500);
    assert.ok(!syslog.msgs.slice(before1).some((m) => m.includes('session ended without close_session') && m.includes(u.name)));
  });
});

describe('the user socket: a user unlocks and locks their own directory', () => {
  const cli = (u: TestUser, args: string[], input = '') => asUserRun(u, [process.execPath, CLI, ...args], input);

  test('lock of a directory that is not mounted: said, exit 0', () => {
    const u = newUser();
    const r = cli(u, ['lock']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /~\/Private is not mounted/);
  });

  test('unlock with the right password: the keys go in as the user, mount(2) is reached (ENODEV here) and the keys are taken back', () => {
    const u = newUser();
    const r = cli(u, ['unlock'], `${u.password}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ecryptfs|eCryptfs|mount/i);
    assert.doesNotMatch(r.stderr, /mount\.ecryptfs_private/, 'no setuid helper involved');
    assert.deepEqual(userKeys(u), []);
  });

  test('wrong passphrases are counted: the sixth try within ten minutes is refused without trying', () => {
    const u = newUser();
    for (let i = 0; i < 5; i++) {
      const r = cli(u, ['unlock'], 'not the password\n');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /wrong login passphrase/);
    }
    const r = cli(u, ['unlock'], `${u.password}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /too many wrong passphrases; try again in \d+ s/);
    assert.deepEqual(userKeys(u), []);
  });

  test('a user naming another user\'s directory is refused by the agent, and the attempt is logged', async (t) => {
    const alice = newUser();
    const bob = newUser();
    const syslog = new SyslogCapture();
    const logging = await syslog.start();
    try {
      for (const op of ['unlock', 'lock']) {
        const r = cli(alice, [op, '-u', bob.name], `${alice.password}\n`);
        assert.equal(r.status, 1, r.stdout);
        assert.match(r.stderr, new RegExp(`only root can ${op} the private directory of ${bob.name}`));
      }
      assert.deepEqual(userKeys(bob), []);
      if (!logging) return t.diagnostic('no /dev/log listener: the log line is not checked');
      await waitFor('the log line', () => syslog.msgs.some((m) => m.includes(`refused: ${alice.name} asked to unlock the private directory of another user`) && m.includes(`asked_for=${bob.name}`)), 3000);
    } finally {
      syslog.stop();
    }
  });

  test('root on the user socket is told to act directly', async () => {
    const reply = await exchange(USER_SOCK, Buffer.from('ECRYPTFS-AGENT 1\nop=lock\nforce=0\nend\n'));
    assert.match(reply, /status=1/);
    assert.match(reply, /root acts directly/);
  });
});

describe('lifetime', () => {
  test('with no session and no request the master exits after --idle-exit seconds', async () => {
    await stopMaster(master);
    const m = spawn(process.execPath, [MASTER, '--listen', RUN, '--idle-exit', '1'], { stdio: 'ignore' });
    const code = await Promise.race([new Promise((r) => m.once('exit', (c) => r(c))), sleep(10_000).then(() => 'still running')]);
    assert.equal(code, 0);
    await waitFor('its spare gone', () => workerPids().length === 0, 3000);
    master = await startMaster();
  });
});
