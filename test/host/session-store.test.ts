import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAuthNotes, SessionStore, type SessionRecord } from '../../src/session';
import { spawn, spawnSync } from 'node:child_process';

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

test('auth notes: one per authenticating process; open takes its own, else the newest of an ended process; pending logins, never the closing process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eat-sessions-'));
  const child = spawn('sleep', ['60']); // a second login process, alive
  try {
    const store = new SessionStore(join(dir, 'state'));
    const uid = 4000125;
    const gone = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
    const t = Date.now();
    store.recordAuth(uid, { time: t - 3000, outcome: 'wrong-password', pid: gone }, t);
    store.recordAuth(uid, { time: t - 2000, outcome: 'keys-added', pid: process.pid }, t);
    store.recordAuth(uid, { time: t - 1000, outcome: 'keys-present', pid: child.pid as number }, t);
    store.recordAuth(uid, { time: t - 500, outcome: 'keys-added', pid: process.pid }, t); // replaces this process's note
    assert.deepEqual(
      store.pendingLogins(uid, 300_000, t).map((n) => [n.pid, n.outcome]).sort(),
      [[process.pid, 'keys-added'], [child.pid, 'keys-present']].sort(),
    );
    assert.deepEqual(store.pendingLogins(uid, 700, t).map((n) => n.pid), [process.pid], 'only logins within the window');
    assert.equal(store.takeAuth(uid, process.pid, t)?.time, t - 500, 'own note');
    // no note of its own: the newest note of an ended process, never a live login's
    assert.equal(store.takeAuth(uid, process.pid, t)?.outcome, 'wrong-password');
    assert.equal(store.takeAuth(uid, process.pid, t), null, "the live second login's note is not taken");
    assert.equal(store.takeAuth(uid, child.pid as number, t)?.outcome, 'keys-present');
    assert.deepEqual(readdirSync(join(dir, 'state')).filter((n) => n.endsWith('.auth')), [], 'an empty list leaves no file');
    // stale notes are ignored; the old one-note format is read; damaged files are no notes
    store.recordAuth(uid, { time: t - 11 * 60_000, outcome: 'keys-added', pid: child.pid as number }, t - 11 * 60_000);
    assert.deepEqual(store.pendingLogins(uid, 300_000, t), []);
    writeFileSync(join(dir, 'state', `${uid}.auth`), JSON.stringify({ time: t, outcome: 'no-password' }));
    assert.equal(store.takeAuth(uid, 1, t)?.outcome, 'no-password');
    assert.deepEqual(parseAuthNotes('{"notes": [{"time": "x", "outcome": 1}, {"time": 5, "outcome": "error", "code": "IO"}]}'), [
      { time: 5, outcome: 'error', code: 'IO' },
    ]);
    assert.deepEqual(parseAuthNotes('not json'), []);
    // at the last logout the notes of ended processes go; a live login's stays
    store.recordAuth(uid, { time: t, outcome: 'wrong-password', pid: gone }, t);
    store.recordAuth(uid, { time: t, outcome: 'keys-added', pid: child.pid as number }, t);
    store.dropFinishedAuths(uid, t);
    assert.deepEqual(store.pendingLogins(uid, 300_000, t).map((n) => n.pid), [child.pid]);
    // the closing process's own note (its open_session agent failed before taking it) is no
    // pending login, and its last logout drops it (seen in the stress suite: keys handed over
    // to the very process that was logging out, left in the keyring)
    store.recordAuth(uid, { time: t, outcome: 'keys-added', pid: process.pid }, t);
    assert.deepEqual(store.pendingLogins(uid, 300_000, t, process.pid).map((n) => n.pid), [child.pid]);
    store.dropFinishedAuths(uid, t, process.pid);
    assert.deepEqual(store.pendingLogins(uid, 300_000, t).map((n) => n.pid), [child.pid], 'its note went, the other login\'s stays');
    assert.equal(store.takeAuth(uid, 1, t), null);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
