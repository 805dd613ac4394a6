/** Credential switching as root, checked against what the kernel reports in /proc. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asUser, currentCredentials, isValidUsername, lookupUid, lookupUser, withLockedSecret } from '../../src/credentials';
import { AgentError } from '../../src/errors';
import { native } from '../../src/native';
import { createUser, deleteUser, inSession, mustSh, type TestUser } from '../helpers/host-native';

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

  test('asUser switches every thread to the full user credentials and restores root', () => {
    const groups = mustSh(`id -G ${u.name}`).trim().split(' ').map(Number).sort();
    const before = threadIds();
    assert.ok(before.length > 1, 'node has several threads');
    const inside = asUser(lookupUser(u.name), () => {
      assert.throws(() => writeFileSync(join(dir, 'x'), 'x'), /EACCES/);
      return { creds: currentCredentials(), threads: threadIds() };
    });
    assert.deepEqual(inside.creds.uid, { ruid: u.uid, euid: u.uid, suid: 0 });
    assert.deepEqual(inside.creds.gid, { rgid: u.gid, egid: u.gid, sgid: 0 });
    assert.deepEqual([...inside.creds.groups].sort(), groups);
    // glibc broadcast the change: no thread kept root (Uid: real effective saved fs)
    for (const t of inside.threads) assert.equal(t.split('|')[0], `${u.uid} ${u.uid} 0 ${u.uid}`);
    assert.deepEqual(threadIds(), before);
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
  });

  test('effectiveRoot changes only the real ids (files are still created by root)', () => {
    const r = asUser(
      lookupUser(u.name),
      () => {
        writeFileSync(join(dir, 'eff'), 'x');
        return { creds: currentCredentials(), status: /^Uid:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] };
      },
      { effectiveRoot: true },
    );
    assert.deepEqual(r.creds.uid, { ruid: u.uid, euid: 0, suid: 0 });
    assert.deepEqual(r.creds.gid, { rgid: u.gid, egid: 0, sgid: 0 });
    assert.equal(r.status?.replace(/\s+/g, ' '), `${u.uid} 0 0 0`);
    assert.equal(statSync(join(dir, 'eff')).uid, 0);
  });

  test('root is restored when fn throws, when it returns a promise, and after nesting', () => {
    const user = lookupUser(u.name);
    assert.throws(() => asUser(user, () => { throw new Error('boom'); }), /boom/);
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
    assert.throws(() => asUser(user, () => Promise.resolve(1)), code('USAGE'));
    assert.deepEqual(currentCredentials().uid, { ruid: 0, euid: 0, suid: 0 });
    const nested = asUser(user, () => {
      const inner = asUser(user, () => currentCredentials().uid, { effectiveRoot: true });
      return { inner, outer: currentCredentials().uid };
    });
    assert.deepEqual(nested.inner, { ruid: u.uid, euid: 0, suid: 0 });
    assert.deepEqual(nested.outer, { ruid: u.uid, euid: u.uid, suid: 0 });
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

  test('withLockedSecret locks, then zeroes (also on throw and for async fn)', async () => {
    const b = Buffer.alloc(4096, 7);
    const vmlck = () => Number(/^VmLck:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    const seen = withLockedSecret(b, (buf, err) => ({ err, sum: buf.reduce((a, x) => a + x, 0), lck: vmlck() }));
    assert.equal(seen.sum, 7 * 4096);
    if (seen.err === 0) assert.ok(seen.lck > 0, 'VmLck > 0 while locked');
    assert.ok(b.every((x) => x === 0));
    const c = Buffer.alloc(32, 1);
    assert.throws(() => withLockedSecret(c, () => { throw new Error('x'); }), /x/);
    assert.ok(c.every((x) => x === 0));
    const d = Buffer.alloc(32, 1);
    const v = await withLockedSecret(d, async (buf) => buf[0]);
    assert.equal(v, 1);
    assert.ok(d.every((x) => x === 0));
  });
});
