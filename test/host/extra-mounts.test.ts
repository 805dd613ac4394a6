/**
 * Extra mounts through the real agent (request on stdin, as the PAM shim sends it), the real
 * kernel keyring and real files, on a kernel without eCryptfs: every decision before mount(2)
 * is asserted here (which entries are attempted, skipped or refused, and why; what the user is
 * told; unsafe files; keys not left behind; the logout over a recorded state). An attempted
 * mount ends in ENODEV ("modprobe ecryptfs"), which proves it reached mount(2); the mounts
 * themselves are proven in test/vm/extra-mounts.vm.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, runAgent } from '../helpers/agent';
import { SyslogCapture } from '../helpers/syslog';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, userKeys, type TestUser, type UtilsSetup } from '../helpers/users';

const syslog = new SyslogCapture();
let capturing = false;
const users: TestUser[] = [];
const mounted: string[] = [];

before(async () => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  assert.ok(!existsSync('/sys/fs/ecryptfs'), 'this suite expects a kernel without eCryptfs (the VM suite covers mounting)');
  capturing = await syslog.start();
  assert.ok(capturing, '/dev/log stayed busy: cannot read the agent log');
});
after(() => {
  for (const m of mounted.reverse()) spawnSync('umount', ['-l', m]);
  for (const u of users) {
    deleteUser(u);
    spawnSync('rm', ['-f', `/run/ecryptfs-agent/${u.uid}.extra-mounts`]);
  }
  syslog.stop();
});

function newUser(opts: { autoMount?: boolean } = {}): { u: TestUser; s: UtilsSetup } {
  const u = createUser('eatx');
  users.push(u);
  return { u, s: setupPrivateWithUtils(u, opts) };
}
const pw = (u: TestUser) => Buffer.from(u.password);
function dirAs(u: TestUser, path: string, owner: 'user' | 'root' = 'user'): string {
  mkdirSync(path);
  chmodSync(path, owner === 'user' ? 0o700 : 0o755); // root's: the user can open it, and is refused as not its owner
  if (owner === 'user') chownSync(path, u.uid, u.gid);
  return path;
}
function writeList(u: TestUser, text: string, mode = 0o600): string {
  const f = join(u.home, '.ecryptfs', 'extra-mounts');
  writeFileSync(f, text);
  chmodSync(f, mode); // not through the umask
  chownSync(f, u.uid, u.gid);
  return f;
}
const state = (u: TestUser) => `/run/ecryptfs-agent/${u.uid}.extra-mounts`;
const OTHER_SIG = 'abcdefabcdef0123';

async function login(u: TestUser): Promise<{ info: string; error: string; log: string[]; session: string }> {
  const r = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
  assert.equal(r.result, 'success', 'a login always proceeds');
  return { info: r.info.join('\n'), error: r.error.join('\n'), log: await syslog.linesOf(r.pid, 2), session: r.session ?? '' };
}
const logLine = (log: string[], re: RegExp): string => {
  const l = log.find((x) => re.test(x));
  assert.ok(l, `no log line matching ${re} in:\n${log.join('\n')}`);
  return l;
};

describe('open_session: which extra mounts are attempted, skipped or refused, and why', () => {
  test('keys present → attempted (mount(2) reached); key missing, encrypted directory missing → skipped; told; no key left behind', async () => {
    const { u, s } = newUser();
    dirAs(u, join(u.home, '.A'));
    dirAs(u, join(u.home, 'A'));
    dirAs(u, join(u.home, '.B'));
    dirAs(u, join(u.home, 'B'));
    dirAs(u, join(u.home, 'C'));
    writeList(
      u,
      [
        '# work directories',
        `${u.home}/.A ${u.home}/A ecryptfs ecryptfs_sig=${s.fekSig}`,
        `${u.home}/.B ${u.home}/B ecryptfs ecryptfs_sig=${OTHER_SIG}`,
        `/nonexistent-eatx/enc ${u.home}/C ecryptfs ecryptfs_sig=${s.fekSig}`,
      ].join('\n') + '\n',
    );
    const r = await login(u);
    // ~/Private first (its own failure, unchanged), then ~/A attempted with the same key
    assert.match(r.error, /~\/Private could not be mounted/);
    assert.match(r.error, /~\/A could not be mounted: .*modprobe ecryptfs/);
    assert.match(logLine(r.log, /^extra mount failed/), new RegExp(`mount=${u.home}/A .*entry="~/\\.ecryptfs/extra-mounts line 2".*code=NO_ECRYPTFS`));
    // ~/B: its key is not in the keyring; ~/Private is locked too, so no extra line for it
    assert.match(logLine(r.log, /^extra mount skipped: key/), new RegExp(`key\\(s\\) not in the user keyring: ${OTHER_SIG} .*mount=${u.home}/B .*outcome=extra-keys-missing`));
    assert.doesNotMatch(r.info + r.error, /~\/B/);
    // ~/C: the encrypted directory is not there (an sshfs not mounted yet)
    assert.match(r.info, /~\/C is not mounted: \/nonexistent-eatx\/enc is not there\. Make it available/);
    assert.match(logLine(r.log, /outcome=extra-lower-missing/), /^extra mount skipped: the encrypted directory \/nonexistent-eatx\/enc is not there/);
    assert.deepEqual(userKeys(u), [], 'the key neither ~/Private nor ~/A could use is not left behind');
    assert.ok(!existsSync(state(u)), 'nothing mounted, nothing recorded');
  });

  test('hostile entries are refused before mount(2), each with its line and fix; ~/Private is still tried', async () => {
    const { u, s } = newUser();
    const sig = `ecryptfs_sig=${s.fekSig}`;
    dirAs(u, join(u.home, '.D'));
    symlinkSync('/etc', join(u.home, 'D'));
    spawnSync('chown', ['-h', `${u.uid}:${u.gid}`, join(u.home, 'D')]);
    dirAs(u, join(u.home, '.E'), 'root');
    dirAs(u, join(u.home, 'E'));
    dirAs(u, join(u.home, '.P'));
    dirAs(u, join(u.home, 'P'));
    writeList(
      u,
      [
        `${u.home}/.D ${u.home}/D ecryptfs ${sig}`, // upper is a symlink to /etc
        `${u.home}/.E ${u.home}/E ecryptfs ${sig}`, // lower owned by root
        `${u.home}/.F ${u.home}/F ecryptfs ${sig},relatime`, // unknown option
        `${u.home}/.G /etc/G ecryptfs ${sig}`, // upper outside the home
        `/proc/1 ${u.home}/P ecryptfs ${sig}`, // lower on procfs (CVE-2016-1583), owned by root
      ].join('\n'),
    );
    const r = await login(u);
    assert.match(r.error, /~\/Private could not be mounted/, '~/Private is handled as before');
    assert.match(logLine(r.log, new RegExp(`mount=${u.home}/D `)), /^extra mount failed: .*symbolic link.*code=SYMLINK_REFUSED/);
    assert.match(logLine(r.log, new RegExp(`mount=${u.home}/E `)), /^extra mount failed: .*does not own the encrypted directory .*code=BAD_OWNER/);
    assert.match(logLine(r.log, /line 3/), /^extra mount entry refused: ~\/\.ecryptfs\/extra-mounts line 3: unknown option "relatime".*fix="Remove it; understood here: ecryptfs_sig=/);
    assert.match(logLine(r.log, /line 4/), /not inside .* home/);
    // /proc/1 is root's: refused on the owner (or the type), never mounted
    assert.match(logLine(r.log, new RegExp(`mount=${u.home}/P `)), /^extra mount failed: .*(does not own the encrypted directory|unapproved filesystem type)/);
    for (const l of r.log.filter((x) => x.startsWith('extra mount'))) assert.doesNotMatch(l, /NO_ECRYPTFS/, `refused before mount(2): ${l}`);
    // the user sees the first four of them and where the rest is
    assert.match(r.error, /line 3: unknown option "relatime"; not mounted\. Fix: Remove it/);
    assert.match(r.error, /line 4: .*not inside/);
    assert.match(r.info, /\(\d+ more about extra mounts: journalctl -t ecryptfs-agent\)/);
    assert.deepEqual(userKeys(u), []);
  });

  test("a directory of the user's own that is on procfs is refused by the filesystem-type whitelist", async () => {
    const { u, s } = newUser();
    dirAs(u, join(u.home, 'Q'));
    // /proc/PID of a process of the user is owned by the user: only the type check stops it
    const sleeper = spawnSync('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', 'sh', '-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(sleeper.stdout.trim());
    try {
      writeList(u, `/proc/${pid} ${u.home}/Q ecryptfs ecryptfs_sig=${s.fekSig}\n`);
      const r = await login(u);
      assert.match(logLine(r.log, new RegExp(`mount=${u.home}/Q `)), /refusing to use an encrypted directory on an unapproved filesystem type: 0x9fa0 .*fix="Keep the encrypted directory on a disk/);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  for (const [name, arrange, expect] of [
    ['writable by the group', (u: TestUser) => writeList(u, 'x', 0o620), /extra-mounts: .* has mode 0620: group or others may write it.*Fix: chmod go-w/],
    ['a symbolic link', (u: TestUser) => {
      const real = join(u.home, 'list');
      writeFileSync(real, 'x');
      chownSync(real, u.uid, u.gid);
      symlinkSync(real, join(u.home, '.ecryptfs', 'extra-mounts'));
    }, /extra-mounts: .*symbolic link/],
    ['owned by root', (u: TestUser) => writeFileSync(join(u.home, '.ecryptfs', 'extra-mounts'), 'x', { mode: 0o644 }), /extra-mounts: .*owned by uid 0/],
  ] as const) {
    test(`an unsafe ~/.ecryptfs/extra-mounts (${name}) is not read: one clear line, nothing from it`, async () => {
      const { u } = newUser();
      arrange(u);
      const r = await login(u);
      assert.match(r.error, expect);
      assert.match(logLine(r.log, /^extra mount entry refused/), /outcome=extra-invalid/);
      assert.equal(r.log.filter((l) => /^extra mount (failed|mounted|skipped)/.test(l)).length, 0);
    });
  }

  test('no auto-mount: extra mounts are not looked at', async () => {
    const { u, s } = newUser({ autoMount: false });
    writeList(u, `${u.home}/.A ${u.home}/A ecryptfs ecryptfs_sig=${s.fekSig},bogus\n`);
    const r = runAgent({ phase: 'open_session', user: u.name });
    const log = await syslog.linesOf(r.pid, 1);
    assert.deepEqual([r.info, r.error], [[], []]);
    assert.equal(log.filter((l) => l.startsWith('extra mount')).length, 0);
  });
});

describe('mount points in use and the last logout', () => {
  test('something already mounted there is left alone at login and at logout; recorded keys are unlinked when no mount uses them', async () => {
    const { u, s } = newUser();
    const T = dirAs(u, join(u.home, 'T'));
    dirAs(u, join(u.home, '.T'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'eatx-tmpfs', T]);
    mounted.push(T);
    writeList(u, `${u.home}/.T ${T} ecryptfs ecryptfs_sig=${s.fekSig}\n`);
    const r = await login(u);
    assert.match(logLine(r.log, new RegExp(`mount=${T} `)), /^extra mount skipped: tmpfs is already mounted there \(not by a login\); left alone .*outcome=extra-mounted-by-other/);
    assert.doesNotMatch(r.error + r.info, /~\/T/);

    // What an earlier login would have recorded: ~/T (now a tmpfs, so not ours any more) and
    // ~/X (unmounted by hand), with a key of their own that is in the keyring.
    const K = '0123012301230123';
    const add = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s && head -c 740 /dev/zero | keyctl padd user ${K} @u >/dev/null`]);
    assert.equal(add.status, 0, add.stderr);
    assert.ok(userKeys(u).some((k) => k.description === K));
    const rec = (upper: string, sigs: string[]) => ({ upper, lower: `${upper}.enc`, sigs, where: 'test line 1', mounted: new Date().toISOString() });
    writeFileSync(state(u), JSON.stringify({ version: 1, uid: u.uid, mounts: [rec(T, [s.fekSig]), rec(join(u.home, 'X'), [K])] }), { mode: 0o600 });

    const close = runAgent({ phase: 'close_session', user: u.name, session: r.session });
    assert.equal(close.result, 'success');
    const log = await syslog.linesOf(close.pid, 3);
    const looked = log.filter((l) => /^extra mount (already gone|left alone)/.test(l));
    assert.deepEqual(looked.map((l) => /mount=(\S+)/.exec(l)?.[1]), [join(u.home, 'X'), T], 'looked at in reverse order of mounting');
    assert.match(looked[0]!, /^extra mount already gone .*outcome=extra-gone/);
    assert.match(looked[1]!, /^extra mount left alone: a tmpfs mount is there now .*outcome=extra-not-yours/);
    assert.equal(spawnSync('mountpoint', ['-q', T]).status, 0, 'the tmpfs that is not ours is still mounted');
    assert.ok(!existsSync(state(u)), 'nothing left recorded');
    assert.deepEqual(userKeys(u), [], 'the recorded key no mount uses is unlinked with ~/Private\'s');
    assert.match(logLine(log, /^last session closed/), new RegExp(`keys_removed=.*${K}`));
  });

  test('sessions remain: recorded extra mounts and their keys are kept', async () => {
    const { u } = newUser();
    const a = runAgent({ phase: 'open_session', user: u.name });
    const b = runAgent({ phase: 'open_session', user: u.name });
    const body = JSON.stringify({ version: 1, uid: u.uid, mounts: [{ upper: join(u.home, 'X'), lower: '/x', sigs: [OTHER_SIG], where: 'l', mounted: 't' }] });
    writeFileSync(state(u), body, { mode: 0o600 });
    runAgent({ phase: 'close_session', user: u.name, session: a.session ?? '' });
    assert.equal(readFileSync(state(u), 'utf8'), body, 'untouched while a session is open');
    runAgent({ phase: 'close_session', user: u.name, session: b.session ?? '' });
    assert.ok(!existsSync(state(u)));
  });
});

describe('the CLI', () => {
  const cli = (...args: string[]) => spawnSync(join(REPO, 'bin', 'ecryptfs-agent'), args, { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });

  test('status lists the extra mounts and the refused lines', () => {
    const { u, s } = newUser();
    writeList(u, `${u.home}/.A ${u.home}/A ecryptfs ecryptfs_sig=${s.fekSig}\n${u.home}/.B ${u.home}/B ecryptfs ecryptfs_sig=${s.fekSig},dev\n`);
    const r = cli('status', u.name);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^  extra mounts: 1 /m);
    assert.match(r.stdout, new RegExp(`^    ${u.home}/\\.A -> ${u.home}/A: not mounted \\[~/\\.ecryptfs/extra-mounts line 1\\]$`, 'm'));
    assert.match(r.stdout, /^    REFUSED ~\/\.ecryptfs\/extra-mounts line 2: "dev" is never granted.*\(fix: Remove dev\)$/m);
    const json = JSON.parse(cli('status', '--json', u.name).stdout) as { extraMounts: { entries: unknown[]; problems: string[] } };
    assert.equal(json.extraMounts.entries.length, 1);
  });

  test('lock -u USER (root): the recorded extra mounts first, then the keys no mount uses', () => {
    const { u } = newUser();
    const K = '4567456745674567';
    asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s && head -c 740 /dev/zero | keyctl padd user ${K} @u >/dev/null`]);
    writeFileSync(state(u), JSON.stringify({ version: 1, uid: u.uid, mounts: [{ upper: join(u.home, 'X'), lower: '/x', sigs: [K], where: 'l', mounted: 't' }] }), { mode: 0o600 });
    const r = cli('lock', '-u', u.name);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`is not mounted; removed its keys ${K}`));
    assert.ok(!existsSync(state(u)));
    assert.deepEqual(userKeys(u), []);
  });

  test('lock as the user (no root) says how the extra mounts are locked', () => {
    const { u, s } = newUser();
    writeList(u, `${u.home}/.A ${u.home}/A ecryptfs ecryptfs_sig=${s.fekSig}\n`);
    const r = asUserRun(u, [join(REPO, 'bin', 'ecryptfs-agent'), 'lock']);
    assert.match(r.stdout, new RegExp(`1 extra mount\\(s\\) are configured; they need root: sudo ecryptfs-agent lock -u ${u.name}`));
  });
});
