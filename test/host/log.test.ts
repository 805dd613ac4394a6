/**
 * The logger end to end through libc syslog(3): a python3 SOCK_DGRAM listener bound at
 * /dev/log (libc's fixed path) captures the datagrams; asserts the PRI and the redaction.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSecretName, REDACTED, renderLine } from '../../src/formats/log-line';

test('secret-named fields are redacted; lines are key=value', () => {
  for (const k of ['passphrase', 'password', 'newPassword', 'authtok', 'key', 'mount_key', 'keyId', 'payload', 'wrappingPassphrase', 'secret'])
    assert.ok(isSecretName(k), k);
  for (const k of ['user', 'phase', 'outcome', 'keyring', 'sig', 'uid', 'monkey']) assert.ok(!isSecretName(k), k);
  assert.equal(renderLine('', { user: 'alice', phase: 'open_session', outcome: 'mounted' }), 'user=alice phase=open_session outcome=mounted');
  assert.equal(renderLine('unlock', { user: 'bob', passphrase: 'hunter2', n: 3, note: 'two words' }), `unlock user=bob passphrase=${REDACTED} n=3 note="two words"`);
  const nested = renderLine('x', { req: { user: 'a', authtok: 'hunter2', data: Buffer.from('hunter2') } });
  assert.ok(!nested.includes('hunter2'), nested);
  assert.ok(nested.includes(REDACTED) && nested.includes('[7 bytes]'));
  assert.equal(renderLine('a\nforged: line', {}), 'a\\x0aforged: line');
});

const canBind = process.getuid?.() === 0 && !existsSync('/dev/log') && spawnSync('python3', ['-c', '0']).status === 0;

test('syslog transport: authpriv PRI <85> notice / <83> error, secrets never reach the socket', { skip: !canBind && 'needs root, python3 and no existing /dev/log' }, async () => {
  const py = [
    'import socket,sys,json,os',
    's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind("/dev/log"); os.chmod("/dev/log",0o666)',
    'print("ready",flush=True); s.settimeout(1.5); out=[]',
    'try:',
    '  while len(out)<500: out.append(s.recv(65536).decode("utf8","replace"))',
    'except Exception: pass',
    'print(json.dumps(out),flush=True)',
  ].join('\n');
  const listener = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let buf = '';
    listener.stdout!.on('data', (d) => (buf += d));
    await new Promise<void>((res) => listener.stdout!.once('data', () => res()));
    const logMod = join(__dirname, '..', '..', 'src', 'os', 'log.js');
    const child = spawnSync(process.execPath, ['-e', `
      const log = require(${JSON.stringify(logMod)}).createLogger({ ident: 'ecryptfs-agent', debug: false, stderr: false });
      log.notice('', { user: 'alice', phase: 'open_session', outcome: 'mounted', passphrase: 'hunter2' });
      log.error('mount failed', { user: 'alice', errno: 'EPERM', authtok: 'hunter2', payload: Buffer.from('hunter2') });
      log.debug('not shown at info level', { user: 'alice' });
      log.info('done', { key: 'hunter2' });
      log.on('finish', () => process.exit(0)); log.end();`], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    await new Promise((res) => listener.once('exit', res));
    // other processes (parallel tests) may log to /dev/log meanwhile: keep our child's lines
    const msgs = (JSON.parse(buf.split('\n').filter(Boolean).pop()!) as string[]).filter((m) => m.includes(`ecryptfs-agent[${child.pid}]:`));
    assert.equal(msgs.length, 3, JSON.stringify(msgs));
    assert.match(msgs[0]!, /^<85>\w{3} [ \d]\d \d\d:\d\d:\d\d ecryptfs-agent\[\d+\]: user=alice phase=open_session outcome=mounted passphrase=\[redacted\]$/);
    assert.match(msgs[1]!, /^<83>.* ecryptfs-agent\[\d+\]: mount failed user=alice errno=EPERM authtok=\[redacted\] payload=\[redacted\]$/);
    assert.match(msgs[2]!, /^<86>.*: done key=\[redacted\]$/);
    for (const m of msgs) assert.ok(!m.includes('hunter2'), m);
  } finally {
    listener.kill('SIGKILL');
    rmSync('/dev/log', { force: true });
  }
});
