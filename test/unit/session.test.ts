import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProcStatStart, parseSessions, processStart, pruneDead, type SessionRecord } from '../../src/actions/session';

test('start time is field 22 even when comm holds spaces and parentheses', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  const line = `1234 (a) b (c)) ${fields.join(' ')}`;
  assert.equal(parseProcStatStart(line), '22');
  assert.equal(parseProcStatStart('garbage'), null);
});

test('the start time of this process is readable and stable', () => {
  const a = processStart(process.pid);
  assert.match(a ?? '', /^\d+$/);
  assert.equal(processStart(process.pid), a);
  assert.equal(processStart(2 ** 30), null);
});

const rec = (id: string, pid: number, start: string): SessionRecord => ({ id, pid, start, service: 's', tty: '', rhost: '', opened: '' });

test('pruneDead keeps only sessions whose opener still runs with the same start time', () => {
  const alive = (pid: number, start: string) => pid === 1 && start === '10';
  const { live, dead } = pruneDead([rec('a', 1, '10'), rec('b', 1, '11'), rec('c', 2, '10')], alive);
  assert.deepEqual(live.map((r) => r.id), ['a']);
  assert.deepEqual(dead.map((r) => r.id), ['b', 'c']);
});

test('a damaged state file counts as no sessions', () => {
  assert.deepEqual(parseSessions('{'), []);
  assert.deepEqual(parseSessions('null'), []);
  assert.deepEqual(parseSessions('{"sessions":[{"id":1}]}'), []);
});

