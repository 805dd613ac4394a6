/**
 * The session agent's phases against the real kernel keyring and files made by the reference
 * tools (ecryptfs-utils 111), driven exactly as the PAM shim drives it (request on stdin).
 * This host kernel has no eCryptfs module: every step up to mount(2) is asserted here (keys,
 * checks, session counts, messages); the mount itself is proven in the VM suite.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAgent } from '../helpers/agent';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, userKeys, type TestUser, type UtilsSetup } from '../helpers/users';

const users: TestUser[] = [];
function newUser(opts: { fnek?: boolean; autoMount?: boolean } = {}): { u: TestUser; s: UtilsSetup } {
  const u = createUser('eatag');
  users.push(u);
  return { u, s: setupPrivateWithUtils(u, opts) };
}
const pw = (u: TestUser) => Buffer.from(u.password);
const sessionsOf = (u: TestUser): number => {
  const f = `/run/ecryptfs-agent/${u.uid}.sessions`;
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { sessions: unknown[] }).sessions.length : 0;
};

before(() => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  assert.ok(existsSync('/usr/bin/ecryptfs-wrap-passphrase'), 'ecryptfs-utils (the reference peer) must be installed');
  assert.ok(!existsSync('/sys/fs/ecryptfs'), 'this suite expects a kernel without eCryptfs (the VM suite covers mounting)');
});
after(() => {
  for (const u of users) deleteUser(u);
});

describe('auth', () => {
  test('right password: FEK auth tok in the user keyring, with an expiry, nothing said', () => {
    const { u, s } = newUser();
    const r = runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.equal(r.result, 'ignore');
    assert.deepEqual([r.info, r.error], [[], []]);
    const keys = userKeys(u);
    assert.deepEqual(keys.map((k) => k.description), [s.fekSig]);
    assert.notEqual(keys[0]?.timeout, 'perm', 'a key added at auth expires unless a session keeps it');
    // The payload is the one ecryptfs-utils would have added: compare with keyctl's bytes.
    const ours = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s && keyctl pipe $(keyctl search @u user ${s.fekSig}) | od -An -v -tx1 | tr -d ' \\n'`]);
    const ref = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s; keyctl clear @u; printf '%s' "$1" | ecryptfs-add-passphrase - >/dev/null && keyctl pipe $(keyctl search @u user ${s.fekSig}) | od -An -v -tx1 | tr -d ' \\n'`, 'sh', s.mountPassphrase]);
    assert.equal(ours.stdout.length, 1480);
    assert.equal(ours.stdout, ref.stdout);
  });

  test('FNEK setup: both auth toks', () => {
    const { u, s } = newUser({ fnek: true });
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.deepEqual(userKeys(u).map((k) => k.description).sort(), [s.fekSig, s.fnekSig].sort());
  });

  test('wrong password: no key at all', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'auth', user: u.name, authtok: Buffer.from('wrong') });
    assert.equal(r.result, 'ignore');
    assert.deepEqual(userKeys(u), []);
  });

  test('a corrupted keyfile (one ciphertext byte flipped) unwraps to garbage: nothing inserted', () => {
    const { u } = newUser();
    const f = join(u.home, '.ecryptfs', 'wrapped-passphrase');
    const buf = readFileSync(f);
    buf[buf.length - 1] = (buf[buf.length - 1] as number) ^ 0x01;
    writeFileSync(f, buf);
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.deepEqual(userKeys(u), [], 'garbage keys never reach the keyring');
    const open = runAgent({ phase: 'open_session', user: u.name });
    assert.equal(open.result, 'success');
    assert.match(open.error.join(' '), /does not match ~\/\.ecryptfs\/Private\.sig/);
  });

  test("a killed re-wrap's temp file is removed at the next login; a live writer's is kept", () => {
    const { u } = newUser();
    const dir = join(u.home, '.ecryptfs');
    const dead = spawnSync('true').pid as number; // exited and reaped: its pid is gone
    const killed = `wrapped-passphrase.tmp-${dead}-Ab12Cd`;
    const live = `wrapped-passphrase.tmp-${process.pid}-Ef34Gh`;
    for (const name of [killed, live]) writeFileSync(join(dir, name), 'wrapped bytes', { mode: 0o600 });
    const r = runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.equal(r.result, 'ignore');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [live]);
    rmSync(join(dir, live));
  });

  test('no auto-mount: nothing happens at auth (like pam_ecryptfs)', () => {
    const { u } = newUser({ autoMount: false });
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.deepEqual(userKeys(u), []);
  });

  test('user without any eCryptfs setup and unknown user: quiet ignore', () => {
    const u = createUser('eatno');
    users.push(u);
    assert.deepEqual(runAgent({ phase: 'auth', user: u.name, authtok: pw(u) }).result, 'ignore');
    const unknown = runAgent({ phase: 'open_session', user: 'eat-no-such-user' });
    assert.deepEqual([unknown.result, unknown.error], ['ignore', []]);
  });
});

describe('open_session and close_session (mount itself: VM suite)', () => {
  test('after a good auth: session counted, mount attempted and reported, keys not left behind', () => {
    const { u } = newUser();
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    const open = runAgent({ phase: 'open_session', user: u.name });
    assert.equal(open.result, 'success');
    assert.match(open.session ?? '', /^[A-Za-z0-9_-]+$/);
    assert.equal(sessionsOf(u), 1);
    // No eCryptfs in this kernel: mount(2) says ENODEV; the user is told, the keys are not kept.
    assert.match(open.error.join(' '), /could not be mounted/);
    assert.match(open.error.join(' '), /modprobe ecryptfs/);
    assert.deepEqual(userKeys(u), []);
    const close = runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    assert.equal(close.result, 'success');
    assert.equal(sessionsOf(u), 0);
    const again = runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    assert.equal(again.result, 'success', 'a second close is harmless');
    assert.equal(sessionsOf(u), 0);
  });

  test('overlapping sessions are counted; close of one keeps the other', () => {
    const { u } = newUser();
    const a = runAgent({ phase: 'open_session', user: u.name });
    const b = runAgent({ phase: 'open_session', user: u.name });
    assert.equal(sessionsOf(u), 2);
    runAgent({ phase: 'close_session', user: u.name, session: a.session ?? '' });
    assert.equal(sessionsOf(u), 1);
    runAgent({ phase: 'close_session', user: u.name, session: b.session ?? '' });
    assert.equal(sessionsOf(u), 0);
  });

  test('a session whose opener died is pruned at the next event', () => {
    const { u } = newUser();
    const child = spawnSync('sh', ['-c', 'echo $$']);
    const deadPid = Number(child.stdout.toString().trim());
    runAgent({ phase: 'open_session', user: u.name, pamPid: process.pid });
    // Records a session for a process that is already gone: rejected (no start time), nothing counted.
    const ghost = runAgent({ phase: 'open_session', user: u.name, pamPid: deadPid });
    assert.equal(ghost.result, 'ignore');
    assert.equal(sessionsOf(u), 1);
  });

  test('ssh key login (no auth before): one clear line how to unlock, login proceeds', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'open_session', user: u.name, service: 'sshd' });
    assert.equal(r.result, 'success');
    assert.match(r.info.join(' '), /~\/Private is locked .*ecryptfs-agent unlock/);
  });

  test('password changed by root (keyfile wrapped with the old one): detected and explained at login', () => {
    const { u } = newUser();
    runAgent({ phase: 'auth', user: u.name, authtok: Buffer.from('the-new-password') });
    const r = runAgent({ phase: 'open_session', user: u.name });
    assert.match(r.error.join(' '), /does not unwrap .*rewrap-passphrase/);
  });

  test('concurrent logins: a last logout hands the keys over to a login between its auth and its open_session', () => {
    const { u } = newUser();
    const first = runAgent({ phase: 'open_session', user: u.name }); // a session already open
    // a second login's PAM process: alive while it goes from auth to open_session
    const login = spawn('sleep', ['120']);
    try {
      runAgent({ phase: 'auth', user: u.name, authtok: pw(u), pamPid: login.pid as number });
      assert.equal(userKeys(u).length, 1);
      runAgent({ phase: 'close_session', user: u.name, session: first.session ?? '' }); // the last logout
      const handed = userKeys(u);
      assert.equal(handed.length, 1, 'the pending login keeps its key');
      assert.notEqual(handed[0]?.timeout, 'perm', 'handed over with an expiry, not kept forever');
      const open = runAgent({ phase: 'open_session', user: u.name, pamPid: login.pid as number });
      assert.doesNotMatch(open.info.join(' '), /is locked/, 'the login found its key');
      assert.match(open.error.join(' '), /could not be mounted/, 'it went on to mount(2) (no eCryptfs in this kernel)');
      runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    } finally {
      login.kill('SIGKILL');
    }
    assert.deepEqual(userKeys(u), []);
    assert.equal(existsSync(`/run/ecryptfs-agent/${u.uid}.auth`), false, 'no auth note left behind');
  });

  test('a login that authenticated and then died gets no keys handed over: the last logout unlinks them', () => {
    const { u } = newUser();
    const first = runAgent({ phase: 'open_session', user: u.name });
    const login = spawnSync('sh', ['-c', 'echo $$']);
    const gonePid = Number(login.stdout.toString().trim());
    // the note of a finished process; its keys were added with the auth expiry
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u), pamPid: gonePid });
    runAgent({ phase: 'close_session', user: u.name, session: first.session ?? '' });
    assert.deepEqual(userKeys(u), []);
    assert.equal(existsSync(`/run/ecryptfs-agent/${u.uid}.auth`), false);
  });

  test('systemd user manager sessions are not counted', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'open_session', user: u.name, service: 'systemd-user' });
    assert.equal(r.result, 'ignore');
    assert.equal(sessionsOf(u), 0);
  });

  for (const [name, arrange, expect] of [
    ['~/Private is a symlink', (u: TestUser) => {
      rmSync(join(u.home, 'Private'), { recursive: true });
      symlinkSync('/etc', join(u.home, 'Private'));
      spawnSync('chown', ['-h', `${u.uid}:${u.gid}`, join(u.home, 'Private')]);
    }, /symbolic link/],
    ['Private.mnt points at /proc', (u: TestUser) => writeFileSync(join(u.home, '.ecryptfs', 'Private.mnt'), '/proc\n'), /does not own the mount point \/proc/],
    ['Private.mnt points at /etc', (u: TestUser) => writeFileSync(join(u.home, '.ecryptfs', 'Private.mnt'), '/etc\n'), /does not own the mount point \/etc/],
    ['Private.mnt with ..', (u: TestUser) => writeFileSync(join(u.home, '.ecryptfs', 'Private.mnt'), `${u.home}/../root\n`), /normalised|\.\./],
    ['~/.Private missing', (u: TestUser) => rmSync(join(u.home, '.Private'), { recursive: true }), /does not exist/],
  ] as const) {
    test(`hostile or broken layout refused before mount(2): ${name}`, () => {
      const { u } = newUser();
      arrange(u);
      runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
      const r = runAgent({ phase: 'open_session', user: u.name });
      assert.equal(r.result, 'success');
      assert.match(r.error.join(' '), expect);
      assert.doesNotMatch(r.error.join(' '), /modprobe/, 'refused before reaching mount(2)');
      assert.deepEqual(userKeys(u), [], 'no key left behind');
    });
  }
});

describe('chauthtok', () => {
  const refUnwrap = (u: TestUser, password: string) =>
    asUserRun(u, ['ecryptfs-unwrap-passphrase', join(u.home, '.ecryptfs', 'wrapped-passphrase'), '-'], password);

  test('rewraps with the new password; the reference tool unwraps it; owner and mode kept', () => {
    const { u, s } = newUser();
    const r = runAgent({ phase: 'chauthtok', user: u.name, oldauthtok: pw(u), authtok: Buffer.from('brand new pw') });
    assert.equal(r.result, 'success');
    assert.equal(refUnwrap(u, 'brand new pw').stdout.trim(), s.mountPassphrase);
    assert.notEqual(refUnwrap(u, u.password).status, 0);
    const st = statSync(join(u.home, '.ecryptfs', 'wrapped-passphrase'));
    assert.equal(st.uid, u.uid);
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(u.home, '.ecryptfs')).filter((f) => f.startsWith('wrapped-passphrase') && f !== 'wrapped-passphrase'), [], 'no temp file left');
  });

  test('wrong old password or no old password (root reset): file untouched, explained', () => {
    const { u } = newUser();
    const f = join(u.home, '.ecryptfs', 'wrapped-passphrase');
    const before = readFileSync(f);
    const wrong = runAgent({ phase: 'chauthtok', user: u.name, oldauthtok: Buffer.from('nope'), authtok: Buffer.from('new') });
    assert.equal(wrong.result, 'ignore');
    assert.match(wrong.error.join(' '), /old password does not unwrap it\); nothing was changed/);
    const reset = runAgent({ phase: 'chauthtok', user: u.name, authtok: Buffer.from('new') });
    assert.match(reset.error.join(' '), /still wrapped with the old password/);
    assert.deepEqual(readFileSync(f), before);
  });
});

describe('secrets', () => {
  test('the password is in no state file and no temp file after a full cycle', () => {
    const { u, s } = newUser();
    runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    const open = runAgent({ phase: 'open_session', user: u.name });
    runAgent({ phase: 'chauthtok', user: u.name, oldauthtok: pw(u), authtok: Buffer.from(u.password + 'X') });
    runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    const grep = spawnSync('grep', ['-rlaF', '-e', u.password, '-e', s.mountPassphrase, '/run/ecryptfs-agent', '/tmp', '/var/tmp', '/dev/shm']);
    assert.equal(grep.stdout.toString(), '', 'no file holds the password or the mount passphrase');
  });
});
