/**
 * Hostile and odd inputs against the real agent, driven as the PAM shim drives it
 * (request on stdin, see test/host/agent-phases.test.ts), with syslog captured at /dev/log.
 * For every case: the exact reply, the line for the user, the log line, no key left behind,
 * no mount(2) attempted where it must not be, nothing changed under the home directory.
 * This kernel has no eCryptfs: a mount that IS attempted ends in ENODEV (code NO_ECRYPTFS),
 * so "mount attempted" is visible as that code in the log.
 * A final test races ~/Private between a directory and a symlink to /etc (renameat2
 * RENAME_EXCHANGE, so the name is always one of the two) while open_session runs, under strace -y,
 * and proves from the kernel's own fd→path annotations that mount(2) only ever targeted the
 * user's real directory.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, chownSync, cpSync, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { renderRequest, type AgentRequest } from '../../src/formats/protocol';
import { wrapPassphrase } from '../../src/formats/wrapped-passphrase';
import { AGENT, parseReply, type ParsedReply } from '../helpers/agent';
import { SyslogCapture } from '../helpers/syslog';
import { createUser, deleteUser, setupPrivateWithUtils, userKeys, type TestUser, type UtilsSetup } from '../helpers/users';


const syslog = new SyslogCapture();
let capturing = false;
const users: TestUser[] = [];
const cleanup: string[] = [];
const table: Array<[string, string, string]> = [];

interface Run {
  reply: ParsedReply;
  pid: number;
  log: string[];
}

async function agent(req: Partial<AgentRequest> & Pick<AgentRequest, 'phase' | 'user'>, opts: { raw?: Buffer; strace?: string } = {}): Promise<Run> {
  const full: AgentRequest = { service: 'eat-hostile', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: true, silent: false, ...req };
  const input = opts.raw ?? renderRequest(full);
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
  const r = opts.strace
    ? spawnSync('strace', ['-f', '-y', '-qq', '-e', 'trace=openat,mount', '-o', opts.strace, AGENT, 'pam'], { input, env, timeout: 180_000 })
    : spawnSync(AGENT, ['pam'], { input, env, timeout: 180_000 });
  if (r.status !== 0) throw new Error(`agent exited ${r.status} ${r.signal ?? ''} ${r.error?.message ?? ''}: ${r.stderr}`);
  // under strace the agent is strace's child: its pid is in the trace file
  const pid = opts.strace ? Math.min(...[...readFileSync(opts.strace, 'utf8').matchAll(/^(\d+) /gm)].map((m) => Number(m[1]))) : r.pid!;
  return { reply: parseReply(r.stdout.toString()), pid, log: capturing ? await syslog.linesOf(pid, req.debug === false ? 0 : 1) : [] };
}

const rand = () => randomBytes(3).toString('hex');
function newUser(opts: { fnek?: boolean } = {}): { u: TestUser; s: UtilsSetup } {
  const u = createUser('eath');
  users.push(u);
  return { u, s: setupPrivateWithUtils(u, opts) };
}
/** A user with an exact (odd) name; --badname lets useradd accept what its default regex refuses. */
function namedUser(name: string): TestUser {
  const r = spawnSync('useradd', ['--badname', '-m', '-s', '/bin/bash', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
  const password = `pw-${rand()}`;
  spawnSync('chpasswd', [], { input: `${name}:${password}\n` });
  const id = (f: string) => Number(spawnSync('id', [f, name], { encoding: 'utf8' }).stdout.trim());
  const u: TestUser = { name, uid: id('-u'), gid: id('-g'), home: `/home/${name}`, password };
  users.push(u);
  return u;
}
const cfg = (u: TestUser, f = '') => join(u.home, '.ecryptfs', f);
function writeAs(u: TestUser, path: string, data: string | Buffer): void {
  writeFileSync(path, data, { mode: 0o600 });
  chownSync(path, u.uid, u.gid);
}

/** Everything under dir (lstat, content hash, link target), to prove nothing changed. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.ino}`;
    if (st.isSymbolicLink()) what += ` -> ${readlinkSync(p)}`;
    else if (st.isFile()) what += ` ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    out.set(p, what);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
  return out;
}

/** The open_session log says these sigs were added to the keyring before mount(2) failed (ENODEV). */
const keysAddedRe = (...sigs: string[]) => new RegExp(`mount failed: .*keys_added=[0-9a-f,]*${sigs.join('[0-9a-f,]*')}`);
const NO_MOUNT = (log: string[]) => !log.some((l) => /code=NO_ECRYPTFS|private directory mounted/.test(l));
const MOUNT_TRIED = (log: string[]) => log.some((l) => /mount failed: .*code=NO_ECRYPTFS/.test(l));

interface Outcome {
  auth: Run;
  open: Run;
}
/** A login as the PAM module makes it: auth (the module keeps the password; an agent run of that
 * phase is a no-op) and open_session, which gets the password and unlocks. */
async function loginAttempt(u: TestUser, password: Buffer = Buffer.from(u.password)): Promise<Outcome> {
  const auth = await agent({ phase: 'auth', user: u.name, authtok: password });
  const open = await agent({ phase: 'open_session', user: u.name, authtok: password });
  return { auth, open };
}
function record(name: string, o: Outcome): void {
  const reply = `auth=${o.auth.reply.result}; open=${o.open.reply.result}${o.open.reply.error.length ? ` error="${o.open.reply.error[0]}"` : ''}${o.open.reply.info.length ? ` info="${o.open.reply.info[0]}"` : ''}`;
  const log = [...o.auth.log.map((l) => `auth: ${l}`), ...o.open.log.map((l) => `open: ${l}`)].map((l) => (l.length > 260 ? l.slice(0, 260) + '…' : l)).join(' | ');
  table.push([name, reply, log || '(nothing logged above debug)']);
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  assert.ok(!existsSync('/sys/fs/ecryptfs'), 'this suite expects a kernel without eCryptfs');
  capturing = await syslog.start();
});
after(() => {
  syslog.stop();
  for (const u of users) {
    try {
      if (!existsSync(u.home) && existsSync(`${u.home}.moved`)) renameSync(`${u.home}.moved`, u.home);
      chownSync(u.home, u.uid, u.gid);
      deleteUser(u);
    } catch (e) {
      process.stderr.write(`cleanup of ${u.name}: ${(e as Error).message}\n`);
    }
  }
  for (const p of cleanup) rmSync(p, { recursive: true, force: true });
});

/**
 * A refused layout: the agent runs auth+open_session, never reaches mount(2), leaves no key,
 * changes nothing under the home; the user gets `userRe` and the log `logRe`.
 */
async function refused(name: string, u: TestUser, userRe: RegExp, logRe: RegExp, password?: Buffer): Promise<Outcome> {
  const before = snapshot(u.home);
  const out = await loginAttempt(u, password);
  record(name, out);
  assert.equal(out.auth.reply.result, 'ignore');
  assert.deepEqual([out.auth.reply.info, out.auth.reply.error], [[], []], 'auth never talks');
  assert.match(out.open.reply.error.join(' '), userRe);
  assert.doesNotMatch(out.open.reply.error.join(' '), /modprobe/, 'refused before mount(2)');
  if (capturing) {
    assert.ok(NO_MOUNT(out.open.log), `no mount attempted: ${out.open.log.join(' | ')}`);
    assert.match([...out.auth.log, ...out.open.log].join('\n'), logRe);
  }
  assert.deepEqual(userKeys(u), [], 'no key left');
  assert.deepEqual(snapshot(u.home), before, 'nothing changed under the home');
  return out;
}

describe('Private.mnt pointing elsewhere', () => {
  const mnt = (u: TestUser, path: string) => writeAs(u, cfg(u, 'Private.mnt'), `${path}\n`);
  test('→ /proc', async () => {
    const { u } = newUser();
    mnt(u, '/proc');
    await refused('Private.mnt → /proc', u, /does not own the mount point \/proc/, /mount failed: .* does not own the mount point \/proc .*code=BAD_OWNER/);
  });
  test('→ /etc', async () => {
    const { u } = newUser();
    mnt(u, '/etc');
    await refused('Private.mnt → /etc', u, /does not own the mount point \/etc/, /code=BAD_OWNER/);
  });
  test("→ another user's directory", async () => {
    const { u } = newUser();
    const o = createUser('eatho');
    users.push(o);
    mkdirSync(join(o.home, 'Private'), { mode: 0o755 });
    chownSync(join(o.home, 'Private'), o.uid, o.gid);
    mnt(u, join(o.home, 'Private'));
    await refused("Private.mnt → other user's ~/Private", u, new RegExp(`does not own the mount point ${o.home}/Private`), /code=BAD_OWNER/);
  });
  for (const [label, path] of [
    ['$HOME/../root', (u: TestUser) => `${u.home}/../root`],
    ['$HOME/Private/..', (u: TestUser) => `${u.home}/Private/..`],
    ['$HOME/./Private', (u: TestUser) => `${u.home}/./Private`],
    ['//home/USER/Private', (u: TestUser) => `/${u.home}/Private`],
    ['$HOME/Private/ (trailing slash)', (u: TestUser) => `${u.home}/Private/`],
  ] as const) {
    test(`→ ${label}`, async () => {
      const { u } = newUser();
      mnt(u, path(u));
      await refused(`Private.mnt → ${label}`, u, /must be an absolute, normalised path|contains "\." or "\.\." components/, /code=UNSAFE_PATH/);
    });
  }
  test('→ relative path', async () => {
    const { u } = newUser();
    mnt(u, 'Private');
    await refused('Private.mnt → relative "Private"', u, /Private\.mnt: the mount point "Private" is not an absolute path/, /code=BAD_CONFIG/);
  });
  test('→ through a user-owned symlinked parent (~/link/Private, link → ~/real)', async () => {
    const { u } = newUser();
    mkdirSync(join(u.home, 'real', 'Private'), { recursive: true, mode: 0o700 });
    for (const p of ['real', 'real/Private']) chownSync(join(u.home, p), u.uid, u.gid);
    symlinkSync(join(u.home, 'real'), join(u.home, 'link'));
    lchownSync(join(u.home, 'link'), u.uid, u.gid);
    mnt(u, join(u.home, 'link', 'Private'));
    await refused('Private.mnt → ~/link/Private (link → ~/real, user-owned)', u, /link is a symbolic link that is not controlled by root/, /code=SYMLINK_REFUSED/);
  });
  test('~/Private itself a symlink to /etc', async () => {
    const { u } = newUser();
    rmSync(join(u.home, 'Private'), { recursive: true });
    symlinkSync('/etc', join(u.home, 'Private'));
    lchownSync(join(u.home, 'Private'), u.uid, u.gid);
    await refused('~/Private → /etc (symlink)', u, /symbolic link/, /code=SYMLINK_REFUSED/);
  });
});

describe('~/.ecryptfs a symlink', () => {
  const relink = (u: TestUser, target: string, owner: { uid: number; gid: number }) => {
    cpSync(cfg(u), target, { recursive: true });
    spawnSync('chown', ['-R', `${owner.uid}:${owner.gid}`, target]);
    spawnSync('chmod', ['-R', 'go+rX', target]);
    rmSync(cfg(u), { recursive: true });
    symlinkSync(target, cfg(u));
    lchownSync(cfg(u), u.uid, u.gid);
  };
  test('to a directory the user owns (the encrypted-home layout): accepted, mount attempted', async () => {
    const { u, s } = newUser();
    relink(u, join(u.home, '.ecryptfs-real'), u);
    const before = snapshot(u.home);
    const o = await loginAttempt(u);
    record('~/.ecryptfs → user-owned dir', o);
    assert.equal(o.open.reply.result, 'success');
    assert.match(o.open.reply.error.join(' '), /could not be mounted.*modprobe ecryptfs/);
    if (capturing) {
      assert.match(o.open.log.join('\n'), keysAddedRe(s.fekSig));
      assert.ok(MOUNT_TRIED(o.open.log), o.open.log.join(' | '));
    }
    assert.deepEqual(userKeys(u), [], 'keys of a failed mount are not kept');
    assert.deepEqual(snapshot(u.home), before);
  });
  for (const [who, make] of [
    ["root's", () => ({ uid: 0, gid: 0 })],
    ["another user's", () => {
      const o = createUser('eatho');
      users.push(o);
      return o;
    }],
  ] as const) {
    test(`to ${who} directory: refused`, async () => {
      const { u } = newUser();
      const target = `/var/tmp/eat-hostile-cfg-${rand()}`;
      cleanup.push(target);
      relink(u, target, make());
      const before = snapshot(u.home);
      const o = await loginAttempt(u);
      record(`~/.ecryptfs → ${who} dir`, o);
      assert.deepEqual([o.auth.reply.result, o.auth.reply.info, o.auth.reply.error], ['ignore', [], []]);
      assert.equal(o.open.reply.result, 'ignore');
      assert.match(o.open.reply.error.join(' '), /\.ecryptfs is a symbolic link to .*, which is not a directory owned by/);
      if (capturing) {
        assert.match(o.open.log.join('\n'), /is a symbolic link to .* code=SYMLINK_REFUSED/);
        assert.ok(NO_MOUNT(o.open.log));
      }
      assert.deepEqual(userKeys(u), []);
      assert.deepEqual(snapshot(u.home), before);
    });
  }
});

describe('oversized and non-UTF-8 config files', () => {
  const big = (n: number) => Buffer.alloc(n, '0123456789abcdef\n');
  for (const [file, data, userRe, code] of [
    ['Private.sig', big(4097), /Private\.sig is larger than 4096 bytes/, 'BAD_CONFIG'],
    ['Private.mnt', Buffer.concat([Buffer.from('/x\n'), big(5000)]), /Private\.mnt is larger than 4096 bytes/, 'BAD_CONFIG'],
    ['Private.mnt', Buffer.from([0x2f, 0x68, 0xff, 0xfe, 0x0a]), /Private\.mnt: the mount point is not valid UTF-8/, 'BAD_CONFIG'],
    ['Private.sig', Buffer.from([0x30, 0x31, 0xe9, 0x0a]), /Private\.sig line 1: invalid hex signature/, 'BAD_SIG'],
  ] as const) {
    test(`${file}: ${data.length} bytes${code === 'BAD_SIG' || data.length < 10 ? ', not UTF-8' : ''}`, async () => {
      const { u } = newUser();
      writeAs(u, cfg(u, file), data);
      const before = snapshot(u.home);
      const o = await loginAttempt(u);
      record(`${file} ${data.length > 4096 ? `> 4 KiB (${data.length} B)` : 'not UTF-8'}`, o);
      assert.deepEqual([o.auth.reply.result, o.auth.reply.error], ['ignore', []]);
      assert.equal(o.open.reply.result, 'ignore');
      assert.match(o.open.reply.error.join(' '), userRe);
      if (capturing) assert.match(o.open.log.join('\n'), new RegExp(`code=${code}`));
      assert.deepEqual(userKeys(u), []);
      assert.deepEqual(snapshot(u.home), before);
    });
  }
  test('wrapped-passphrase > 1 KiB: open_session refuses it and explains', async () => {
    const { u } = newUser();
    writeAs(u, cfg(u, 'wrapped-passphrase'), Buffer.alloc(2000, 0x3a));
    const before = snapshot(u.home);
    const o = await loginAttempt(u);
    record('wrapped-passphrase > 1 KiB', o);
    assert.match(o.open.reply.error.join(' '), /stays locked: .*wrapped-passphrase is larger than 1024 bytes/);
    if (capturing) assert.match(o.open.log.join('\n'), /cannot unlock: .*wrapped-passphrase is larger than 1024 bytes .*code=BAD_CONFIG/);
    assert.deepEqual(userKeys(u), []);
    assert.deepEqual(snapshot(u.home), before);
  });
});

describe('per-user config files root reads: owned by the user or root, writable by no one else', () => {
  const rc = (u: TestUser) => join(u.home, '.ecryptfsrc');
  test('~/.ecryptfsrc owned by another user: refused', async () => {
    const { u } = newUser();
    const o = createUser('eatho');
    users.push(o);
    writeAs(o, rc(u), '# no salt here\n');
    chmodSync(rc(u), 0o644); // readable by the user: only the owner check can refuse it
    await refused('~/.ecryptfsrc owned by another user', u, new RegExp(`\\.ecryptfsrc is owned by uid ${o.uid}, not by ${u.name} or root`), /code=BAD_OWNER/);
  });
  for (const mode of [0o620, 0o602]) {
    test(`~/.ecryptfsrc mode ${mode.toString(8)}, group root: refused, chmod go-w named`, async () => {
      const { u } = newUser();
      writeAs(u, rc(u), '# no salt here\n');
      chownSync(rc(u), u.uid, 0); // group write by a group other than the user's own
      chmodSync(rc(u), mode);
      const o = await refused(`~/.ecryptfsrc mode 0${mode.toString(8)}`, u, new RegExp(`\\.ecryptfsrc has mode 0${mode.toString(8)}: group or others may write it`), /code=BAD_OWNER/);
      assert.match(o.open.reply.error.join(' '), new RegExp(`chmod go-w ${rc(u)}`));
    });
  }
  for (const file of ['Private.sig', 'Private.mnt']) {
    test(`${file} writable by the group: refused`, async () => {
      const { u } = newUser();
      if (file === 'Private.mnt') writeAs(u, cfg(u, file), `${u.home}/Private\n`);
      chmodSync(cfg(u, file), 0o660);
      await refused(`${file} mode 0660`, u, new RegExp(`${file} has mode 0660: group or others may write it`), /code=BAD_OWNER/);
    });
  }
  test("~/.ecryptfsrc mode 0664 in the user's own group (umask 002) is accepted: the login gets as far as mount(2)", async () => {
    const { u } = newUser();
    writeAs(u, rc(u), '# no salt here\n');
    chmodSync(rc(u), 0o664);
    assert.equal(statSync(rc(u)).gid, u.gid);
    const o = await loginAttempt(u);
    record('~/.ecryptfsrc 0664, the user private group', o);
    assert.match(o.open.reply.error.join(' '), /could not be mounted/);
  });
  test("a root-owned ~/.ecryptfsrc (mode 0644) is the user's to use: the login gets as far as mount(2)", async () => {
    const { u } = newUser();
    writeFileSync(rc(u), '# no salt here\n', { mode: 0o644 });
    const o = await loginAttempt(u);
    record('~/.ecryptfsrc owned by root, 0644', o);
    assert.match(o.open.reply.error.join(' '), /could not be mounted/);
    assert.deepEqual(userKeys(u), []);
  });
});

describe('Private.sig variants', () => {
  test('3 lines (FEK, FNEK, garbage): the third is ignored, as mount.ecryptfs_private does', async () => {
    const { u, s } = newUser({ fnek: true });
    writeAs(u, cfg(u, 'Private.sig'), `${s.fekSig}\n${s.fnekSig}\nnot a sig at all!\n`);
    const o = await loginAttempt(u);
    record('Private.sig with 3 lines', o);
    if (capturing) assert.match(o.open.log.join('\n'), keysAddedRe(s.fekSig));
    assert.match(o.open.reply.error.join(' '), /could not be mounted/, 'got as far as mount(2)');
    assert.deepEqual(userKeys(u), []);
  });
  test('non-hex: refused', async () => {
    const { u } = newUser();
    writeAs(u, cfg(u, 'Private.sig'), 'xyz3456789abcdef\n');
    const o = await loginAttempt(u);
    record('Private.sig non-hex', o);
    assert.match(o.open.reply.error.join(' '), /Private\.sig line 1: invalid hex signature/);
    assert.deepEqual(userKeys(u), []);
  });
  test('uppercase: kept verbatim, so it does not match the (lowercase) key: sig-mismatch, no key', async () => {
    const { u, s } = newUser();
    writeAs(u, cfg(u, 'Private.sig'), `${s.fekSig.toUpperCase()}\n`);
    const o = await refused('Private.sig uppercase', u, /does not match ~\/\.ecryptfs\/Private\.sig/, /does not match .*Private\.sig .*sig-mismatch/);
    assert.equal(o.open.reply.result, 'success');
  });
});

describe('passwords', () => {
  const rewrap = (u: TestUser, s: UtilsSetup, pw: Buffer) => writeAs(u, cfg(u, 'wrapped-passphrase'), wrapPassphrase(Buffer.from(s.mountPassphrase), pw));
  test('with newlines (raw bytes on the protocol): the exact bytes unwrap, a prefix does not', async () => {
    const { u, s } = newUser();
    const pw = Buffer.from('line one\nline two\n\n');
    rewrap(u, s, pw);
    const prefix = await agent({ phase: 'open_session', user: u.name, authtok: Buffer.from('line one') });
    assert.deepEqual(userKeys(u), []);
    const o = await loginAttempt(u, pw);
    record('password with newlines', o);
    if (capturing) {
      assert.match(prefix.log.join('\n'), /does not unwrap .*outcome=wrong-password/);
      assert.match(o.open.log.join('\n'), keysAddedRe(s.fekSig));
    }
    assert.match(o.open.reply.error.join(' '), /could not be mounted/);
  });
  test('exactly 64 bytes: works', async () => {
    const { u, s } = newUser();
    const pw = Buffer.alloc(64, 'p');
    rewrap(u, s, pw);
    const o = await loginAttempt(u, pw);
    assert.match(o.open.reply.error.join(' '), /could not be mounted/, 'unlocked, got as far as mount(2)');
    if (capturing) assert.match(o.open.log.join('\n'), keysAddedRe(s.fekSig));
  });
  for (const n of [65, 512]) {
    test(`${n} bytes: refused as too long (ecryptfs-utils' limit is 64), explained at open_session`, async () => {
      const { u } = newUser();
      const o = await refused(`password of ${n} bytes`, u, /stays locked: The wrapping passphrase is longer than 64 bytes/, /cannot unlock: The wrapping passphrase is longer than 64 bytes .*code=PASSPHRASE_TOO_LONG/, Buffer.alloc(n, 'x'));
      assert.equal(o.open.reply.result, 'success');
    });
  }
  test('513 bytes (more than PAM_MAX_RESP_SIZE; the shim never sends it): malformed request, nothing said', async () => {
    const { u } = newUser();
    const raw = Buffer.concat([Buffer.from(`ECRYPTFS-AGENT 1\nphase=auth\nuser=${u.name}\npam_pid=${process.pid}\nunwrap=1\nsecret authtok 513\n`), Buffer.alloc(513, 'x'), Buffer.from('\nend\n')]);
    const r = await agent({ phase: 'auth', user: u.name }, { raw });
    table.push(['password of 513 bytes', `auth=${r.reply.result}`, r.log.join(' | ')]);
    assert.deepEqual([r.reply.result, r.reply.info, r.reply.error], ['ignore', [], []]);
    if (capturing) assert.match(r.log.join('\n'), /malformed request from the PAM shim: secret authtok too long .*code=USAGE/);
    assert.doesNotMatch(r.log.join('\n'), /xxxx/);
  });
});

describe('user names', () => {
  for (const [label, name, ok] of [
    ['a.b', `eat.${rand()}`, true],
    ['a_b', `eat_${rand()}`, true],
    ['a-b', `eat-${rand()}`, true],
    ['uppercase', `EAT${rand().toUpperCase()}`, true],
    ['leading digit', `1eat${rand()}`, true],
    ['a@b', `eat@${rand()}`, true],
    ['a+b (useradd --badname)', `eat+${rand()}`, false],
    ['a b (useradd --badname)', `eat ${rand()}`, false],
  ] as const) {
    test(`${label}: ${ok ? 'unlocked like any other' : 'not served: quietly ignored (one debug line)'}`, async () => {
      const u = namedUser(name);
      const s = setupPrivateWithUtils(u);
      const o = await loginAttempt(u);
      record(`user name ${label} ("${name}")`, o);
      if (ok) {
        if (capturing) assert.match(o.open.log.join('\n'), keysAddedRe(s.fekSig));
        assert.match(o.open.reply.error.join(' '), /could not be mounted/);
      } else {
        assert.deepEqual([o.open.reply.result, o.open.reply.info, o.open.reply.error], ['ignore', [], []]);
        if (capturing) assert.match(o.open.log.join('\n'), /not served: root, or a name the agent cannot use/);
      }
      assert.deepEqual(userKeys(u), []);
    });
  }
  test('unknown user and a name with a slash: quiet (PAM asks for every typed name)', async () => {
    for (const name of [`eat-nobody-${rand()}`, '../../etc/x']) {
      const r = await agent({ phase: 'open_session', user: name });
      table.push([`unknown user "${name}"`, `open=${r.reply.result}`, r.log.join(' | ') || '(nothing)']);
      assert.deepEqual([r.reply.result, r.reply.info, r.reply.error], ['ignore', [], []]);
      if (capturing) assert.ok(r.log.every((l) => /code=NO_SUCH_USER|not served/.test(l)), r.log.join(' | '));
    }
  });
});

describe('home directory', () => {
  test('missing home: quiet ignore, nothing created', async () => {
    const { u } = newUser();
    const moved = `${u.home}.moved`;
    renameSync(u.home, moved);
    cleanup.push(moved);
    const o = await loginAttempt(u);
    record('home directory missing', o);
    assert.deepEqual([o.auth.reply.result, o.open.reply.result, o.open.reply.info, o.open.reply.error], ['ignore', 'ignore', [], []]);
    assert.ok(!existsSync(u.home), 'nothing created');
    renameSync(moved, u.home);
    assert.deepEqual(userKeys(u), []);
  });
  for (const [who, owner] of [
    ['root (chroot-SFTP layout)', () => ({ uid: 0, gid: 0 })],
    ['another user', () => {
      const o = createUser('eatho');
      users.push(o);
      return o;
    }],
  ] as const) {
    test(`home owned by ${who}: the user's own ~/.ecryptfs and ~/Private still decide`, async () => {
      const { u } = newUser();
      const o = owner();
      chownSync(u.home, o.uid, o.gid);
      const before = snapshot(u.home);
      const out = await loginAttempt(u).finally(() => chownSync(u.home, u.uid, u.gid));
      record(`home owned by ${who}`, out);
      // The mount point is opened and checked (owner, fs type) and mounted through /proc/self/fd,
      // so whoever owns the home cannot redirect the mount; ~/.ecryptfs must still be the user's.
      assert.match(out.open.reply.error.join(' '), /could not be mounted/);
      if (capturing) assert.ok(MOUNT_TRIED(out.open.log));
      assert.deepEqual(userKeys(u), []);
      chownSync(u.home, o.uid, o.gid);
      assert.deepEqual(snapshot(u.home), before);
      chownSync(u.home, u.uid, u.gid);
    });
  }
  test("~/.ecryptfs owned by another user: refused", async () => {
    const { u } = newUser();
    const o = createUser('eatho');
    users.push(o);
    spawnSync('chown', ['-R', `${o.uid}:${o.gid}`, cfg(u)]);
    spawnSync('chmod', ['-R', 'go+rX', cfg(u)]);
    await refused('~/.ecryptfs owned by another user', u, /\.ecryptfs is not owned by/, /code=BAD_OWNER/);
  });
});

describe('symlink race on ~/Private', () => {
  test('swapping ~/Private ⇄ symlink to /etc during open_session: mount(2) only ever targets the real directory', { timeout: 240_000 }, async (t) => {
    const N = 24;
    const { u } = newUser();
    const alt = join(u.home, 'Private.alt');
    symlinkSync('/etc', alt);
    lchownSync(alt, u.uid, u.gid);
    // renameat2(RENAME_EXCHANGE) as fast as possible, as the user: ~/Private is always either the
    // directory or the symlink, never missing.
    const py = [
      'import ctypes,os,sys',
      'libc=ctypes.CDLL(None,use_errno=True); a=sys.argv[1].encode(); b=sys.argv[2].encode(); n=0',
      'while True:',
      '  if libc.renameat2(-100,a,-100,b,2)!=0: sys.exit("renameat2: "+os.strerror(ctypes.get_errno()))',
      '  n+=1',
    ].join('\n');
    const swapper = spawn('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '/usr/bin/python3', '-c', py, join(u.home, 'Private'), alt], { stdio: ['ignore', 'ignore', 'pipe'] });
    let swapErr = '';
    swapper.stderr!.on('data', (d) => (swapErr += d));
    const trace = `/run/eat-hostile-strace-${rand()}.txt`;
    cleanup.push(trace);
    const outcomes: Record<string, number> = {};
    const targets = new Map<string, number>();
    try {
      await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < N; i++) {
        const open = await agent({ phase: 'open_session', user: u.name, authtok: Buffer.from(u.password) }, { strace: trace });
        const err = open.reply.error.join(' ');
        const kind = /modprobe ecryptfs/.test(err) ? 'mount attempted (ENODEV)' : /was a symbolic link when opened and changed since/.test(err) ? 'refused: symlink (swapped back during the check)' : /symbolic link/.test(err) ? 'refused: symlink' : `other: ${err}`;
        outcomes[kind] = (outcomes[kind] ?? 0) + 1;
        // The kernel's view: strace -y annotates each fd openat returns with the path it refers to.
        const st = readFileSync(trace, 'utf8');
        const fdPath = new Map<string, string>();
        for (const line of st.split('\n')) {
          const o = /openat\(.*\) = (\d+)<([^>]*)>/.exec(line);
          if (o) fdPath.set(o[1]!, o[2]!);
          const m = /mount\("[^"]*", "\/proc\/self\/fd\/(\d+)"/.exec(line);
          if (m) {
            const p = fdPath.get(m[1]!) ?? '?';
            targets.set(p, (targets.get(p) ?? 0) + 1);
          }
          assert.doesNotMatch(line, /mount\([^)]*"\/etc/, 'never a mount naming /etc');
        }
        if (capturing) {
          assert.ok(open.log.some((l) => /code=(SYMLINK_REFUSED|NO_ECRYPTFS)/.test(l)), open.log.join(' | '));
          if (kind.startsWith('mount')) assert.ok(MOUNT_TRIED(open.log));
        }
        assert.deepEqual(userKeys(u), []);
      }
    } finally {
      swapper.kill('SIGKILL');
      await new Promise((r) => swapper.once('exit', r));
    }
    assert.equal(swapErr, '', 'the swapper ran the whole time');
    t.diagnostic(`race outcomes over ${N} open_session runs: ${JSON.stringify(outcomes)}`);
    t.diagnostic(`mount(2) targets (fd → path as the kernel saw them): ${JSON.stringify([...targets])}`);
    assert.deepEqual(Object.keys(outcomes).filter((k) => k.startsWith('other')), [], JSON.stringify(outcomes));
    assert.ok((outcomes['mount attempted (ENODEV)'] ?? 0) > 0 && (outcomes['refused: symlink'] ?? 0) + (outcomes['refused: symlink (swapped back during the check)'] ?? 0) > 0, `the race hit both states: ${JSON.stringify(outcomes)}`);
    const total = [...targets.values()].reduce((a, b) => a + b, 0);
    assert.equal(total, outcomes['mount attempted (ENODEV)'], 'one mount(2) per attempt, each seen by strace');
    for (const p of targets.keys()) assert.ok(p === join(u.home, 'Private') || p === alt, `mount target ${p} is the user's directory (under either name)`);
    table.push([`race ~/Private ⇄ /etc symlink ×${N}`, JSON.stringify(outcomes), `mount targets: ${[...targets.keys()].join(', ')}`]);
  });
});

test('case → outcome → log line', (t) => {
  t.diagnostic(`syslog capture: ${capturing ? 'on (/dev/log listener)' : 'OFF (/dev/log busy)'}`);
  t.diagnostic('| case | reply | log lines (auth | open) |');
  t.diagnostic('|---|---|---|');
  for (const [c, r, l] of table) t.diagnostic(`| ${c} | ${r.replace(/\|/g, '\\|')} | ${l.replace(/\|(?! )/g, '\\|')} |`);
  assert.ok(table.length > 20);
});
