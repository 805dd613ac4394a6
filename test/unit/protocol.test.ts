import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAgentError } from '../../src/errors';
import { parseRequest, renderReply, renderRequest, type AgentRequest } from '../../src/formats/protocol';

const base: AgentRequest = {
  phase: 'auth',
  user: 'alice',
  service: 'sshd',
  tty: 'ssh',
  rhost: '127.0.0.1',
  ruser: '',
  pamPid: 4242,
  session: '',
  unwrap: true,
  debug: false,
  silent: false,
};

test('a request round-trips, secrets byte for byte (spaces, UTF-8, "=" and "end" inside)', () => {
  const authtok = Buffer.from('pa ss=wörd\nend\n', 'utf8');
  const oldauthtok = Buffer.from('x'.repeat(512));
  const parsed = parseRequest(renderRequest({ ...base, phase: 'chauthtok', authtok, oldauthtok }));
  assert.equal(parsed.phase, 'chauthtok');
  assert.equal(parsed.user, 'alice');
  assert.equal(parsed.pamPid, 4242);
  assert.equal(parsed.unwrap, true);
  assert.deepEqual(parsed.authtok, authtok);
  assert.deepEqual(parsed.oldauthtok, oldauthtok);
});

test('unknown keys are ignored (forward compatible), missing optional keys default', () => {
  const raw = Buffer.from('ECRYPTFS-AGENT 1\nphase=open_session\nuser=bob\npam_pid=7\nfuture_field=1\nend\n');
  const r = parseRequest(raw);
  assert.equal(r.phase, 'open_session');
  assert.equal(r.service, '');
  assert.equal(r.session, '');
  assert.equal(r.authtok, undefined);
});

const malformed: Array<[string, string | Buffer]> = [
  ['bad header', 'ECRYPTFS-AGENT 2\nphase=auth\nuser=a\npam_pid=1\nend\n'],
  ['no end', 'ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=1\n'],
  ['unknown phase', 'ECRYPTFS-AGENT 1\nphase=setcred\nuser=a\npam_pid=1\nend\n'],
  ['no user', 'ECRYPTFS-AGENT 1\nphase=auth\npam_pid=1\nend\n'],
  ['bad pid', 'ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=-1\nend\n'],
  ['truncated secret', 'ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=1\nsecret authtok 10\nabc\nend\n'],
  ['oversized secret', `ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=1\nsecret authtok 513\n${'a'.repeat(513)}\nend\n`],
  ['bad session id', 'ECRYPTFS-AGENT 1\nphase=close_session\nuser=a\npam_pid=1\nsession=../x\nend\n'],
  ['NUL in a field', Buffer.from('ECRYPTFS-AGENT 1\nphase=auth\nuser=a\0b\npam_pid=1\nend\n')],
  ['garbage line', 'ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=1\nhello\nend\n'],
];
for (const [name, raw] of malformed) {
  test(`malformed request is a typed USAGE error: ${name}`, () => {
    assert.throws(() => parseRequest(Buffer.isBuffer(raw) ? raw : Buffer.from(raw)), (e) => isAgentError(e, 'USAGE'));
  });
}

const withPid = (pid: string): Buffer => Buffer.from(`ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=${pid}\nend\n`);
const withSecretLength = (n: string, bytes: number): Buffer =>
  Buffer.from(`ECRYPTFS-AGENT 1\nphase=auth\nuser=a\npam_pid=1\nsecret authtok ${n}\n${'a'.repeat(bytes)}\nend\n`);

test('pam_pid is a decimal pid as the shim prints it (%ld): 1 .. 4194303, nothing else', () => {
  for (const pid of ['1', '42', '4194303']) assert.equal(parseRequest(withPid(pid)).pamPid, Number(pid), pid);
  for (const pid of ['0x10', '1e3', ' 12', '12 ', '+12', '012', '0', '-0', '1.0', '１２', '', '4194304', '2147483648', '9'.repeat(30)]) {
    assert.throws(() => parseRequest(withPid(pid)), (e) => isAgentError(e, 'USAGE') && /bad pam_pid/.test(e.message), JSON.stringify(pid));
  }
});

test('a secret length is decimal as the shim prints it (%zu): no sign, no leading zero', () => {
  assert.equal(parseRequest(withSecretLength('0', 0)).authtok?.length, 0);
  assert.equal(parseRequest(withSecretLength('3', 3)).authtok?.length, 3);
  for (const [n, bytes] of [['03', 3], ['+3', 3], [' 3', 3], ['0x3', 3], ['3e0', 3]] as const) {
    assert.throws(() => parseRequest(withSecretLength(n, bytes)), (e) => isAgentError(e, 'USAGE'), n);
  }
  // a well-formed length over PAM_MAX_RESP_SIZE keeps its own message (the agent logs it)
  assert.throws(() => parseRequest(withSecretLength('513', 513)), (e) => isAgentError(e, 'USAGE') && /secret authtok too long$/.test(e.message));
});

test('reply: one line each, control characters escaped (C0, C1, bidi), lines bounded, session id validated', () => {
  const out = renderReply({ result: 'success', info: ['a\nb\x1b[31m', '/home/x/P\u009b2J\u202eexe.txt\u2066 \u200f\u2028x'], error: ['e'.repeat(5000)], session: 'abc_DEF-1' }).toString();
  const lines = out.split('\n');
  assert.equal(lines[0], 'ECRYPTFS-AGENT 1');
  assert.equal(lines[1], 'result=success');
  assert.equal(lines[2], 'info=a b\\x1b[31m');
  assert.equal(lines[3], 'info=/home/x/P\\x9b2J\\u202eexe.txt\\u2066 \\u200f\\u2028x');
  lines.splice(3, 1);
  assert.ok((lines[3] as string).length < 1024);
  assert.equal(lines[4], 'session=abc_DEF-1');
  assert.equal(lines[5], 'end');
  assert.throws(() => renderReply({ result: 'ignore', info: [], error: [], session: 'bad id' }));
});
