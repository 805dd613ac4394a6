/** Credential switching as root, checked against what the kernel reports in /proc. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asUser, currentCredentials, isValidUsername, lookupUid, lookupUser } from '../../src/os/credentials';
import { AgentError } from '../../src/errors';
import { native } from '../../src/os/native';
import { createUser, deleteUser, DIST_SRC, inSession, mustSh, sh, type TestUser } from '../helpers/host-native';

const isRoot = process.getuid?.() === 0;
const code = (c: string) => (e: unknown) => e instanceof AgentError && e.code === c;

/** "Uid:" / "Gid:" / "Groups:" lines of every thread, as the kernel sees them. */
function threadIds(): string[] {
  return readdirSync('/proc/self/task').map((t) => {
    const s = readFileSync(`/proc/self/task/${t}/status`, 'utf8');
    return ['Uid', 'Gid', 'Groups'].map((k) => (new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(s)?.[1] ?? '').replace(/\s+/g, ' ').trim()).join('|');
  });
}

test('user names are validated like check_username', () => {
  for (const ok of ['alice', 'a.b', 'a-b', 'a_b', 'a@b', 'machine$', 'A9']) assert.ok(isValidUsername(ok), ok);
  for (const bad of ['', '-a', 'a$b', 'a b', 'a,b', 'a=b', 'a/b', '../x', 'x\n', 'a:b', 'x'.repeat(256)]) assert.ok(!isValidUsername(bad), JSON.stringify(bad));
  assert.throws(() => lookupUser('-oops'), code('NO_SUCH_USER'));
  assert.throws(() => lookupUser(''), code('NO_SUCH_USER'));
});

describe('credentials (root)', { skip: !isRoot && 'needs root' }, () => {
  let u: TestUser;
  let dir: string;
  before(() => {
    u = createUser();
    dir = mkdtempSync(join(tmpdir(), 'eat-cred-'));
    chmodSync(dir, 0o700);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    deleteUser(u);
  });

  test('lookupUser / lookupUid read the passwd database', () => {
    const info = lookupUser(u.name);
    assert.deepEqual([info.uid, info.gid, info.shell], [u.uid, u.gid, '/usr/sbin/nologin']);
    assert.equal(lookupUid(u.uid).name, u.name);
    assert.throws(() => lookupUser('eat_missing_user'), code('NO_SUCH_USER'));
    assert.throws(() => lookupUid(4000000000), code('NO_SUCH_USER'));
  });

  test("asUser ('files', the default): every thread gets the user's effective and fs ids, real and saved stay root; root restored", () => {
    const groups = mustSh(`id -G ${u.name}`).trim().split(' ').map(Number).sort();
    const before = threadIds();
    assert.ok(before.length > 1, 'node has several threads');
    const inside = asUser(lookupUser(u.name), () => {
      assert.throws(() => writeFileSync(join(dir, 'x'), 'x'), /EACCES/);
      return { creds: currentCredentials(), threads: threadIds() };
    });
    assert.deepEqual(inside.creds.uid, { ruid: 0, euid: u.uid, suid: 0 });
    assert.deepEqual(inside.creds.gid, { rgid: 0, egid: u.gid, sgid: 0 });
    assert.deepEqual([...inside.creds.groups].sort(), groups);
    // glibc broadcast the change: no thread kept root as its effective id (Uid: real effective saved fs)
    for (const t of inside.threads) assert.equal(t.split('|')[0], `0 ${u.uid} 0 ${u.uid}`);
    assert.deepEqual(threadIds(), before);
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
  });

  test("'files' mode: the user cannot signal the process meanwhile (kill(2) checks the target's real and saved uid)", () => {
    const r = asUser(lookupUser(u.name), () => sh(`runuser -u ${u.name} -- kill -0 ${process.pid}`));
    assert.notEqual(r.status, 0, 'the user could signal the root process');
    assert.match(r.stderr, /Operation not permitted/);
  });

  test("'mount' mode: the fs ids are the user's, real and effective uid stay 0 with CAP_SYS_ADMIN; files are reached with the user's rights", () => {
    const before = readFileSync('/proc/self/status', 'utf8');
    const r = asUser(
      lookupUser(u.name),
      () => {
        let denied = false;
        try {
          writeFileSync(join(dir, 'eff'), 'x');
        } catch (e) {
          denied = (e as NodeJS.ErrnoException).code === 'EACCES';
        }
        const status = readFileSync('/proc/self/status', 'utf8');
        return {
          creds: currentCredentials(),
          uidLine: /^Uid:\s*(.*)$/m.exec(status)?.[1],
          capEff: BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0')),
          denied,
        };
      },
      { mode: 'mount' },
    );
    assert.deepEqual(r.creds.uid, { ruid: 0, euid: 0, suid: 0 });
    assert.deepEqual(r.creds.gid, { rgid: 0, egid: 0, sgid: 0 });
    assert.equal(r.uidLine?.replace(/\s+/g, ' '), `0 0 0 ${u.uid}`);
    assert.ok(r.denied, "root's 0700 directory is closed to the user's fs ids");
    assert.ok((r.capEff & (1n << 21n)) !== 0n, 'CAP_SYS_ADMIN (mount) stays effective');
    assert.ok((r.capEff & (1n << 1n)) === 0n, 'CAP_DAC_OVERRIDE is dropped with the fs ids');
    // back to root everywhere, fs ids and the fs capabilities included (setresuid alone would
    // leave CAP_DAC_OVERRIDE off: the effective uid was 0 all along)
    const after = readFileSync('/proc/self/status', 'utf8');
    assert.match(after, /^Uid:\s+0\s+0\s+0\s+0$/m);
    assert.match(after, /^Gid:\s+0\s+0\s+0\s+0$/m);
    assert.equal(/^CapEff:\s*([0-9a-f]+)$/m.exec(after)?.[1], /^CapEff:\s*([0-9a-f]+)$/m.exec(before)?.[1], 'the same capabilities as before');
    for (const t of readdirSync('/proc/self/task')) {
      assert.equal(/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/self/task/${t}/status`, 'utf8'))?.[1], /^CapEff:\s*([0-9a-f]+)$/m.exec(before)?.[1], `thread ${t}`);
    }
  });

  test('root is restored when fn throws, when it returns a promise, and after nesting', () => {
    const user = lookupUser(u.name);
    assert.throws(() => asUser(user, () => { throw new Error('boom'); }), /boom/);
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
    assert.throws(() => asUser(user, () => Promise.resolve(1)), code('USAGE'));
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
    const nested = asUser(user, () => {
      const inner = asUser(user, () => currentCredentials().uid, { mode: 'mount' });
      return { inner, outer: currentCredentials().uid };
    });
    assert.deepEqual(nested.inner, { ruid: 0, euid: 0, suid: 0 });
    assert.deepEqual(nested.outer, { ruid: 0, euid: u.uid, suid: 0 });
    assert.deepEqual(currentCredentials(), { uid: { ruid: 0, euid: 0, suid: 0 }, gid: { rgid: 0, egid: 0, sgid: 0 }, groups: native().getgroups() });
  });

  test('uid 0 targets are refused unless allowRoot', () => {
    const root = lookupUser('root');
    assert.throws(() => asUser(root, () => 1), code('PERMISSION'));
    assert.equal(asUser(root, () => 2, { allowRoot: true }), 2);
  });

  test('hardenProcess: not dumpable, core limit 0 (read back from /proc)', () => {
    const r = inSession<{ d: number; limits: string }>(
      `c.hardenProcess(); out({ d: n.prctlGetDumpable(), limits: require('fs').readFileSync('/proc/self/limits', 'utf8').split('\\n').find((l) => l.startsWith('Max core file size')) });`,
    );
    assert.equal(r.d, 0);
    assert.match(r.limits, /^Max core file size\s+0\s+0\s+bytes/);
  });

  test('resetInheritedState: a caller with hostile limits, nice, umask and oom_score_adj hands none of it to the agent', () => {
    const script = join(dir, 'reset.js');
    writeFileSync(
      script,
      `const c = require(${JSON.stringify(join(DIST_SRC, 'os', 'credentials.js'))});
      const fs = require('fs');
      const limit = (text, name) => text.split('\\n').find((l) => l.startsWith(name)).replace(/\\s+/g, ' ');
      const before = limit(fs.readFileSync('/proc/self/limits', 'utf8'), 'Max file size');
      const problems = c.resetInheritedState();
      const limits = fs.readFileSync('/proc/self/limits', 'utf8');
      const status = fs.readFileSync('/proc/self/status', 'utf8');
      const nices = fs.readdirSync('/proc/self/task').map((t) => Number(fs.readFileSync('/proc/self/task/' + t + '/stat', 'utf8').split(') ')[1].split(' ')[16]));
      process.stdout.write(JSON.stringify({
        problems, fsizeBefore: before,
        fsize: limit(limits, 'Max file size'), cpu: limit(limits, 'Max cpu time'), nofile: limit(limits, 'Max open files'), core: limit(limits, 'Max core file size'),
        umask: /^Umask:\\s*(\\d+)/m.exec(status)[1],
        oom: fs.readFileSync('/proc/self/oom_score_adj', 'utf8').trim(), nices,
      }));\n`,
    );
    // Started the way a user would start su: tiny limits, nice 19, umask 0777, oom_score_adj 1000.
    // Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace, which a setuid su
    // has but a container's root may not: then only the soft limits are made hostile here (the VM
    // suite, real root, does both).
    const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
    const sysResource = (capEff & (1n << 24n)) !== 0n; // CAP_SYS_RESOURCE
    const lim = (v: string) => (sysResource ? v : `${v}:unlimited`);
    const out = mustSh(`prlimit --fsize=${lim('0')} --cpu=${lim('30')} --nofile=${sysResource ? '64' : '64:4096'} nice -n 19 sh -c 'umask 0777; echo 1000 > /proc/self/oom_score_adj; exec "$0" "$1"' ${process.execPath} ${script}`);
    const got = JSON.parse(out) as Record<string, unknown>;
    if (sysResource) assert.deepEqual(got.problems, []);
    // without CAP_SYS_RESOURCE a hard limit the environment set below the target stays (reported)
    else for (const p of got.problems as string[]) assert.match(p, /^setrlimit\(RLIMIT_(NPROC|MEMLOCK|LOCKS|RTTIME|AS|DATA|RSS)\): .*EPERM/);
    assert.match(String(got.fsizeBefore), /^Max file size 0 /, 'the child really started with RLIMIT_FSIZE 0');
    assert.match(String(got.fsize), /^Max file size unlimited unlimited/);
    assert.match(String(got.cpu), /^Max cpu time unlimited unlimited/);
    const [, nsoft, nhard] = /^Max open files (\d+) (\d+) /.exec(String(got.nofile)) ?? [];
    assert.ok(Number(nsoft) >= 1024 && Number(nhard) >= 4096, String(got.nofile));
    assert.match(String(got.core), /^Max core file size 0 0 /);
    assert.equal(got.umask, '0022');
    assert.equal(got.oom, '0');
    assert.deepEqual([...new Set(got.nices as number[])], [0], 'nice 0 on every thread');
  });

  test('hardenProcess: secrets from then on live in locked pages of their own (VmLck), wiped when collected', () => {
    const r = inSession<{ before: number; after: number; errno: number; len: number; again: number }>(`
      const s = require(${JSON.stringify(join(DIST_SRC, 'formats', 'secret-memory.js'))});
      const vmlck = () => Number(/^VmLck:\\s*(\\d+)/m.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
      const before = vmlck();
      c.hardenProcess();
      const secret = s.allocSecret(100);
      secret.fill(0x41);
      out({ before, after: vmlck(), errno: secret.mlockErrno, len: secret.length, again: s.copySecret(secret).length });`);
    assert.equal(r.before, 0);
    assert.equal(r.errno, 0);
    assert.ok(r.after >= 4, `VmLck ${r.after} kB after one secret`);
    assert.equal(r.len, 100);
    assert.equal(r.again, 100);
  });
});
