// Host tests of the C PAM shim (pam/pam_ecryptfs_agent.c) against docs/protocol.md and the
// contract at the top of the shim: auth runs no agent, it keeps PAM_AUTHTOK (and its line's
// `unwrap`) in the handle for open_session, which hands it to the agent once.
// Runs as root: fake agents must be root-owned under root-owned directories (/run/…),
// and the pamtester check writes a service file into /etc/pam.d.
// The module is taken from $ECRYPTFS_AGENT_PAM_MODULE or build/Release/pam_ecryptfs_agent.so.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Harness,
  MADV_DONTDUMP,
  PAM,
  TstResult,
  aloneStack,
  clearDump,
  hex,
  expectedRequest,
  fixtures,
  markerDir,
  modulePath,
  neighbourStack,
  ours,
  parseRequest,
  groupMembers,
  hasCapSysResource,
  processAlive,
  readDumps,
  resultLine,
  runTst,
  setupHarness,
  sleep,
  teardownHarness,
  tokFile,
  waitForFile,
  writeService,
} from '../helpers/pam-harness';

const isRoot = process.getuid?.() === 0;
const ALL = ['auth', 'setcred', 'open', 'close', 'chauthtok'];
// agent-ok's reply lines, shown through the conversation in reply order
const AGENT_LINES = [
  { kind: 'info', text: 'hello from the agent' },
  { kind: 'error', text: 'an error line' },
  { kind: 'info', text: 'second info line' },
];
const PW = Buffer.from('correct horse ünïcødé 🔑');
const OLD = Buffer.from('old battery staple');

let h: Harness;
let svcN = 0;
function service(lines: string[]): string {
  const name = `svc${++svcN}`;
  writeService(h, name, lines);
  return name;
}
const agent = (name: string): string => join(h.agents, name);
const tokFileFor = (tok: Buffer): string => tokFile(h, tok);
const agentConv = (r: TstResult) =>
  r.conv.filter((c) => AGENT_LINES.some((l) => l.text === c.text) || c.text === 'nothing to do');
const spyCodes = (r: TstResult) => r.spy.map((s) => `${s.hook}${s.pass === '-' ? '' : '/' + s.pass}=${s.rc}`);
const errors = (r: TstResult) => r.syslog.filter((l) => l.prio <= 3 && !l.msg.startsWith('_pam_init_handlers'));
// our module's codes when every run of it ends in PAM_IGNORE (25), for the hooks of ALL
const ALL_IGNORED = [
  'authenticate=25',
  'setcred=25',
  'open_session=25',
  'close_session=25',
  'chauthtok/prelim=25',
  'chauthtok/update=25',
];

/** Our module (through pam_tst_spy, with `options`) between pam_debug neighbours in every stack; PW and OLD set. */
function neighbourService(control: 'optional' | 'required', options: string): string {
  return service(neighbourStack(h, { control, ours: ours(h, 'spy', options), authtok: PW, oldauthtok: OLD }));
}

/**
 * The anonymous mappings modules made (tst-retval traces them), one entry per mapping with the
 * stdout line of each step. Only our module maps memory in these stacks: its password stash.
 */
interface Stash {
  len: number;
  mmap: number;
  mlock?: number;
  mlockRc?: number;
  dontdump?: number;
  munmap?: number;
  munmapLen?: number;
  zeroed?: boolean;
}
function stashes(r: TstResult): Stash[] {
  const byId = new Map<number, Stash>();
  for (const e of r.mem) {
    if (e.call === 'mmap') byId.set(e.id, { len: e.len!, mmap: e.line });
    const st = byId.get(e.id);
    assert.ok(st, `mem ${e.call} ${e.id} without mmap`);
    if (e.call === 'mlock') [st.mlock, st.mlockRc] = [e.line, e.rc];
    if (e.call === 'madvise' && e.advice === MADV_DONTDUMP && e.rc === 0) st.dontdump = e.line;
    if (e.call === 'munmap') [st.munmap, st.munmapLen, st.zeroed] = [e.line, e.len, e.zeroed];
  }
  return [...byId.values()];
}
/** A stash in its own locked, non-dumpable mapping, wiped and unmapped between stdout lines `from` and `to`. */
function assertStashLife(st: Stash, from: number, to: number, what: string): void {
  assert.ok(from >= 0 && to >= 0, what);
  assert.equal(st.mlockRc, 0, `${what}: mlock'd`);
  assert.ok(st.mlock! > st.mmap && st.dontdump! > st.mmap, `${what}: locked and MADV_DONTDUMP`);
  assert.ok(st.munmap !== undefined, `${what}: unmapped`);
  assert.equal(st.munmapLen, st.len, `${what}: the whole mapping unmapped`);
  assert.equal(st.zeroed, true, `${what}: every byte wiped before munmap`);
  assert.ok(st.munmap! > from && st.munmap! < to, `${what}: unmapped at line ${st.munmap}, expected in (${from}, ${to})`);
}
/** Requests in the order the agents ran (pids only grow during a test on this host). */
const requestsInOrder = () =>
  readDumps(h)
    .sort((a, b) => a.pid - b.pid)
    .map((d) => parseRequest(d.req));

/** The application got PAM_SUCCESS from every stack (the pam_debug neighbours succeed). */
function assertStacksSucceeded(r: TstResult): void {
  for (const k of ['authenticate', 'setcred', 'open_session', 'close_session', 'chauthtok']) {
    assert.equal(r.codes[k], PAM.SUCCESS, k);
  }
}

describe('pam_ecryptfs_agent.so (shim) per docs/protocol.md', { skip: !isRoot && 'needs root' }, () => {
  before(() => {
    h = setupHarness();
  });
  after(() => {
    if (h) teardownHarness(h);
  });

  test('exports exactly the five pam_sm_* hooks; nothing else', () => {
    const out = execFileSync('nm', ['-D', '--defined-only', modulePath], { encoding: 'utf8' });
    const syms = out
      .split('\n')
      .filter((l) => / [TDBR] /.test(l))
      .map((l) => l.trim().split(/\s+/)[2])
      .filter((s) => s && !s.startsWith('_'))
      .sort();
    assert.deepEqual(syms, [
      'pam_sm_authenticate',
      'pam_sm_chauthtok',
      'pam_sm_close_session',
      'pam_sm_open_session',
      'pam_sm_setcred',
    ]);
  });

  test('success agent, optional between pam_debug neighbours: exact codes, requests, conversation', async () => {
    clearDump(h);
    const svc = neighbourService('optional', `agent=${agent('agent-ok')} timeout=3 unwrap debug`);
    const r = await runTst(h, svc, ['leakfd', ...ALL]);
    // libpam refuses PAM_AUTHTOK from the application: only modules may set it
    assert.equal(r.codes.app_set_authtok, PAM.BAD_ITEM);
    assertStacksSucceeded(r);
    // our module's own return codes, per the protocol table
    assert.deepEqual(spyCodes(r), [
      'authenticate=25',
      'setcred=25',
      'open_session=0',
      'close_session=0',
      'chauthtok/prelim=25',
      'chauthtok/update=0',
    ]);
    // three agent runs (open_session, close_session, chauthtok; none at auth) → the info/error
    // lines three times, in order, and never a prompt
    assert.deepEqual(agentConv(r), [...AGENT_LINES, ...AGENT_LINES, ...AGENT_LINES]);
    assert.equal(r.conv.filter((c) => c.kind.startsWith('prompt')).length, 0);
    // the application's signal state is restored, and it never saw our child's SIGCHLD
    assert.equal(r.flags.sigchld_handler, 'kept');
    assert.equal(r.codes.sigchld_seen, 0);
    assert.equal(r.flags.sigmask, 'kept');
    assert.equal(r.flags.sigpipe, 'kept');
    assert.deepEqual(errors(r).map((l) => l.msg), []);
    // one LOG_DEBUG line per hook with the outcome (debug option)
    const dbg = r.syslog.filter((l) => l.prio === 7).map((l) => l.msg);
    assert.deepEqual(dbg.map((l) => l.split(':')[0]), ['auth', 'setcred', 'open_session', 'close_session', 'chauthtok', 'chauthtok']);
    assert.equal(dbg[0], 'auth: password kept for open_session; PAM_IGNORE');
    assert.match(dbg[2], /^open_session: agent result=success .*PAM_SUCCESS$/);

    const dumps = readDumps(h);
    assert.equal(dumps.length, 3);
    const byPhase = new Map(dumps.map((d) => [parseRequest(d.req).fields.phase, d]));
    assert.deepEqual([...byPhase.keys()].sort(), ['chauthtok', 'close_session', 'open_session']);
    const open = byPhase.get('open_session')!;
    const base = { user: 'root', service: svc, pam_pid: r.pid, unwrap: true, debug: true };
    // the password auth kept, handed over once, at open_session
    assert.deepEqual(open.req, expectedRequest({ ...base, phase: 'open_session' }, [['authtok', PW]]));
    // the session id from open_session's reply comes back at close_session
    assert.deepEqual(
      byPhase.get('close_session')!.req,
      expectedRequest({ ...base, phase: 'close_session', session: `s${open.pid}` }),
    );
    assert.deepEqual(
      byPhase.get('chauthtok')!.req,
      expectedRequest({ ...base, phase: 'chauthtok' }, [
        ['authtok', PW],
        ['oldauthtok', OLD],
      ]),
    );
    for (const d of dumps) {
      // argv {agent, "pam"} (the kernel puts the interpreter first for a #! script)
      assert.deepEqual(d.argv, ['/bin/sh', agent('agent-ok'), 'pam']);
      assert.equal(d.env, 'PATH=/usr/sbin:/usr/bin:/sbin:/bin\0LANG=C\0');
      assert.equal(d.cwd, '/');
      const f = d.stat!.slice(d.stat!.lastIndexOf(')') + 2).split(' ');
      assert.equal(Number(f[1]), r.pid, 'parent is the PAM application');
      assert.equal(Number(f[2]), d.pid, 'own process group');
      assert.match(d.status!, /^SigBlk:\s+0+$/m);
      assert.match(d.status!, /^SigIgn:\s+0+$/m);
    }
  });

  test('application with SIGCHLD=SIG_IGN: the shim still reaps its agent and restores SIG_IGN', async () => {
    clearDump(h);
    const svc = service([`session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`]);
    const r = await runTst(h, svc, ['chldign', 'open', 'close']);
    assert.deepEqual(spyCodes(r), ['open_session=0', 'close_session=0']);
    assert.equal(r.flags.sigchld_handler, 'kept');
    assert.deepEqual(errors(r), []);
  });

  test('PAM_SILENT: agent lines suppressed, silent=1 sent', async () => {
    clearDump(h);
    const svc = service(
      neighbourStack(h, { control: 'optional', ours: ours(h, 'spy', `agent=${agent('agent-ok')}`), authtok: PW }),
    );
    const r = await runTst(h, svc, ['silent', 'auth', 'open', 'close']);
    assert.deepEqual(agentConv(r), []);
    assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'close_session=0']);
    const reqs = readDumps(h).map((d) => parseRequest(d.req).fields);
    assert.deepEqual(reqs.map((f) => f.phase).sort(), ['close_session', 'open_session']);
    for (const f of reqs) assert.equal(f.silent, '1');
  });

  test('PAM_SILENT: a failing agent is not reported through the conversation either', async () => {
    const svc = service(
      neighbourStack(h, { control: 'optional', ours: ours(h, 'spy', `agent=${agent('agent-crash')} timeout=2`), authtok: PW }),
    );
    const r = await runTst(h, svc, ['silent', 'auth', 'open', 'close']);
    assert.deepEqual(r.conv.filter((c) => c.text.includes('ecryptfs-agent')), []);
    // open_session and close_session ran (and lost) the agent; auth runs none
    assert.deepEqual(errors(r).map((l) => l.msg), ['agent killed by signal 11', 'agent killed by signal 11']);
  });

  test('module alone in the stack: libpam turns the all-PAM_IGNORE stack into PAM_PERM_DENIED', async () => {
    for (const [name, sessionCode] of [
      ['agent-ok', PAM.SUCCESS],
      ['agent-ignore', PAM.PERM_DENIED],
      ['agent-crash', PAM.PERM_DENIED],
    ] as const) {
      clearDump(h);
      const svc = service(
        aloneStack(h, {
          control: 'required',
          ours: ours(h, 'direct', `agent=${agent(name)} timeout=2`),
          authtok: PW,
          oldauthtok: OLD,
        }),
      );
      const r = await runTst(h, svc, ALL);
      assert.equal(r.codes.authenticate, PAM.PERM_DENIED, `${name}: our module never authenticates anyone`);
      assert.notEqual(r.codes.authenticate, PAM.SUCCESS);
      assert.equal(r.codes.setcred, PAM.PERM_DENIED, name);
      assert.equal(r.codes.open_session, sessionCode, name);
      assert.equal(r.codes.close_session, sessionCode, name);
      // chauthtok: the PRELIM pass is all-ignored → libpam stops there; the UPDATE pass
      // (and so the agent) never runs when our module is the only password module
      assert.equal(r.codes.chauthtok, PAM.PERM_DENIED, name);
      if (name !== 'agent-crash') {
        const reqs = readDumps(h).map((d) => parseRequest(d.req));
        assert.deepEqual(reqs.map((q) => q.fields.phase).sort(), ['close_session', 'open_session'], name);
        // this driver calls open_session although authentication failed (a real application
        // would not): the shim cannot tell, and hands over what its auth line kept
        assert.deepEqual(reqs.find((q) => q.fields.phase === 'open_session')!.secrets, { authtok: PW }, name);
      }
    }
  });

  // Every failing agent: exact fallback codes, the stack never fails (control `required`),
  // one log line with the reason.
  const failures: [string, RegExp][] = [
    ['agent-crash', /^agent killed by signal 11$/],
    ['agent-exit1', /^agent exited with status 1$/],
    ['agent-silent', /^malformed agent reply: empty reply$/],
    ['agent-garbage', /^malformed agent reply: bad header line$/],
    ['agent-noend', /^malformed agent reply: no end line$/],
    ['agent-longline', /^malformed agent reply: line 3 longer than 1024 bytes$/],
    ['agent-huge', /^malformed agent reply: longer than 16384 bytes$/],
    ['agent-badsession', /^malformed agent reply: invalid session id$/],
    ['agent-trailing', /^malformed agent reply: data after the end line$/],
    ['agent-nineinfo', /^malformed agent reply: more than 8 info lines$/],
    // result=spawn is the resident agent's answer only
    ['agent-spawn', /^malformed agent reply: line 2 is not result=success\|ignore$/],
    ['does-not-exist', /^refusing to run the agent: .*does-not-exist: No such file or directory$/],
  ];
  for (const [name, reason] of failures) {
    test(`failing agent ${name}: fallback codes, stack unaffected with "required"`, async () => {
      const svc = neighbourService('required', `agent=${agent(name)} timeout=2`);
      const r = await runTst(h, svc, ALL);
      assertStacksSucceeded(r);
      assert.deepEqual(spyCodes(r), ALL_IGNORED);
      const errs = errors(r).map((l) => l.msg);
      assert.equal(errs.length, 3, errs.join('\n')); // one per agent run: open, close, chauthtok
      for (const e of errs) assert.match(e, reason);
      assert.deepEqual(agentConv(r), []);
      // the user is told once at open_session and once at chauthtok (not at auth or logout)
      assert.deepEqual(
        r.conv.filter((c) => c.text.startsWith('ecryptfs-agent failed')).map((c) => [c.kind, c.text.split(';')[0]]),
        [
          ['error', 'ecryptfs-agent failed'],
          ['error', 'ecryptfs-agent failed during the password change'],
        ],
      );
    });
  }

  test('result=ignore → open/close/chauthtok PAM_IGNORE, lines still shown', async () => {
    const svc = neighbourService('required', `agent=${agent('agent-ignore')}`);
    const r = await runTst(h, svc, ALL);
    assert.deepEqual(spyCodes(r), ALL_IGNORED);
    assert.equal(agentConv(r).length, 3); // open, close, chauthtok
    assert.deepEqual(errors(r), []);
  });

  test('a 1024-byte reply line is still well-formed', async () => {
    const svc = service([`session required ${ours(h, 'spy', `agent=${agent('agent-maxline')}`)}`]);
    const r = await runTst(h, svc, ['open']);
    assert.deepEqual(spyCodes(r), ['open_session=0']);
    assert.equal(r.conv[0].text, 'y'.repeat(1019));
  });

  test('hanging agent: killed with its process group after timeout=1; secret never in argv/environ', async () => {
    clearDump(h);
    const secret = Buffer.from('hang-secret Σ 42');
    const svc = service(
      neighbourStack(h, { control: 'optional', ours: ours(h, 'spy', `agent=${agent('agent-hang')} timeout=1`), authtok: secret }),
    );
    let agentPid = 0;
    let childPid = 0;
    // auth keeps the secret (no agent); open_session hands it to the hanging agent
    const r = await runTst(h, svc, ['leakfd', 'auth', 'open'], 'root', async () => {
      await waitForFile(join(h.dump, 'hang.child'), 3000);
      agentPid = Number(readFileSync(join(h.dump, 'hang.pid'), 'utf8'));
      childPid = Number(readFileSync(join(h.dump, 'hang.child'), 'utf8'));
      for (const pid of [agentPid, childPid]) {
        for (const what of ['cmdline', 'environ']) {
          const b = readFileSync(`/proc/${pid}/${what}`);
          assert.equal(b.indexOf(secret), -1, `secret in /proc/${pid}/${what}`);
          assert.equal(b.indexOf('hang-secret'), -1);
        }
      }
      // fds the agent was given: 0,1 pipes, 2 /dev/null, nothing else (the driver holds a
      // non-CLOEXEC fd 77: "leakfd"); dash adds only its O_CLOEXEC fd on the script itself
      const shellFds = readdirSync(`/proc/${agentPid}/fd`).filter(
        (fd) => readlinkSync(`/proc/${agentPid}/fd/${fd}`) !== agent('agent-hang'),
      );
      assert.deepEqual(shellFds.sort(), ['0', '1', '2']);
      assert.match(readlinkSync(`/proc/${agentPid}/fd/0`), /^pipe:/);
      assert.match(readlinkSync(`/proc/${agentPid}/fd/1`), /^pipe:/);
      assert.equal(readlinkSync(`/proc/${agentPid}/fd/2`), '/dev/null');
      // …and what its exec'd child inherited (dash gives `cmd &` /dev/null as stdin)
      assert.deepEqual(readdirSync(`/proc/${childPid}/fd`).sort(), ['0', '1', '2']);
    });
    assert.ok(agentPid > 0 && childPid > 0);
    assert.equal(r.codes.authenticate, PAM.SUCCESS);
    assert.equal(r.codes.open_session, PAM.SUCCESS);
    assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=25']);
    assert.ok(r.ms.authenticate < 500, `auth took ${r.ms.authenticate} ms: it runs no agent`);
    assert.ok(r.ms.open_session >= 950 && r.ms.open_session < 2000, `took ${r.ms.open_session} ms`);
    assert.deepEqual(errors(r).map((l) => l.msg), ['agent timed out after 1 s']);
    // the request (with the secret) did travel, on fd 0
    const dumps = readDumps(h);
    assert.equal(dumps.length, 1);
    assert.equal(parseRequest(dumps[0].req).fields.phase, 'open_session');
    assert.deepEqual(parseRequest(dumps[0].req).secrets.authtok, secret);
    // SIGKILL was sent to the whole group when the hook returned: nothing of it still runs
    assert.deepEqual(groupMembers(agentPid), [], 'process group gone');
    assert.equal(processAlive(agentPid), false, 'agent gone');
    assert.equal(processAlive(childPid), false, 'agent child gone');
    // no secret in any log line either
    for (const l of r.syslog) assert.ok(!l.msg.includes('hang-secret'));
  });

  test('hanging agent at open_session with timeout=2 returns within ~2 s', async () => {
    clearDump(h);
    const svc = service([`session optional ${ours(h, 'spy', `agent=${agent('agent-hang')} timeout=2`)}`]);
    const r = await runTst(h, svc, ['open']);
    assert.deepEqual(spyCodes(r), ['open_session=25']);
    assert.ok(r.ms.open_session >= 1950 && r.ms.open_session < 3000, `took ${r.ms.open_session} ms`);
    assert.deepEqual(errors(r).map((l) => l.msg), ['agent timed out after 2 s']);
  });

  describe('unsafe agent paths are refused and never executed', () => {
    let tmpDir = '';
    const ownedDirs: string[] = [];
    const cases: [string, () => string, RegExp][] = [
      ['relative path', () => 'agents/agent-marker', /is not absolute/],
      ['group-writable file', () => place('agent-gw', 0o775), /agent-gw is writable by group or others \(mode 0775\)/],
      ['other-writable file', () => place('agent-ow', 0o757), /agent-ow is writable by group or others \(mode 0757\)/],
      ['file not owned by root', () => place('agent-nobody', 0o755, 65534), /agent-nobody is not owned by root \(uid 65534\)/],
      ['file not executable', () => place('agent-noexec', 0o644), /agent-noexec is not executable \(mode 0644\)/],
      ['world-writable directory without the sticky bit', () => placeIn('wwdir', 0o777, 0), /wwdir is writable by group or others \(mode 0777\)/],
      ['agent under a user-owned directory in sticky /tmp', () => placeInTmp(65534), /is not owned by root \(uid 65534\)/],
      ['group-writable directory', () => placeIn('gwdir', 0o775, 0), /gwdir is writable by group or others \(mode 0775\)/],
      ['directory not owned by root', () => placeIn('nobodydir', 0o755, 65534), /nobodydir is not owned by root/],
      ['symlinked directory', () => link('linkdir', h.agents, 'agent-marker'), /linkdir is a symbolic link/],
      ['symlinked file', () => link('agent-link', agent('agent-marker')), /agent-link is a symbolic link/],
      ['a directory', () => h.agents, /agents is not a regular file/],
      ['.. component', () => `${h.agents}/../agents/agent-marker`, /contains a \. or \.\. component/],
    ];
    function place(name: string, mode: number, uid = 0): string {
      const p = agent(name);
      copyFileSync(agent('agent-marker'), p);
      chownSync(p, uid, 0);
      chmodSync(p, mode);
      return p;
    }
    function placeIn(dir: string, mode: number, uid: number): string {
      const d = join(h.root, dir);
      mkdirSync(d, { recursive: true });
      chownSync(d, uid, 0);
      chmodSync(d, mode);
      const p = join(d, 'agent-marker');
      copyFileSync(agent('agent-marker'), p);
      chownSync(p, 0, 0);
      chmodSync(p, 0o755);
      return p;
    }
    function placeInTmp(uid: number): string {
      const d = mkdtempSync('/tmp/eat-pam-owned-');
      ownedDirs.push(d);
      chownSync(d, uid, 0);
      const p = join(d, 'agent-marker');
      copyFileSync(agent('agent-marker'), p);
      chmodSync(p, 0o755);
      return p;
    }
    function link(name: string, target: string, below?: string): string {
      const l = join(h.root, name);
      rmSync(l, { force: true });
      symlinkSync(target, l);
      return below ? join(l, below) : l;
    }
    before(() => {
      tmpDir = mkdtempSync('/tmp/eat-pam-');
      chmodSync(tmpDir, 0o755);
      copyFileSync(agent('agent-marker'), join(tmpDir, 'agent-marker'));
      chmodSync(join(tmpDir, 'agent-marker'), 0o755);
    });
    after(() => {
      for (const d of [tmpDir, ...ownedDirs]) rmSync(d, { recursive: true, force: true });
    });

    test('control: the marker agent at a safe path does run', async () => {
      clearDump(h);
      const svc = service([`session required ${ours(h, 'spy', `agent=${agent('agent-marker')}`)}`]);
      const r = await runTst(h, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=0']);
      assert.deepEqual(readdirSync(markerDir), ['marker-agent-marker']);
    });
    test('a root-owned directory in sticky, world-writable /tmp is safe: the agent runs', async () => {
      clearDump(h);
      const svc = service([`session required ${ours(h, 'spy', `agent=${join(tmpDir, 'agent-marker')}`)}`]);
      const r = await runTst(h, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=0']);
      assert.deepEqual(readdirSync(markerDir), ['marker-agent-marker']);
    });
    for (const [what, path, reason] of cases) {
      test(what, async () => {
        clearDump(h);
        const p = path();
        const svc = service(
          neighbourStack(h, { control: 'required', ours: ours(h, 'spy', `agent=${p}`), authtok: PW }),
        );
        const r = await runTst(h, svc, ['auth', 'open', 'close']);
        assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=25', 'close_session=25']);
        assert.equal(r.codes.open_session, PAM.SUCCESS);
        const errs = errors(r).map((l) => l.msg);
        assert.equal(errs.length, 2); // open_session, close_session (auth runs no agent)
        for (const e of errs) {
          assert.match(e, /^refusing to run the agent: /);
          assert.match(e, reason);
        }
        assert.deepEqual(readdirSync(markerDir), [], 'agent was executed');
      });
    }
  });

  describe('request contents', () => {
    const passwords: [string, Buffer][] = [
      ['spaces', Buffer.from('a pass phrase with  spaces ')],
      ['utf-8', Buffer.from('пароль 密码 🔑 ü')],
      ['512 bytes (PAM_MAX_RESP_SIZE)', Buffer.from('x'.repeat(500) + 'ÿ'.repeat(6))],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, pw] of passwords) {
      test(`secret bytes exact: ${what}: kept by auth, sent at open_session; chauthtok's own`, async () => {
        clearDump(h);
        const old = Buffer.concat([Buffer.from('old '), pw]).subarray(0, 512);
        const svc = service(
          neighbourStack(h, {
            control: 'optional',
            ours: ours(h, 'spy', `agent=${agent('agent-ok')} debug`),
            authtok: pw,
            oldauthtok: old,
          }),
        );
        const r = await runTst(h, svc, ['auth', 'open', 'chauthtok']);
        const reqs = readDumps(h).map((d) => parseRequest(d.req));
        assert.deepEqual(reqs.map((q) => q.fields.phase).sort(), ['chauthtok', 'open_session']);
        const open = reqs.find((q) => q.fields.phase === 'open_session')!;
        const ch = reqs.find((q) => q.fields.phase === 'chauthtok')!;
        const auth = r.syslog.filter((l) => l.prio === 7 && l.msg.startsWith('auth:')).map((l) => l.msg);
        if (pw.length > 0) {
          // byte-exact: what the application's stack set as PAM_AUTHTOK at auth
          assert.deepEqual(open.secrets, { authtok: pw });
          assert.deepEqual(open.keys.filter((k) => k.startsWith('secret:')), ['secret:authtok']);
          assert.deepEqual(auth, ['auth: password kept for open_session; PAM_IGNORE']);
        } else {
          // an empty PAM_AUTHTOK is not kept: open_session sends no secret at all
          assert.deepEqual(open.secrets, {});
          assert.deepEqual(auth, ['auth: PAM_AUTHTOK not set; nothing kept; PAM_IGNORE']);
        }
        assert.deepEqual(ch.secrets.authtok, pw);
        assert.deepEqual(ch.secrets.oldauthtok, old);
        assert.deepEqual(errors(r), []);
        if (pw.length > 0) for (const l of r.syslog) assert.ok(!l.msg.includes(pw.toString('utf8')));
      });
    }
    assert.equal(passwords[2][1].length, 512);

    test('a 513-byte PAM_AUTHTOK is not kept by auth nor sent by chauthtok; logged; PAM_IGNORE', async () => {
      clearDump(h);
      const svc = service(
        neighbourStack(h, { control: 'optional', ours: ours(h, 'spy', `agent=${agent('agent-ok')}`), authtok: Buffer.alloc(513, 'q') }),
      );
      const r = await runTst(h, svc, ['auth', 'open', 'chauthtok']);
      assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'chauthtok/prelim=25', 'chauthtok/update=25']);
      // open_session still runs the agent, without a secret; chauthtok does not run it
      const reqs = readDumps(h).map((d) => parseRequest(d.req));
      assert.deepEqual(reqs.map((q) => q.fields.phase), ['open_session']);
      assert.deepEqual(reqs[0].secrets, {});
      assert.deepEqual(
        errors(r).map((l) => l.msg),
        ['auth: PAM_AUTHTOK longer than 512 bytes; not kept', 'chauthtok: PAM_AUTHTOK longer than 512 bytes; agent not run'],
      );
      assert.deepEqual(r.mem, [], 'nothing mapped for a password that is not kept');
    });

    test('auth without PAM_AUTHTOK: nothing kept (debug log); chauthtok without PAM_OLDAUTHTOK: only authtok sent', async () => {
      clearDump(h);
      const svc = service([
        `auth     optional ${ours(h, 'spy', `agent=${agent('agent-ok')} debug`)}`,
        `password required ${h.spy} authtok=${hex('new only')}`,
        `password optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
        'password required pam_permit.so',
      ]);
      const r = await runTst(h, svc, ['auth', 'chauthtok']);
      assert.deepEqual(spyCodes(r), ['authenticate=25', 'chauthtok/prelim=25', 'chauthtok/update=0']);
      assert.ok(r.syslog.some((l) => l.prio === 7 && l.msg === 'auth: PAM_AUTHTOK not set; nothing kept; PAM_IGNORE'));
      assert.deepEqual(r.mem, []);
      const reqs = readDumps(h).map((d) => parseRequest(d.req));
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0].fields.phase, 'chauthtok');
      assert.deepEqual(Object.keys(reqs[0].secrets), ['authtok']);
      assert.deepEqual(reqs[0].secrets.authtok, Buffer.from('new only'));
    });

    test('tty/rhost/ruser sent; a value with a newline is sent empty and logged', async () => {
      clearDump(h);
      const svc = service([`session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`]);
      const hx = (s: string) => Buffer.from(s).toString('hex');
      const r = await runTst(h, svc, [`tty=${hx('pts/7\nevil=1')}`, `rhost=${hx('host.example')}`, `ruser=${hx('rü ser')}`, 'open']);
      const q = parseRequest(readDumps(h)[0].req);
      assert.deepEqual(q.keys, ['phase', 'user', 'service', 'tty', 'rhost', 'ruser', 'pam_pid', 'session', 'unwrap', 'debug', 'silent']);
      assert.equal(q.fields.tty, '');
      assert.equal(q.fields.rhost, 'host.example');
      assert.equal(q.fields.ruser, 'rü ser');
      assert.equal(q.fields.evil, undefined);
      assert.deepEqual(errors(r).map((l) => l.msg), ['PAM_TTY contains a newline; sent empty to the agent']);
    });

    test('a user name with a newline: agent not run', async () => {
      clearDump(h);
      const svc = service([`session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`]);
      const r = await runTst(h, svc, ['open'], 'root\nphase=auth');
      assert.deepEqual(spyCodes(r), ['open_session=25']);
      assert.deepEqual(readDumps(h), []);
      assert.deepEqual(errors(r).map((l) => l.msg), ['open_session: user name contains a newline; agent not run']);
    });

    test('options: unknown and invalid ones logged and ignored, defaults kept', async () => {
      clearDump(h);
      const svc = service([
        `session optional ${ours(h, 'spy', `bogus timeout=0 timeout=301 timeout=5s agent=${agent('agent-ok')}`)}`,
      ]);
      const r = await runTst(h, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=0']);
      assert.deepEqual(errors(r).map((l) => l.msg), [
        'unknown option "bogus" ignored',
        'invalid option "timeout=0" (1..300 seconds) ignored; using 5',
        'invalid option "timeout=301" (1..300 seconds) ignored; using 5',
        'invalid option "timeout=5s" (1..300 seconds) ignored; using 5',
      ]);
      const f = parseRequest(readDumps(h)[0].req).fields;
      assert.equal(f.unwrap, '0');
      assert.equal(f.debug, '0');
    });

    test('default agent path is /usr/lib/ecryptfs-agent/dist/agent/main.js', async () => {
      const svc = service([`session optional ${ours(h, 'spy', '')}`]);
      const r = await runTst(h, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=25']);
      const e = errors(r).map((l) => l.msg);
      assert.equal(e.length, 1);
      if (!existsSync('/usr/lib/ecryptfs-agent/dist/agent/main.js')) {
        assert.match(e[0], /^refusing to run the agent: \/usr\/lib\/ecryptfs-agent: No such file or directory$/);
      }
    });
  });

  describe('auth keeps the password for open_session (no agent at auth)', () => {
    for (const name of ['agent-ok', 'agent-marker']) {
      test(`auth alone never runs the agent (a valid ${name}); what it kept is wiped and unmapped at pam_end`, async () => {
        clearDump(h);
        const svc = neighbourService('optional', `agent=${agent(name)} debug`);
        const r = await runTst(h, svc, ['auth']);
        assert.equal(r.codes.authenticate, PAM.SUCCESS);
        assert.deepEqual(spyCodes(r), ['authenticate=25']);
        assert.deepEqual(readDumps(h), [], 'agent ran at auth');
        assert.deepEqual(readdirSync(markerDir), [], 'agent ran at auth');
        assert.deepEqual(agentConv(r), []);
        assert.deepEqual(errors(r), []);
        assert.deepEqual(
          r.syslog.filter((l) => l.prio === 7).map((l) => l.msg),
          ['auth: password kept for open_session; PAM_IGNORE'],
        );
        const st = stashes(r);
        assert.equal(st.length, 1, 'one mapping: the kept password');
        assertStashLife(st[0], resultLine(r, 'authenticate'), resultLine(r, 'end'), 'at pam_end');
      });
    }

    test('the kept password is handed over at open_session, then wiped and unmapped; close_session carries none', async () => {
      clearDump(h);
      const svc = neighbourService('optional', `agent=${agent('agent-ok')}`);
      const r = await runTst(h, svc, ['auth', 'open', 'close']);
      for (const k of ['authenticate', 'open_session', 'close_session']) assert.equal(r.codes[k], PAM.SUCCESS, k);
      const reqs = requestsInOrder();
      assert.deepEqual(reqs.map((q) => q.fields.phase), ['open_session', 'close_session']);
      assert.deepEqual(reqs[0].secrets, { authtok: PW });
      assert.deepEqual(reqs[1].secrets, {});
      const st = stashes(r);
      assert.equal(st.length, 1);
      // kept during auth …
      assert.ok(st[0].mmap < resultLine(r, 'authenticate'));
      // … and dropped by open_session itself, once its agent has run
      assertStashLife(st[0], resultLine(r, 'authenticate'), resultLine(r, 'open_session'), 'at open_session');
    });

    test('a second open_session in the same handle carries no password', async () => {
      clearDump(h);
      const svc = neighbourService('optional', `agent=${agent('agent-ok')}`);
      const r = await runTst(h, svc, ['auth', 'open', 'close', 'open']);
      assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'close_session=0', 'open_session=0']);
      const reqs = requestsInOrder();
      assert.deepEqual(reqs.map((q) => q.fields.phase), ['open_session', 'close_session', 'open_session']);
      assert.deepEqual(reqs.map((q) => q.secrets), [{ authtok: PW }, {}, {}]);
    });

    test('two session lines of ours: only the first one gets the password', async () => {
      clearDump(h);
      const svc = service([
        `auth    required ${h.spy} authtok=@${tokFileFor(PW)}`,
        `auth    optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
      ]);
      const r = await runTst(h, svc, ['auth', 'open']);
      assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'open_session=0']);
      assert.deepEqual(requestsInOrder().map((q) => q.secrets), [{ authtok: PW }, {}]);
    });

    test('the password is dropped when open_session\'s agent fails, or is refused', async () => {
      // the agent read the request, then failed: a second open_session has nothing to send
      clearDump(h);
      const svc = neighbourService('optional', `agent=${agent('agent-dumpfail')}`);
      const r = await runTst(h, svc, ['auth', 'open', 'open']);
      assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=25', 'open_session=25']);
      assert.deepEqual(requestsInOrder().map((q) => q.secrets), [{ authtok: PW }, {}]);
      assert.deepEqual(errors(r).map((l) => l.msg), ['agent exited with status 3', 'agent exited with status 3']);
      const st = stashes(r);
      assert.equal(st.length, 1);
      assertStashLife(st[0], resultLine(r, 'authenticate'), resultLine(r, 'open_session'), 'after a failed agent');

      // an agent the shim refuses to run: the next line of ours gets nothing either
      clearDump(h);
      const svc2 = service([
        `auth    required ${h.spy} authtok=@${tokFileFor(PW)}`,
        `auth    optional ${ours(h, 'spy', `agent=${agent('does-not-exist')}`)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('does-not-exist')}`)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
      ]);
      const r2 = await runTst(h, svc2, ['auth', 'open']);
      assert.deepEqual(spyCodes(r2), ['authenticate=25', 'open_session=25', 'open_session=0']);
      assert.deepEqual(requestsInOrder().map((q) => q.secrets), [{}]);
      assert.deepEqual(errors(r2).map((l) => l.msg.replace(/: .*/, '')), ['refusing to run the agent']);
    });

    test('open_session without a prior auth in the handle (key login, auth elsewhere, after chauthtok) carries no password', async () => {
      clearDump(h);
      const svc = neighbourService('optional', `agent=${agent('agent-ok')} unwrap`);
      // no authentication in this handle (a key login, or auth in another process)
      const r = await runTst(h, svc, ['open', 'close']);
      assert.deepEqual(spyCodes(r), ['open_session=0', 'close_session=0']);
      assert.deepEqual(requestsInOrder().map((q) => q.secrets), [{}, {}]);
      assert.deepEqual(r.mem, []);
      // PAM_AUTHTOK set by the password stack (chauthtok) is not what auth kept: not sent
      clearDump(h);
      const r2 = await runTst(h, svc, ['chauthtok', 'open']);
      assert.deepEqual(spyCodes(r2), ['chauthtok/prelim=25', 'chauthtok/update=0', 'open_session=0']);
      const reqs = requestsInOrder();
      assert.deepEqual(reqs.map((q) => q.fields.phase), ['chauthtok', 'open_session']);
      assert.deepEqual(reqs[0].secrets, { authtok: PW, oldauthtok: OLD });
      assert.deepEqual(reqs[1].secrets, {});
    });

    test('an expired password changed between auth and open_session (auth, chauthtok, open): open_session gets the new password', async () => {
      // login and sshd change an expired password in the same handle before opening the session;
      // the re-wrap made the file open with the new password only
      const p1 = Buffer.from('old-password');
      const p2 = Buffer.from('new-password');
      const ok = ours(h, 'spy', `agent=${agent('agent-ok')} unwrap`);
      const fails = ours(h, 'spy', `agent=${agent('agent-exit1')} unwrap`);
      for (const [what, passwordLine, expected] of [
        ['re-wrapped (agent result=success)', ok, p2],
        ['not re-wrapped (the agent failed): the file keeps the wrapping auth saw', fails, p1],
      ] as const) {
        const svc = service([
          `auth     required ${h.spy} authtok=@${tokFileFor(p1)}`,
          `auth     optional ${ok}`,
          `password required ${h.spy} authtok=@${tokFileFor(p2)} oldauthtok=@${tokFileFor(p1)}`,
          `password optional ${passwordLine}`,
          'password required pam_permit.so',
          `session  optional ${ok}`,
        ]);
        clearDump(h);
        await runTst(h, svc, ['auth', 'chauthtok', 'open']);
        const open = requestsInOrder().filter((q) => q.fields.phase === 'open_session');
        assert.equal(open.length, 1, what);
        assert.deepEqual(open[0]!.secrets, { authtok: expected }, what);
        assert.equal(open[0]!.fields.unwrap, '1', `${what}: the auth line's unwrap is kept`);
      }
    });

    test('open_session sends only what auth kept, never the PAM_AUTHTOK item it finds', async () => {
      // libpam clears PAM_AUTHTOK when pam_authenticate returns (_pam_sanitize): a session
      // module before ours sets one of its own
      const sessionTok = Buffer.from('set by a session module');
      const svc = service([
        `auth    required ${h.spy} authtok=@${tokFileFor(PW)}`,
        `auth    optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
        `session required ${h.spy} authtok=@${tokFileFor(sessionTok)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('agent-ok')}`)}`,
      ]);
      for (const [hooks, sent] of [
        [['open'], {}],
        [['auth', 'open'], { authtok: PW }],
        [['auth', 'open', 'open'], {}],
      ] as [string[], Record<string, Buffer>][]) {
        clearDump(h);
        const r = await runTst(h, svc, hooks);
        assert.deepEqual(errors(r), []);
        assert.deepEqual(requestsInOrder().at(-1)!.secrets, sent, hooks.join(','));
      }
    });

    // unwrap= at open_session comes from the auth line that kept the password
    const unwrapCases: [string, string, string, string[], string, string][] = [
      // what, auth line options, session line options, hooks, unwrap at open_session, at close_session
      ['auth line unwrap, session line without: unwrap=1', 'unwrap', '', ['auth', 'open', 'close'], '1', '0'],
      ['auth line without, session line unwrap: unwrap=0', '', 'unwrap', ['auth', 'open', 'close'], '0', '1'],
      ['no auth in the handle: the session line\'s own option', 'unwrap', 'unwrap', ['open', 'close'], '1', '1'],
      ['no auth in the handle, session line without: unwrap=0', 'unwrap', '', ['open', 'close'], '0', '0'],
    ];
    for (const [what, authOpts, sessionOpts, hooks, atOpen, atClose] of unwrapCases) {
      test(`unwrap: ${what}`, async () => {
        clearDump(h);
        const svc = service(
          neighbourStack(h, {
            control: 'optional',
            ours: ours(h, 'spy', `agent=${agent('agent-ok')}`),
            oursAuth: ours(h, 'spy', `agent=${agent('agent-ok')} ${authOpts}`),
            oursSession: ours(h, 'spy', `agent=${agent('agent-ok')} ${sessionOpts}`),
            authtok: PW,
          }),
        );
        await runTst(h, svc, hooks);
        const reqs = requestsInOrder();
        assert.deepEqual(reqs.map((q) => q.fields.phase), ['open_session', 'close_session']);
        assert.equal(reqs[0].fields.unwrap, atOpen, 'open_session');
        assert.equal(reqs[1].fields.unwrap, atClose, 'close_session');
        assert.deepEqual(reqs[0].secrets, hooks.includes('auth') ? { authtok: PW } : {});
      });
    }

    test('a later auth in the same handle replaces the kept password, or drops it (unset, 513 bytes)', async () => {
      const A = Buffer.from('first try');
      const B = Buffer.from('second try ✓');
      const cases: [string, (Buffer | null)[], Record<string, Buffer>, string[]][] = [
        ['replaced', [A, B], { authtok: B }, []],
        ['dropped: PAM_AUTHTOK unset', [A, null], {}, []],
        ['dropped: PAM_AUTHTOK empty', [A, Buffer.alloc(0)], {}, []],
        ['dropped: 513 bytes', [A, Buffer.alloc(513, 'z')], {}, ['auth: PAM_AUTHTOK longer than 512 bytes; not kept']],
      ];
      for (const [what, toks, sent, errs] of cases) {
        clearDump(h);
        const svc = service(
          neighbourStack(h, { control: 'optional', ours: ours(h, 'spy', `agent=${agent('agent-ok')}`), authtoks: toks }),
        );
        const r = await runTst(h, svc, ['auth', 'auth', 'open']);
        assert.deepEqual(spyCodes(r), ['authenticate=25', 'authenticate=25', 'open_session=0'], what);
        assert.deepEqual(requestsInOrder().map((q) => q.secrets), [sent], what);
        assert.deepEqual(errors(r).map((l) => l.msg), errs, what);
        // the first password is wiped and unmapped by the second auth
        const st = stashes(r);
        assertStashLife(st[0], resultLine(r, 'authenticate', 0), resultLine(r, 'authenticate', 1), `${what}: first`);
        assert.equal(st.length, what === 'replaced' ? 2 : 1, what);
        if (st.length === 2) assertStashLife(st[1], resultLine(r, 'authenticate', 1), resultLine(r, 'open_session'), `${what}: second`);
      }
    });

    // "A login PAM refuses loads no key": a failing auth stack, and an application that therefore
    // never calls open_session (it ends the handle): the agent never runs, the password is wiped.
    for (const where of ['before', 'after'] as const) {
      test(`refused login (a required module failing ${where} ours), no open_session: the agent never runs; the password is wiped at pam_end`, async () => {
        clearDump(h);
        const opts = `agent=${agent('agent-ok')} unwrap debug`;
        // libpam goes on past a failing `required` line, so our `optional` line is called either way
        const failing = 'auth    required pam_debug.so auth=auth_err';
        const oursAuth = `auth    optional ${ours(h, 'spy', opts)}`;
        const svc = service([
          `auth    required ${h.spy} authtok=@${tokFileFor(PW)}`,
          ...(where === 'before' ? [failing, oursAuth] : [oursAuth, failing]),
          `session optional ${ours(h, 'spy', opts)}`,
        ]);
        // the application retries once, then gives up: pam_end right after the failed authenticate
        const r = await runTst(h, svc, ['auth', 'auth']);
        assert.equal(r.lines.filter((l) => l.startsWith(`authenticate=${PAM.AUTH_ERR} `)).length, 2);
        // libpam did call our auth (twice): it kept the password, and vouched for nothing
        assert.deepEqual(spyCodes(r), ['authenticate=25', 'authenticate=25']);
        assert.deepEqual(readDumps(h), [], 'the agent ran');
        assert.deepEqual(agentConv(r), []);
        const st = stashes(r);
        assert.equal(st.length, 2);
        assertStashLife(st[0], resultLine(r, 'authenticate', 0), resultLine(r, 'authenticate', 1), 'replaced by the retry');
        assertStashLife(st[1], resultLine(r, 'authenticate', 1), resultLine(r, 'end'), 'at pam_end');
      });
    }
  });

  // The agent starts with root's own state, whatever the application handed down: a setuid su
  // run by a user has the user's real uid, gids and groups, and the user's umask, nice value,
  // oom_score_adj and limits (`ulimit -f 0` would kill the agent in the middle of a re-wrap).
  // Raising a hard limit back needs CAP_SYS_RESOURCE: where this root lacks it (a container),
  // the driver lowers only the soft limits (test/vm covers a real root with hard ones).
  const hardToo = isRoot && hasCapSysResource();
  test(`the agent does not inherit the application's ids, groups, umask, nice, oom_score_adj or limits (${
    hardToo ? 'soft and hard limits lowered' : 'soft limits only: no CAP_SYS_RESOURCE here'
  })`, async () => {
    clearDump(h);
    const svc = neighbourService('optional', `agent=${agent('agent-state')}`);
    const r = await runTst(h, svc, [hardToo ? 'hostile=hard' : 'hostile=soft', 'auth', 'open', 'close']);
    // the driver really was hostile while it called PAM …
    const hard = (v: string) => (hardToo ? v : '[^,]+');
    const hostile = new RegExp(
      '^uid=65534/0/0,gid=65534/65534/65534,groups=65534,umask=0777,nice=19,oom=1000,' +
        `fsize=0/${hard('0')},nofile=32/${hard('32')},cpu=60/${hard('60')},core=([^,/]+)/\\1$`,
    );
    assert.match(r.flags.state_before ?? '', hostile);
    // … and the shim reset its child only, never the application
    assert.equal(r.flags.state_after, r.flags.state_before);
    assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'close_session=0']);
    assert.deepEqual(errors(r), []);
    const dumps = readDumps(h).sort((a, b) => a.pid - b.pid);
    assert.deepEqual(dumps.map((d) => parseRequest(d.req).fields.phase), ['open_session', 'close_session']);
    assert.deepEqual(parseRequest(dumps[0].req).secrets, { authtok: PW });
    for (const d of dumps) {
      const phase = parseRequest(d.req).fields.phase;
      assert.match(d.status!, /^Uid:\s+0\s+0\s+0\s+0$/m, phase);
      assert.match(d.status!, /^Gid:\s+0\s+0\s+0\s+0$/m, phase);
      assert.match(d.status!, /^Groups:[ \t]*$/m, phase);
      assert.match(d.status!, /^Umask:\s+0022$/m, phase);
      const limit = (name: string): [string, string] => {
        const m = d.limits!.match(new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm'));
        assert.ok(m, `${name} in /proc/PID/limits`);
        return [m[1], m[2]];
      };
      assert.deepEqual(limit('Max file size'), ['unlimited', 'unlimited'], phase);
      assert.deepEqual(limit('Max cpu time'), ['unlimited', 'unlimited'], phase);
      assert.deepEqual(limit('Max core file size'), ['0', '0'], phase);
      const [nofileSoft, nofileHard] = limit('Max open files');
      assert.ok(Number(nofileSoft) >= 1024, `open files soft ${nofileSoft}`);
      if (hardToo) assert.ok(Number(nofileHard) >= 4096, `open files hard ${nofileHard}`);
      const stat = d.stat!.slice(d.stat!.lastIndexOf(')') + 2).split(' ');
      assert.equal(stat[16], '0', `${phase}: nice`); // field 19 of /proc/PID/stat
      assert.equal(d.oom?.trim(), '0', `${phase}: oom_score_adj`);
    }
  });

  // The resident agent (docs/protocol.md, "Transport: the resident agent's socket"): a fake root
  // service (test/fixtures/pam/fake-resident.js) listening on a socket of the test's own, named
  // with socket= (after the socket=none every `ours` line starts with).
  describe("the resident agent's socket first, a spawned agent as the fallback", () => {
    interface Resident {
      dir: string;
      sock: string;
      pid: number;
      proc: ChildProcess;
    }
    const servers: Resident[] = [];
    let script = '';
    let nServer = 0;
    before(() => {
      script = join(h.root, 'fake-resident.js');
      copyFileSync(join(fixtures, 'fake-resident.js'), script);
      chmodSync(script, 0o644);
    });
    after(async () => {
      for (const s of servers) await stopResident(s);
    });

    /** Starts the fake server as root (or as `uid`, in a directory of its own) and waits until it listens. */
    async function startResident(mode: string, uid = 0): Promise<Resident> {
      const dir = join(h.root, `resident-${++nServer}`);
      mkdirSync(dir, { mode: 0o755 });
      chownSync(dir, uid, uid);
      const sock = join(dir, 'agent.sock');
      const argv = [process.execPath, script, sock, mode, dir];
      const proc =
        uid === 0
          ? spawn(argv[0], argv.slice(1), { stdio: 'ignore' })
          : spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...argv], { stdio: 'ignore' });
      const s = { dir, sock, pid: 0, proc };
      servers.push(s);
      await waitForFile(join(dir, 'ready'), 10000);
      s.pid = Number(readFileSync(join(dir, 'ready'), 'utf8'));
      return s;
    }
    async function stopResident(s: Resident, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
      if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
      const gone = new Promise((r) => s.proc.once('exit', r));
      s.proc.kill(signal);
      await gone;
    }
    /** What the server saw: its connections, in order, with the request bytes it read to EOF (undefined: none read). */
    function seenBy(s: Resident): { reqs: (Buffer | undefined)[]; hangups: string[] } {
      const files = readdirSync(s.dir);
      const conns = files.filter((f) => /^\d+\.conn$/.test(f)).length;
      const reqs: (Buffer | undefined)[] = [];
      for (let i = 1; i <= conns; i++) {
        const p = join(s.dir, `${i}.req`);
        reqs.push(existsSync(p) ? readFileSync(p) : undefined);
      }
      return { reqs, hangups: files.filter((f) => f.endsWith('.hangup') || f.endsWith('.alive')).sort() };
    }
    /** The server records asynchronously: wait until it has seen `conns` connections and read `read` requests. */
    async function seen(s: Resident, conns: number, read: number): Promise<ReturnType<typeof seenBy>> {
      const end = Date.now() + 3000;
      for (;;) {
        const v = seenBy(s);
        if ((v.reqs.length === conns && v.reqs.filter((b) => b !== undefined).length === read) || Date.now() > end) return v;
        await sleep(20);
      }
    }
    const warnings = (r: TstResult) => r.syslog.filter((l) => l.prio <= 4 && !l.msg.startsWith('_pam_init_handlers'));
    const outcomes = (r: TstResult) => r.syslog.filter((l) => l.prio === 7 && /: agent result=/.test(l.msg)).map((l) => l.msg);
    const SERVED = ['authenticate=25', 'setcred=25', 'open_session=0', 'close_session=0', 'chauthtok/prelim=25', 'chauthtok/update=0'];

    test('a root server answering success serves open, close and chauthtok: agent= is not run; the same request bytes', async () => {
      clearDump(h);
      const s = await startResident('ok');
      const svc = neighbourService('required', `agent=${agent('agent-marker')} socket=${s.sock} debug`);
      const r = await runTst(h, svc, ALL);
      assertStacksSucceeded(r);
      assert.deepEqual(spyCodes(r), SERVED);
      assert.deepEqual(readdirSync(markerDir), [], 'the agent= program ran');
      assert.deepEqual(readDumps(h), []);
      assert.deepEqual(r.conv.filter((c) => c.text === 'hello from the resident agent').length, 3);
      assert.deepEqual(warnings(r), []);
      assert.deepEqual(outcomes(r), [
        'open_session: agent result=success (1 info, 0 error, session id); served by the resident agent; PAM_SUCCESS',
        'close_session: agent result=success (1 info, 0 error, session id); served by the resident agent; PAM_SUCCESS',
        'chauthtok: agent result=success (1 info, 0 error, session id); served by the resident agent; PAM_SUCCESS',
      ]);
      const { reqs } = await seen(s, 3, 3);
      const base = { user: 'root', service: svc, pam_pid: r.pid, debug: true };
      assert.deepEqual(reqs[0], expectedRequest({ ...base, phase: 'open_session' }, [['authtok', PW]]));
      // the session id from the resident agent's open_session reply comes back at close_session
      assert.deepEqual(reqs[1], expectedRequest({ ...base, phase: 'close_session', session: 'r1' }));
      assert.deepEqual(reqs[2], expectedRequest({ ...base, phase: 'chauthtok' }, [['authtok', PW], ['oldauthtok', OLD]]));
      for (const l of r.syslog) assert.ok(!l.msg.includes(PW.toString('utf8')) && !l.msg.includes(OLD.toString('utf8')));
      // the kept password was handed over once, then wiped and unmapped, as with a spawned agent
      const st = stashes(r);
      assert.equal(st.length, 1);
      assertStashLife(st[0], resultLine(r, 'authenticate'), resultLine(r, 'open_session'), 'served by the socket');
      await stopResident(s);
    });

    test('result=spawn before reading the request (as the worker answers for another namespace): the agent is spawned, its reply used', async () => {
      clearDump(h);
      const s = await startResident('spawn');
      const svc = neighbourService('required', `agent=${agent('agent-ok')} socket=${s.sock} debug`);
      const r = await runTst(h, svc, ALL);
      assertStacksSucceeded(r);
      assert.deepEqual(spyCodes(r), SERVED);
      assert.deepEqual(agentConv(r), [...AGENT_LINES, ...AGENT_LINES, ...AGENT_LINES]);
      assert.deepEqual(warnings(r), []);
      const dbg = r.syslog.filter((l) => l.prio === 7).map((l) => l.msg);
      for (const ph of ['open_session', 'close_session', 'chauthtok']) {
        assert.ok(dbg.includes(`${ph}: the resident agent at ${s.sock} answered result=spawn; spawning the agent`), ph);
      }
      assert.deepEqual(outcomes(r), [
        'open_session: agent result=success (2 info, 1 error, session id); spawned the agent; PAM_SUCCESS',
        'close_session: agent result=success (2 info, 1 error, session id); spawned the agent; PAM_SUCCESS',
        'chauthtok: agent result=success (2 info, 1 error, session id); spawned the agent; PAM_SUCCESS',
      ]);
      const reqs = requestsInOrder();
      assert.deepEqual(reqs.map((q) => q.fields.phase), ['open_session', 'close_session', 'chauthtok']);
      assert.deepEqual(reqs[0].secrets, { authtok: PW });
      // the spawned agent's session id, not one of the server's
      assert.match(reqs[1].fields.session, /^s\d+$/);
      assert.deepEqual((await seen(s, 3, 0)).reqs, [undefined, undefined, undefined]);
      await stopResident(s);
    });

    test('result=spawn after reading: the server and the spawned agent received the same bytes for each phase, secrets included', async () => {
      clearDump(h);
      const s = await startResident('read-spawn');
      const svc = neighbourService('required', `agent=${agent('agent-ok')} socket=${s.sock} unwrap`);
      const r = await runTst(h, svc, [...ALL, 'silent', 'open']);
      assert.deepEqual(spyCodes(r), [...SERVED, 'open_session=0']);
      assert.deepEqual(errors(r), []);
      const { reqs } = await seen(s, 4, 4);
      const dumps = readDumps(h).sort((a, b) => a.pid - b.pid);
      assert.equal(dumps.length, 4);
      for (const [i, d] of dumps.entries()) assert.ok(reqs[i]!.equals(d.req), `request ${i + 1}`);
      assert.deepEqual(
        reqs.map((q) => parseRequest(q!).fields.phase),
        ['open_session', 'close_session', 'chauthtok', 'open_session'],
      );
      assert.deepEqual(parseRequest(reqs[0]!).secrets, { authtok: PW });
      assert.deepEqual(parseRequest(reqs[2]!).secrets, { authtok: PW, oldauthtok: OLD });
      assert.equal(parseRequest(reqs[3]!).fields.silent, '1');
      await stopResident(s);
    });

    test('a server that never answers: fallback after timeout=1, no agent spawned, the connection hung up', async () => {
      clearDump(h);
      const s = await startResident('hang');
      const svc = service([`session optional ${ours(h, 'spy', `agent=${agent('agent-marker')} socket=${s.sock} timeout=1`)}`]);
      const r = await runTst(h, svc, ['open', 'close']);
      assert.equal(r.codes.open_session, PAM.PERM_DENIED); // libpam: a stack where every line ignored
      assert.deepEqual(spyCodes(r), ['open_session=25', 'close_session=25']);
      for (const k of ['open_session', 'close_session']) {
        assert.ok(r.ms[k] >= 950 && r.ms[k] < 2000, `${k} took ${r.ms[k]} ms`);
      }
      const timedOut = `agent timed out after 1 s (resident agent at ${s.sock}; hung up)`;
      assert.deepEqual(errors(r).map((l) => l.msg), [timedOut, timedOut]);
      assert.deepEqual(readdirSync(markerDir), [], 'agent spawned after a timeout');
      assert.deepEqual(
        r.conv.filter((c) => c.text.startsWith('ecryptfs-agent failed')).map((c) => c.text.split(';')[0]),
        ['ecryptfs-agent failed'],
      );
      // the request arrived, ended (the server saw EOF) …
      const { reqs } = await seen(s, 2, 2);
      assert.equal(parseRequest(reqs[0]!).fields.phase, 'open_session');
      assert.equal(parseRequest(reqs[1]!).fields.phase, 'close_session');
      // … and open_session's connection was closed by the module itself when it gave up: the
      // server's write on it when close_session connected failed (a worker would be killed)
      assert.deepEqual(seenBy(s).hangups, ['1.hangup']);
      assert.equal(readFileSync(join(s.dir, '1.hangup'), 'utf8'), 'EPIPE');
      await stopResident(s);
    });

    const badReplies: [string, string][] = [
      ['close', 'empty reply'],
      ['garbage', 'bad header line'],
      ['spawn-info', 'result=spawn with other lines'],
    ];
    for (const [mode, why] of badReplies) {
      test(`a server that answers ${mode === 'close' ? 'nothing (closes)' : mode}: fallback codes, logged, no agent spawned`, async () => {
        clearDump(h);
        const s = await startResident(mode);
        const svc = neighbourService('required', `agent=${agent('agent-marker')} socket=${s.sock}`);
        const r = await runTst(h, svc, ALL);
        assertStacksSucceeded(r);
        assert.deepEqual(spyCodes(r), ALL_IGNORED);
        const line = `malformed agent reply: ${why} (resident agent at ${s.sock})`;
        assert.deepEqual(errors(r).map((l) => l.msg), [line, line, line]);
        assert.deepEqual(readdirSync(markerDir), [], 'agent spawned after a failed resident agent');
        assert.equal((await seen(s, 3, 3)).reqs.length, 3, 'one connection per phase, no second try');
        assert.deepEqual(
          r.conv.filter((c) => c.text.startsWith('ecryptfs-agent failed')).map((c) => c.text.split(';')[0]),
          ['ecryptfs-agent failed', 'ecryptfs-agent failed during the password change'],
        );
        await stopResident(s);
      });
    }

    test('no usable socket (none, stale, not a socket, path too long): the agent is spawned; logged unless there is none', async () => {
      const stale = await startResident('ok');
      await stopResident(stale, 'SIGKILL'); // its socket file stays, nobody listens
      assert.ok(existsSync(stale.sock));
      const file = join(h.root, 'not-a-socket');
      writeFileSync(file, '');
      const long = `/${'x'.repeat(107)}`;
      const cases: [string, string, string[]][] = [
        ['absent', join(h.root, 'absent.sock'), []],
        ['stale', stale.sock, [`resident agent at ${stale.sock}: Connection refused; spawning the agent`]],
        ['regular file', file, [`resident agent at ${file}: Connection refused; spawning the agent`]],
        ['108 bytes', long, ['resident agent socket path longer than 107 bytes; spawning the agent']],
      ];
      for (const [what, sock, logged] of cases) {
        clearDump(h);
        const svc = neighbourService('required', `agent=${agent('agent-marker')} socket=${sock} debug`);
        const r = await runTst(h, svc, ['auth', 'open', 'close']);
        assert.deepEqual(spyCodes(r), ['authenticate=25', 'open_session=0', 'close_session=0'], what);
        assert.deepEqual(readdirSync(markerDir), ['marker-agent-marker'], what);
        assert.deepEqual(warnings(r).map((l) => l.msg), [...logged, ...logged], what);
        assert.ok(outcomes(r).every((l) => l.endsWith('; spawned the agent; PAM_SUCCESS')), what);
      }
    });

    test('a socket whose server is not root (nobody): refused (SO_PEERCRED), nothing sent to it, the agent is spawned', async () => {
      clearDump(h);
      const s = await startResident('ok', 65534);
      const svc = neighbourService('required', `agent=${agent('agent-ok')} socket=${s.sock}`);
      const r = await runTst(h, svc, ALL);
      assertStacksSucceeded(r);
      assert.deepEqual(spyCodes(r), SERVED);
      const line = `refusing the socket ${s.sock}: its server is not root (uid 65534, pid ${s.pid}); spawning the agent`;
      assert.deepEqual(errors(r).map((l) => l.msg), [line, line, line]);
      assert.deepEqual(agentConv(r), [...AGENT_LINES, ...AGENT_LINES, ...AGENT_LINES]);
      assert.deepEqual(requestsInOrder().map((q) => q.secrets), [{ authtok: PW }, {}, { authtok: PW, oldauthtok: OLD }]);
      // it was connected to, and read nothing before the module hung up
      assert.deepEqual((await seen(s, 3, 3)).reqs.map((b) => b?.length), [0, 0, 0]);
      await stopResident(s);
    });

    test('socket=none: the agent is spawned although a server listens; invalid socket= values logged and ignored', async () => {
      clearDump(h);
      const s = await startResident('ok');
      const svc = service([
        `session optional ${ours(h, 'spy', `agent=${agent('agent-marker')} socket=${s.sock} socket=none`)}`,
        `session optional ${ours(h, 'spy', `agent=${agent('agent-marker')} socket=agent.sock socket=`)}`,
      ]);
      const r = await runTst(h, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=0', 'open_session=0']);
      assert.deepEqual(readdirSync(markerDir), ['marker-agent-marker']);
      assert.deepEqual(errors(r).map((l) => l.msg), [
        'invalid option "socket=agent.sock" (an absolute path, or none) ignored',
        'invalid option "socket=" (an absolute path, or none) ignored',
      ]);
      await sleep(100);
      assert.deepEqual(seenBy(s).reqs, [], 'the server was connected to');
      await stopResident(s);
    });

    test('without socket=, the module asks /run/ecryptfs-agent/agent.sock (the fake bound there in a mount namespace of the driver)', async () => {
      clearDump(h);
      const s = await startResident('ok');
      const stateDir = '/run/ecryptfs-agent';
      if (!existsSync(stateDir)) mkdirSync(stateDir, { mode: 0o700 });
      // only the driver sees the fake's directory there: the host's is left alone
      const wrapper = join(h.root, 'bin', 'tst-retval-ns');
      writeFileSync(
        wrapper,
        `#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount --bind "$0" ${stateDir} && exec "$@"' '${s.dir}' '${h.tst}' "$@"\n`,
        { mode: 0o755 },
      );
      const svc = service([`session optional ${h.spy} module=${modulePath} -- agent=${agent('agent-marker')} debug`]);
      const r = await runTst({ ...h, tst: wrapper }, svc, ['open']);
      assert.deepEqual(spyCodes(r), ['open_session=0']);
      assert.deepEqual(outcomes(r), [
        'open_session: agent result=success (1 info, 0 error, session id); served by the resident agent; PAM_SUCCESS',
      ]);
      assert.deepEqual(readdirSync(markerDir), []);
      assert.equal(parseRequest((await seen(s, 1, 1)).reqs[0]!).fields.pam_pid, String(r.pid));
      await stopResident(s);
    });
  });

  test('pamtester (a real PAM client) with /etc/pam.d/eat-shim-*: the typed password reaches the agent at open_session', () => {
    clearDump(h);
    const svc = `eat-shim-${randomBytes(4).toString('hex')}`;
    const file = join('/etc/pam.d', svc);
    writeFileSync(
      file,
      [
        'auth     required pam_permit.so',
        `auth     optional ${h.spy} prompt`,
        `auth     optional ${modulePath} agent=${agent('agent-ok')}`,
        'account  required pam_permit.so',
        'session  required pam_permit.so',
        `session  optional ${modulePath} agent=${agent('agent-ok')} socket=none`,
      ].join('\n') + '\n',
    );
    try {
      // a missing service silently falls back to /etc/pam.d/other
      assert.ok(existsSync(file));
      const p = spawnSync('pamtester', ['-v', svc, 'root', 'authenticate', 'open_session', 'close_session'], {
        input: 'typed secret\n',
        encoding: 'utf8',
      });
      assert.equal(p.status, 0, p.stderr + p.stdout);
      const all = p.stdout + p.stderr;
      assert.match(all, /successfully authenticated/);
      assert.match(all, /successfully opened a session/);
      assert.match(all, /session has successfully been closed/);
      assert.equal(all.split('hello from the agent').length - 1, 2); // open_session, close_session
      const dumps = readDumps(h);
      const reqs = new Map(dumps.map((d) => [parseRequest(d.req).fields.phase, { d, q: parseRequest(d.req) }]));
      assert.deepEqual([...reqs.keys()].sort(), ['close_session', 'open_session']);
      assert.deepEqual(reqs.get('open_session')!.q.secrets, { authtok: Buffer.from('typed secret') });
      assert.deepEqual(reqs.get('close_session')!.q.secrets, {});
      assert.equal(reqs.get('open_session')!.q.fields.service, svc);
      assert.equal(reqs.get('close_session')!.q.fields.session, `s${reqs.get('open_session')!.d.pid}`);
    } finally {
      rmSync(file, { force: true });
    }
    assert.equal(existsSync(file), false);
  });
});
