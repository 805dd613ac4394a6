/**
 * Byte compatibility with the installed ecryptfs-utils 111 tools, on vectors they
 * generate at test time. Runs as root (real @u keyring). Fails if the tools are missing.
 * Keys land in root's user keyring @u (that is where ecryptfs-utils puts them, whatever
 * the session keyring); every key added here is unlinked again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { unwrapPassphrase, wrapPassphrase, wrapPassphraseV1, parseWrapped } from '../../src/formats/wrapped-passphrase';
import { buildPasswordAuthTok } from '../../src/formats/auth-tok';
import { DEFAULT_SALT, FNEK_SALT } from '../../src/formats/kdf';

const AGENT = join(__dirname, '..', '..', '..', 'bin', 'ecryptfs-agent');
const TOOLS = {
  wrap: '/usr/bin/ecryptfs-wrap-passphrase',
  unwrap: '/usr/bin/ecryptfs-unwrap-passphrase',
  rewrap: '/usr/bin/ecryptfs-rewrap-passphrase',
  insert: '/usr/bin/ecryptfs-insert-wrapped-passphrase-into-keyring',
  add: '/usr/bin/ecryptfs-add-passphrase',
  keyctl: '/usr/bin/keyctl',
} as const;
const AGENT_CMD: Record<'wrap' | 'unwrap' | 'rewrap' | 'insert' | 'add', string> = {
  wrap: 'wrap-passphrase',
  unwrap: 'unwrap-passphrase',
  rewrap: 'rewrap-passphrase',
  insert: 'insert-wrapped-passphrase',
  add: 'add-passphrase',
};
const ROOT_RC = join(os.userInfo().homedir, '.ecryptfsrc');

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], input: Buffer | string = ''): Run {
  const r = spawnSync(cmd, args, { input, timeout: 20000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}
const c = (tool: keyof typeof AGENT_CMD, args: string[], input: Buffer | string = ''): Run => run(TOOLS[tool], args, input);
const ours = (tool: keyof typeof AGENT_CMD, args: string[], input: Buffer | string = ''): Run =>
  run(process.execPath, [AGENT, AGENT_CMD[tool] as string, ...args], input);

/** Random passphrase of 1..maxBytes UTF-8 bytes: printable ASCII plus some multi-byte characters, no NUL/newline. */
function randomPassphrase(maxBytes = 64): Buffer {
  const target = randomInt(1, maxBytes + 1);
  const pool = ['é', 'ß', 'Ж', '€', '秘', '🔑', 'ü'];
  let s = '';
  for (;;) {
    const ch = randomInt(4) === 0 ? (pool[randomInt(pool.length)] as string) : String.fromCharCode(randomInt(0x20, 0x7f));
    if (Buffer.byteLength(s + ch) > target) break;
    s += ch;
  }
  if (s.length === 0) s = 'x';
  return Buffer.from(s);
}
const lines = (...parts: Buffer[]): Buffer => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('\n'), p])));

let dir: string;
const addedKeys: string[] = [];
let rcCreated = false;

function keyIdOf(sig: string): string | undefined {
  const r = run(TOOLS.keyctl, ['search', '@u', 'user', sig]);
  return r.status === 0 ? r.stdout.toString().trim() : undefined;
}
function readKey(sig: string): Buffer {
  const id = keyIdOf(sig);
  assert.ok(id, `key ${sig} must be in @u`);
  const r = run(TOOLS.keyctl, ['pipe', id]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}
function unlinkKey(sig: string): void {
  const id = keyIdOf(sig);
  if (id !== undefined) run(TOOLS.keyctl, ['unlink', id, '@u']);
}
function sigsOf(stdout: Buffer): string[] {
  return [...stdout.toString().matchAll(/Inserted auth tok with sig \[([0-9a-f]{16})\]/g)].map((m) => m[1] as string);
}

before(() => {
  assert.equal(process.getuid!(), 0, 'the host suite runs as root');
  for (const tool of Object.values(TOOLS)) fs.accessSync(tool, fs.constants.X_OK); // fail, never skip
  fs.accessSync(join(__dirname, '..', '..', 'src', 'cli', 'main.js'));
  assert.equal(fs.existsSync(ROOT_RC), false, `${ROOT_RC} must not exist (the tests create and remove it)`);
  dir = fs.mkdtempSync(join(os.tmpdir(), 'ecryptfs-compat-'));
});

after(() => {
  for (const sig of addedKeys) unlinkKey(sig);
  if (rcCreated) fs.rmSync(ROOT_RC, { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('wrap/unwrap/rewrap interoperate both ways on random passphrases', () => {
  for (let i = 0; i < 6; i++) {
    const pass = randomPassphrase();
    const wpw = randomPassphrase();
    const wpw2 = randomPassphrase();
    const what = `case ${i} (${pass.length}/${wpw.length} bytes)`;

    // theirs → ours
    const theirs = join(dir, `theirs-${i}`);
    const w = c('wrap', [theirs, '-'], lines(pass, wpw));
    assert.equal(w.status, 0, `${what}: ${w.stderr}`);
    const theirFile = fs.readFileSync(theirs);
    assert.equal(parseWrapped(theirFile).version, 2);
    assert.deepEqual(unwrapPassphrase(theirFile, wpw), pass, what);

    // ours → theirs
    const mine = join(dir, `mine-${i}`);
    fs.writeFileSync(mine, wrapPassphrase(pass, wpw));
    const u = c('unwrap', [mine, '-'], wpw);
    assert.equal(u.status, 0, `${what}: ${u.stderr}`);
    assert.deepEqual(u.stdout, Buffer.concat([pass, Buffer.from('\n')]), what);

    // their rewrap of our file; our rewrap (CLI) of theirs
    const r1 = c('rewrap', [mine, '-'], lines(wpw, wpw2));
    assert.equal(r1.status, 0, `${what}: ${r1.stderr}`);
    assert.deepEqual(unwrapPassphrase(fs.readFileSync(mine), wpw2), pass, what);
    const r2 = ours('rewrap', [theirs, '-'], lines(wpw, wpw2));
    assert.equal(r2.status, 0, `${what}: ${r2.stderr}`);
    assert.equal(fs.statSync(theirs).mode & 0o777, 0o600);
    const u2 = c('unwrap', [theirs, '-'], wpw2);
    assert.deepEqual(u2.stdout, Buffer.concat([pass, Buffer.from('\n')]), what);
  }
});

test('the file our wrap-passphrase CLI writes is unwrapped by ecryptfs-unwrap-passphrase (stdin and argv forms)', () => {
  for (let i = 0; i < 6; i++) {
    const pass = randomPassphrase();
    const wpw = randomPassphrase();
    const viaArgv = i % 2 === 1;
    const what = `case ${i} (${viaArgv ? 'argv' : 'stdin'}, ${pass.length}/${wpw.length} bytes)`;
    const mine = join(dir, `cli-wrapped-${i}`);
    const w = viaArgv ? ours('wrap', [mine, pass.toString(), wpw.toString()]) : ours('wrap', [mine, '-'], lines(pass, wpw));
    assert.equal(w.status, 0, `${what}: ${w.stderr}`);
    assert.equal(w.stdout.length, 0, `${what}: prints nothing, as ecryptfs-wrap-passphrase`);
    const st = fs.statSync(mine);
    assert.equal(st.mode & 0o777, 0o600, what);
    const file = fs.readFileSync(mine);
    assert.equal(parseWrapped(file).version, 2, what);
    assert.equal(file.length, 26 + Math.ceil(pass.length / 16) * 16, `${what}: the v2 size for this passphrase`);
    // the C tool's own file for the same passphrase has the same size (the salt differs)
    const theirs = join(dir, `c-wrapped-${i}`);
    assert.equal(c('wrap', [theirs, '-'], lines(pass, wpw)).status, 0, what);
    assert.equal(fs.statSync(theirs).size, file.length, what);
    const u = c('unwrap', [mine, '-'], wpw);
    assert.equal(u.status, 0, `${what}: ${u.stderr}`);
    assert.deepEqual(u.stdout, Buffer.concat([pass, Buffer.from('\n')]), what);
    // (at most 64 bytes: a longer one would only get the tool's usage text)
    const wrong = c('unwrap', [mine, '-'], wpw.length < 64 ? Buffer.concat([wpw, Buffer.from('x')]) : wpw.subarray(1));
    assert.equal(wrong.status, 1, `${what}: a wrong wrapping passphrase is refused by the C tool`);
  }
});

test('v1 files we build are unwrapped by the C tool, and both rewraps upgrade them to v2', () => {
  for (let i = 0; i < 3; i++) {
    const pass = randomPassphrase();
    const wpw = randomPassphrase();
    const v1 = join(dir, `v1-${i}`);
    fs.writeFileSync(v1, wrapPassphraseV1(pass, wpw, DEFAULT_SALT));
    const u = c('unwrap', [v1, '-'], wpw);
    assert.equal(u.status, 0, u.stderr);
    assert.deepEqual(u.stdout, Buffer.concat([pass, Buffer.from('\n')]));
    assert.deepEqual(ours('unwrap', [v1, '-'], wpw).stdout, u.stdout);
    const tool = i % 2 === 0 ? ours : c;
    assert.equal(tool('rewrap', [v1, '-'], lines(wpw, wpw)).status, 0);
    const upgraded = fs.readFileSync(v1);
    assert.equal(parseWrapped(upgraded).version, 2);
    assert.deepEqual(unwrapPassphrase(upgraded, wpw), pass);
  }
});

test('add-passphrase: our sig and payload equal ecryptfs-add-passphrase, default and ~/.ecryptfsrc salt', () => {
  const salts: [string | undefined, Buffer][] = [[undefined, DEFAULT_SALT], ['a1b2c3d4e5f60718', Buffer.from('a1b2c3d4e5f60718', 'hex')]];
  for (const [rcSalt, salt] of salts) {
    if (rcSalt !== undefined) {
      fs.writeFileSync(ROOT_RC, `salt=${rcSalt}\n`); // the C tools read getpwuid(getuid())'s home, not $HOME
      rcCreated = true;
    }
    try {
      for (let i = 0; i < 3; i++) {
        const pass = randomPassphrase();
        const expected = buildPasswordAuthTok(pass, salt);
        unlinkKey(expected.sig);
        addedKeys.push(expected.sig);
        const theirs = c('add', ['-'], pass);
        assert.equal(theirs.status, 0, theirs.stderr);
        assert.deepEqual(sigsOf(theirs.stdout), [expected.sig]);
        assert.deepEqual(readKey(expected.sig), expected.payload, 'C payload equals ours');
        unlinkKey(expected.sig);
        const mine = ours('add', ['-'], pass);
        assert.equal(mine.status, 0, mine.stderr);
        assert.deepEqual(mine.stdout, theirs.stdout);
        assert.deepEqual(readKey(expected.sig), expected.payload, 'key added by ecryptfs-agent');
        unlinkKey(expected.sig);
      }
    } finally {
      if (rcSalt !== undefined) {
        fs.rmSync(ROOT_RC, { force: true });
        rcCreated = false;
      }
    }
  }
});

test('insert-wrapped-passphrase: FNEK and main keys equal those of the C tool', () => {
  for (let i = 0; i < 2; i++) {
    const pass = randomPassphrase();
    const wpw = randomPassphrase();
    const file = join(dir, `insert-${i}`);
    fs.writeFileSync(file, wrapPassphrase(pass, wpw));
    const fek = buildPasswordAuthTok(pass, DEFAULT_SALT);
    const fnek = buildPasswordAuthTok(pass, FNEK_SALT);
    for (const k of [fek, fnek]) {
      unlinkKey(k.sig);
      addedKeys.push(k.sig);
    }
    const theirs = c('insert', [file, '-'], wpw);
    assert.equal(theirs.status, 0, theirs.stderr);
    assert.deepEqual(sigsOf(theirs.stdout), [fek.sig]);
    assert.deepEqual(readKey(fek.sig), fek.payload);
    assert.deepEqual(readKey(fnek.sig), fnek.payload);
    unlinkKey(fek.sig);
    unlinkKey(fnek.sig);
    const mine = ours('insert', [file, '-'], wpw);
    assert.equal(mine.status, 0, mine.stderr);
    assert.deepEqual(mine.stdout, theirs.stdout);
    assert.deepEqual(readKey(fek.sig), fek.payload);
    assert.deepEqual(readKey(fnek.sig), fnek.payload);
    unlinkKey(fek.sig);
    unlinkKey(fnek.sig);
  }
});

/** Our stdout with our command names mapped to the C tool names; our stderr without the hint lines. */
function normalised(r: Run, tool: keyof typeof AGENT_CMD): { status: number | null; stdout: string; stderr: string } {
  const cName = TOOLS[tool].split('/').pop() as string;
  return {
    status: r.status,
    stdout: r.stdout.toString('latin1').split(`ecryptfs-agent ${AGENT_CMD[tool]}`).join(cName),
    stderr: r.stderr.split('\n').filter((l) => !l.startsWith('hint: ')).join('\n'),
  };
}

test('golden CLI: same stdout, compatible stderr lines and same exit code as the C tools', () => {
  const wf = join(dir, 'golden');
  fs.writeFileSync(wf, wrapPassphrase(Buffer.from('secret'), Buffer.from('wpw')));
  const v3 = join(dir, 'v3');
  fs.writeFileSync(v3, Buffer.concat([Buffer.from(':\x03'), randomBytes(40)]));
  const short = join(dir, 'short');
  fs.writeFileSync(short, 'abc');
  const garbage = join(dir, 'garbage');
  fs.writeFileSync(garbage, 'z'.repeat(42));
  const odd = join(dir, 'odd');
  fs.writeFileSync(odd, fs.readFileSync(wf).subarray(0, 30));
  const long65 = 'a'.repeat(65);
  const out = (name: string): string => join(dir, `golden-out-${name}`);
  const cases: [keyof typeof AGENT_CMD, (side: string) => string[], string | Buffer][] = [
    ['unwrap', () => [wf, '-'], 'wpw'],
    ['unwrap', () => [wf, '-'], 'wpw\0trailing garbage'],
    ['unwrap', () => [wf, '-'], 'wrong'],
    ['unwrap', () => [wf, '-'], ''],
    ['unwrap', () => [wf, '-'], '\n'],
    ['unwrap', () => [wf, '-'], `${long65}\n`],
    ['unwrap', () => [wf, 'wpw'], ''],
    ['unwrap', () => [wf, 'x'], ''],
    ['unwrap', () => [wf, long65], ''],
    ['unwrap', () => [wf, 'a', 'b'], ''],
    ['unwrap', () => [join(dir, 'missing'), '-'], 'pw'],
    ['unwrap', () => [short, '-'], 'pw'],
    ['unwrap', () => [garbage, '-'], 'pw'],
    ['unwrap', () => [v3, '-'], 'pw'],
    ['unwrap', () => [odd, '-'], 'wpw'],
    ['unwrap', () => [dir, '-'], 'pw'],
    ['unwrap', () => [wf], 'wpw\n'],
    ['wrap', (s) => [out(`w1-${s}`), '-'], 'pass\nwpw'],
    ['wrap', (s) => [out(`w2-${s}`), '-'], '\nwpw'],
    ['wrap', (s) => [out(`w3-${s}`), '-'], 'pass\n\n'],
    ['wrap', (s) => [out(`w4-${s}`), '-'], 'pass\n'],
    ['wrap', (s) => [out(`w5-${s}`), '-'], `${long65}\nwpw`],
    ['wrap', (s) => [out(`w6-${s}`), 'x'], ''],
    ['wrap', (s) => [out(`w7-${s}`), long65, 'pw'], ''],
    ['wrap', (s) => [out(`w8-${s}`), '', 'pw'], ''],
    ['wrap', (s) => [out(`w9-${s}`), 'pass', 'pw'], ''],
    ['rewrap', () => [wf, '-'], 'bad\nnew'],
    ['rewrap', () => [wf, '-'], 'wpw\n'],
    ['rewrap', () => [wf, '-'], 'wpw\n\n'],
    ['rewrap', () => [wf], ''],
    ['rewrap', () => [wf], 'wpw\n'],
    ['rewrap', () => [wf], 'wpw\nnew\n'],
    ['rewrap', () => [wf], 'wpw\nnew\nother\n'],
    ['insert', () => [wf, '-'], 'bad'],
    ['insert', () => [wf, '-'], ''],
    ['insert', () => [join(dir, 'missing'), '-'], 'pw'],
    ['insert', () => [wf, 'a', 'b'], ''],
    ['add', () => ['--fnek', '-'], 'testpass'],
    ['add', () => ['-'], ''],
    ['add', () => ['-'], '\n'],
    ['add', () => ['-'], long65],
    ['add', () => ['x', 'y'], ''],
    ['add', () => ['--help'], ''],
  ];
  for (const [tool, args, input] of cases) {
    const label = `${tool} ${JSON.stringify(args('c'))} <<< ${JSON.stringify(input.toString())}`;
    const theirs = c(tool, args('c'), input);
    const mine = ours(tool, args('ours'), input);
    const cRun = normalised(theirs, tool);
    const agentRun = normalised(mine, tool);
    if (tool === 'add' && args('c')[0] === '--help') {
      // C: usage, exit 0. Ours: the documented help, exit 0.
      assert.equal(cRun.status, 0, label);
      assert.equal(agentRun.status, 0, label);
      assert.match(agentRun.stdout, /Exit status/);
      continue;
    }
    assert.equal(agentRun.status, cRun.status, `${label}: exit code`);
    assert.equal(agentRun.stdout, cRun.stdout, `${label}: stdout`);
    assert.equal(agentRun.stderr, cRun.stderr, `${label}: stderr`);
    if (cRun.status === 1 && theirs.stderr.startsWith('Error:')) assert.match(mine.stderr, /\nhint: .+\n$/, `${label}: hint line`);
    // Whatever the tools wrote, the file contents must be mutually readable.
    const [outC, outOurs] = [args('c')[0] as string, args('ours')[0] as string];
    if (tool === 'wrap') assert.equal(fs.existsSync(outOurs), fs.existsSync(outC), `${label}: file written`);
  }
  assert.equal(c('unwrap', [wf, '-'], 'wpw').stdout.toString(), 'secret\n', 'failed rewraps left the file intact');
});
