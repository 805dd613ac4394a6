/**
 * The session agent's phases against the real kernel keyring and files made by the reference
 * tools (ecryptfs-utils 111), driven exactly as the PAM shim drives it (request on stdin).
 * This host kernel has no eCryptfs module: every step up to mount(2) is asserted here (keys,
 * checks, session counts, messages); the mount itself is proven in the VM suite.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asUser, lookupUser } from '../../src/os/credentials';
import { loadPrivateSetup } from '../../src/actions/private-setup';
import { deriveCheckedMountKeys, insertDerivedKeys, possessUserKeyring, unwrapMountPassphrase, wipeMountKeys } from '../../src/actions/keys';
import { REPO, runAgent } from '../helpers/agent';
import { SyslogCapture } from '../helpers/syslog';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, userKeys, type TestUser, type UtilsSetup } from '../helpers/users';

const users: TestUser[] = [];
function newUser(opts: { fnek?: boolean; autoMount?: boolean } = {}): { u: TestUser; s: UtilsSetup } {
  const u = createUser('eatag');
  users.push(u);
  return { u, s: setupPrivateWithUtils(u, opts) };
}
const pw = (u: TestUser) => Buffer.from(u.password);
/** The `last login:` line of `ecryptfs-agent status USER`, run as root (the CLI reads the agent's note). */
const lastLoginLine = (u: TestUser): string => {
  const r = spawnSync(join(REPO, 'bin', 'ecryptfs-agent'), ['status', u.name], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('  last login:'));
  assert.ok(line, r.stdout);
  return line;
};
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
  test('the agent has nothing to do at auth (the PAM module keeps the password for open_session): ignore, no key', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'auth', user: u.name, authtok: pw(u) });
    assert.deepEqual([r.result, r.info, r.error], ['ignore', [], []]);
    assert.deepEqual(userKeys(u), []);
  });
});

describe('open_session unlocks with the password kept from auth (the mount itself: VM suite)', () => {
  const syslog = new SyslogCapture();
  let logging = false;
  before(async () => {
    logging = await syslog.start();
  });
  after(() => syslog.stop());

  test('right password: both auth toks added as the user, mount(2) reached (ENODEV here), then the keys taken back', async (t) => {
    const { u, s } = newUser({ fnek: true });
    const open = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.equal(open.result, 'success');
    assert.match(open.session ?? '', /^[A-Za-z0-9_-]+$/);
    assert.equal(sessionsOf(u), 1);
    // No eCryptfs in this kernel: mount(2) says ENODEV; the user is told, the keys are not kept.
    assert.match(open.error.join(' '), /could not be mounted/);
    assert.match(open.error.join(' '), /modprobe ecryptfs/);
    assert.deepEqual(userKeys(u), []);
    if (!logging) t.diagnostic('no /dev/log to capture: log line not checked');
    else {
      const line = (await syslog.linesOf(open.pid)).find((l) => l.startsWith('mount failed'));
      assert.ok(line, 'a mount-failed line');
      assert.match(line, new RegExp(`keys_added=${s.fnekSig},${s.fekSig}`), 'both keys were added before mount(2)');
    }
    const close = runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    assert.equal(close.result, 'success');
    assert.equal(sessionsOf(u), 0);
    const again = runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    assert.equal(again.result, 'success', 'a second close is harmless');
    assert.equal(sessionsOf(u), 0);
  });

  test("the auth toks are the reference's, byte for byte (what open_session inserts = ecryptfs-add-passphrase)", () => {
    const { u, s } = newUser();
    const user = lookupUser(u.name);
    const setup = asUser(user, () => loadPrivateSetup(user));
    assert.ok(setup);
    const ring = possessUserKeyring(user);
    const passphrase = unwrapMountPassphrase(user, setup, pw(u));
    const keys = deriveCheckedMountKeys(setup, passphrase);
    assert.deepEqual(insertDerivedKeys(ring, keys).added, [s.fekSig]);
    const ours = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s && keyctl pipe $(keyctl search @u user ${s.fekSig}) | od -An -v -tx1 | tr -d ' \\n'`]);
    const ref = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `keyctl link @u @s; keyctl clear @u; printf '%s' "$1" | ecryptfs-add-passphrase - >/dev/null && keyctl pipe $(keyctl search @u user ${s.fekSig}) | od -An -v -tx1 | tr -d ' \\n'`, 'sh', s.mountPassphrase]);
    assert.equal(ours.stdout.length, 1480);
    assert.equal(ours.stdout, ref.stdout);
    assert.equal(userKeys(u)[0]?.timeout, 'perm', 'no expiry: keys are only ever added for an accepted login');
    wipeMountKeys(keys);
    passphrase.fill(0);
  });

  test('wrong password: no key at all, the user is told why', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'open_session', user: u.name, authtok: Buffer.from('wrong') });
    assert.equal(r.result, 'success');
    assert.match(r.error.join(' '), /does not unwrap .*rewrap-passphrase/);
    assert.deepEqual(userKeys(u), []);
  });

  test('a corrupted keyfile (one ciphertext byte flipped) unwraps to garbage: nothing inserted, explained', () => {
    const { u } = newUser();
    const f = join(u.home, '.ecryptfs', 'wrapped-passphrase');
    const buf = readFileSync(f);
    buf[buf.length - 1] = (buf[buf.length - 1] as number) ^ 0x01;
    writeFileSync(f, buf);
    const open = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.equal(open.result, 'success');
    assert.match(open.error.join(' '), /does not match ~\/\.ecryptfs\/Private\.sig/);
    assert.deepEqual(userKeys(u), [], 'garbage keys never reach the keyring');
  });

  test("a killed re-wrap's temp file is removed at the next login; a live writer's is kept", () => {
    const { u } = newUser();
    const dir = join(u.home, '.ecryptfs');
    const dead = spawnSync('true').pid as number; // exited and reaped: its pid is gone
    const killed = `wrapped-passphrase.tmp-${dead}-Ab12Cd`;
    const live = `wrapped-passphrase.tmp-${process.pid}-Ef34Gh`;
    for (const name of [killed, live]) writeFileSync(join(dir, name), 'wrapped bytes', { mode: 0o600 });
    const r = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.equal(r.result, 'success');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [live]);
    rmSync(join(dir, live));
  });

  test('no auto-mount: the session is counted, nothing unlocked (like pam_ecryptfs)', () => {
    const { u } = newUser({ autoMount: false });
    const r = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.deepEqual([r.result, r.info, r.error], ['success', [], []]);
    assert.equal(sessionsOf(u), 1);
    assert.deepEqual(userKeys(u), []);
    runAgent({ phase: 'close_session', user: u.name, session: r.session ?? '' });
  });

  test('user without any eCryptfs setup, unknown user, root: quiet ignore', () => {
    const u = createUser('eatno');
    users.push(u);
    assert.deepEqual(runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) }).result, 'ignore');
    const unknown = runAgent({ phase: 'open_session', user: 'eat-no-such-user' });
    assert.deepEqual([unknown.result, unknown.error], ['ignore', []]);
    for (const phase of ['open_session', 'close_session', 'chauthtok'] as const) {
      const root = runAgent({ phase, user: 'root', authtok: Buffer.from('x'), oldauthtok: Buffer.from('y') });
      assert.deepEqual([root.result, root.info, root.error], ['ignore', [], []], `root, ${phase}: nothing said`);
    }
  });

  test('a setup that lost Private.sig says so at login (and how to rebuild it), quietly at logout', () => {
    const { u } = newUser();
    rmSync(join(u.home, '.ecryptfs', 'Private.sig'));
    const open = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.equal(open.result, 'ignore');
    assert.match(open.error.join(' '), /Private\.sig is missing .*cannot be unlocked/);
    assert.match(open.error.join(' '), /Fix: .*add-passphrase --fnek/);
    const close = runAgent({ phase: 'close_session', user: u.name });
    assert.deepEqual(close.error, []);
    assert.deepEqual(userKeys(u), []);
  });
});

describe('open_session and close_session (mount itself: VM suite)', () => {
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

  test('ssh key login (no password reached the session): one clear line how to unlock, login proceeds; status says why it stayed locked', () => {
    const { u } = newUser();
    assert.match(lastLoginLine(u), /^ {2}last login: +none recorded$/, 'before any login');
    const r = runAgent({ phase: 'open_session', user: u.name, service: 'sshd' });
    assert.equal(r.result, 'success');
    assert.match(r.info.join(' '), /~\/Private is locked .*ecryptfs-agent unlock/);
    assert.match(lastLoginLine(u), /^ {2}last login: +no-password via sshd, \d+ s ago$/);
  });

  test('password changed by root (keyfile wrapped with the old one): detected and explained at login; status explains it too', () => {
    const { u } = newUser();
    const r = runAgent({ phase: 'open_session', user: u.name, authtok: Buffer.from('the-new-password') });
    assert.match(r.error.join(' '), /does not unwrap .*rewrap-passphrase/);
    const last = JSON.parse(readFileSync(`/run/ecryptfs-agent/${u.uid}.last-login`, 'utf8')) as { outcome: string };
    assert.equal(last.outcome, 'wrong-password');
    assert.match(lastLoginLine(u), /^ {2}last login: +wrong-password \(WRONG_PASSWORD\) via eat-test, \d+ s ago$/);
  });

  test('a last logout and a login at the same time: the login unwraps at its own open_session and finds its keys', () => {
    const { u } = newUser();
    const first = runAgent({ phase: 'open_session', user: u.name }); // a session already open
    runAgent({ phase: 'close_session', user: u.name, session: first.session ?? '' }); // the last logout
    const open = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    assert.doesNotMatch(open.info.join(' '), /is locked/, 'the login found its keys');
    assert.match(open.error.join(' '), /could not be mounted/, 'it went on to mount(2) (no eCryptfs in this kernel)');
    runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    assert.deepEqual(userKeys(u), []);
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
    ['~/.Private a symlink into /proc', (u: TestUser) => {
      rmSync(join(u.home, '.Private'), { recursive: true });
      symlinkSync(`/proc/${process.pid}/task`, join(u.home, '.Private'));
      spawnSync('chown', ['-h', `${u.uid}:${u.gid}`, join(u.home, '.Private')]);
    }, /not owned by|unapproved filesystem type/],
  ] as const) {
    test(`hostile or broken layout refused before mount(2): ${name}`, () => {
      const { u } = newUser();
      arrange(u);
      const r = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
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
    const open = runAgent({ phase: 'open_session', user: u.name, authtok: pw(u) });
    runAgent({ phase: 'chauthtok', user: u.name, oldauthtok: pw(u), authtok: Buffer.from(u.password + 'X') });
    runAgent({ phase: 'close_session', user: u.name, session: open.session ?? '' });
    const grep = spawnSync('grep', ['-rlaF', '-e', u.password, '-e', s.mountPassphrase, '/run/ecryptfs-agent', '/tmp', '/var/tmp', '/dev/shm']);
    assert.equal(grep.stdout.toString(), '', 'no file holds the password or the mount passphrase');
  });
});
