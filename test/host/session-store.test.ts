import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLastLogin, SessionStore, type SessionRecord } from '../../src/actions/session';

const rec = (id: string, pid: number, start: string): SessionRecord => ({ id, pid, start, service: 's', tty: '', rhost: '', opened: '' });

test('store: open counts, close by id is idempotent, close by pid works, dead openers are pruned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eat-sessions-'));
  try {
    const store = new SessionStore(join(dir, 'state'));
    const uid = 4000123;
    const a = store.withUserLock(uid, () => store.open(uid, { pid: process.pid, service: 'sshd', tty: 'ssh', rhost: '' }));
    const b = store.withUserLock(uid, () => store.open(uid, { pid: process.pid, service: 'login', tty: 'tty1', rhost: '' }));
    assert.equal(b.live.length, 2);
    assert.notEqual(a.record.id, b.record.id);
    const c1 = store.withUserLock(uid, () => store.close(uid, { id: a.record.id, pid: 1 }));
    assert.equal(c1.removed?.id, a.record.id);
    assert.equal(c1.live.length, 1);
    const c2 = store.withUserLock(uid, () => store.close(uid, { id: a.record.id, pid: 1 }));
    assert.equal(c2.removed, null, 'a second close of the same session removes nothing');
    assert.equal(c2.live.length, 1);
    const c3 = store.withUserLock(uid, () => store.close(uid, { id: '', pid: process.pid }));
    assert.equal(c3.removed?.id, b.record.id, 'without an id the session is found by its opener');
    assert.equal(c3.live.length, 0);
    // A session whose opener is gone (pid that cannot exist) is pruned at the next event.
    const file = join(dir, 'state', `${uid}.sessions`);
    writeFileSync(file, JSON.stringify({ sessions: [rec('ghost', 2 ** 30, '1')] }));
    const d = store.withUserLock(uid, () => store.load(uid));
    assert.deepEqual(d.pruned.map((r) => r.id), ['ghost']);
    assert.equal(d.live.length, 0);
    assert.match(readFileSync(file, 'utf8'), /ghost/, 'load alone does not rewrite');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store: a session marked closing without the lock is dropped by the next lock holder; markers are cleaned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eat-sessions-'));
  try {
    const state = join(dir, 'state');
    const store = new SessionStore(state);
    const uid = 4000124;
    const a = store.withUserLock(uid, () => store.open(uid, { pid: process.pid, service: 'sshd', tty: '', rhost: '' }));
    const b = store.withUserLock(uid, () => store.open(uid, { pid: process.pid, service: 'sshd', tty: '', rhost: '' }));
    const c = store.withUserLock(uid, () => store.open(uid, { pid: process.pid, service: 'sshd', tty: '', rhost: '' }));
    // Two logouts mark their sessions, as close_session does before waiting for the lock; the
    // agent of A is then "killed" (never takes the lock). B's agent takes it.
    store.markClosing(uid, a.record.id);
    store.markClosing(uid, b.record.id);
    const closeB = store.withUserLock(uid, () => store.close(uid, { id: b.record.id, pid: 1 }));
    assert.equal(closeB.removed?.id, b.record.id);
    assert.deepEqual(closeB.live.map((r) => r.id), [c.record.id], 'A counts as closed although its agent never got the lock');
    assert.deepEqual(readdirSync(state).filter((f) => f.includes('.closing-')), [], 'markers of dropped sessions are removed');
    const closeC = store.withUserLock(uid, () => store.close(uid, { id: c.record.id, pid: 1 }));
    assert.equal(closeC.live.length, 0, 'the last logout sees no session left');
    store.markClosing(uid, '../../etc/passwd');
    assert.deepEqual(readdirSync(state).filter((f) => f.includes('.closing-')), [], 'an invalid id writes nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the last login note: kept per user, replaced by the next login, damaged files read as none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eat-sessions-'));
  try {
    const store = new SessionStore(join(dir, 'state'));
    const uid = 4000125;
    assert.equal(store.lastLogin(uid), null);
    store.recordLastLogin(uid, { time: 1000, outcome: 'wrong-password', service: 'login', code: 'WRONG_PASSWORD' });
    assert.deepEqual(store.lastLogin(uid), { time: 1000, outcome: 'wrong-password', service: 'login', code: 'WRONG_PASSWORD' });
    store.recordLastLogin(uid, { time: 2000, outcome: 'mounted', service: 'sshd' });
    assert.deepEqual(store.lastLogin(uid), { time: 2000, outcome: 'mounted', service: 'sshd' });
    const st = statSync(join(dir, 'state', `${uid}.last-login`));
    assert.equal(st.mode & 0o777, 0o600);
    writeFileSync(join(dir, 'state', `${uid}.last-login`), 'not json');
    assert.equal(store.lastLogin(uid), null);
    assert.equal(parseLastLogin('{"time": "x", "outcome": "mounted", "service": "s"}'), null);
    assert.equal(parseLastLogin('{"time": 5, "outcome": "mounted", "service": "s", "code": 7}'), null);
    assert.deepEqual(parseLastLogin('{"time": 5, "outcome": "error", "service": "s", "code": "IO"}'), { time: 5, outcome: 'error', service: 's', code: 'IO' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
