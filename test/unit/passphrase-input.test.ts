import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { FdLineSource, type LineSource, TOO_LONG_MESSAGE, createPassphraseReader, passphraseFromLine } from '../../src/os/passphrase-input';
import { isAgentError } from '../../src/errors';

const line = (s: string): Buffer | null => passphraseFromLine(Buffer.from(s, 'latin1'));

test('only the final newline is stripped; CR is kept; NUL ends the C string', () => {
  assert.equal(line('secret\n')?.toString(), 'secret');
  assert.equal(line('secret')?.toString(), 'secret');
  assert.equal(line('secret\r\n')?.toString(), 'secret\r');
  assert.equal(line('pw\0garbage')?.toString(), 'pw');
  assert.equal(line('\n')?.length, 0);
  assert.equal(passphraseFromLine(null), null);
  assert.equal(line('a'.repeat(64) + '\n')?.length, 64);
});

test('65 bytes is too long, with the ecryptfs-utils message', () => {
  assert.throws(() => line('a'.repeat(65)), (e) => isAgentError(e, 'PASSPHRASE_TOO_LONG') && e.message === TOO_LONG_MESSAGE);
});

function sourceOf(content: Buffer): { src: FdLineSource; close: () => void } {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'pp-in-'));
  const p = join(dir, 'stdin');
  fs.writeFileSync(p, content);
  const fd = fs.openSync(p, 'r');
  return { src: new FdLineSource(fd), close: () => { fs.closeSync(fd); fs.rmSync(dir, { recursive: true }); } };
}

test('several lines from one input, fgets-sized reads (65 bytes max)', () => {
  const { src, close } = sourceOf(Buffer.from(`first\nsecond\n${'x'.repeat(70)}\nlast`));
  try {
    assert.equal(src.readLineSync(65)?.toString(), 'first\n');
    assert.equal(src.readLineSync(65)?.toString(), 'second\n');
    assert.equal(src.readLineSync(65)?.length, 65, 'a long line is cut like fgets(buf, 66)');
    assert.equal(src.readLineSync(65)?.toString(), 'xxxxx\n');
    assert.equal(src.readLineSync(65)?.toString(), 'last');
    assert.equal(src.readLineSync(65), null);
  } finally {
    close();
  }
});

test('async readLine on a pipe-like fd works the same', async () => {
  const { src, close } = sourceOf(Buffer.from('a\nb'));
  try {
    assert.equal((await src.readLine(65))?.toString(), 'a\n');
    assert.equal((await src.readLine(65))?.toString(), 'b');
    assert.equal(await src.readLine(65), null);
  } finally {
    close();
  }
});

/** A reader whose terminal, stdout and input record what happens to them, in order. */
function recordingReader(isTty: boolean, lines: Array<string | null>): { read: (prompt?: string) => Promise<Buffer | null>; events: string[] } {
  const events: string[] = [];
  const source: LineSource = {
    readLine: async () => {
      events.push('read');
      const l = lines.shift();
      return l === undefined || l === null ? null : Buffer.from(l, 'latin1');
    },
  };
  const reader = createPassphraseReader({
    source,
    isTty,
    echoOff: () => {
      events.push('echo off');
      return () => void events.push('echo on');
    },
    write: (text) => void events.push(`write ${JSON.stringify(text)}`),
  });
  return { read: (prompt) => reader.read(prompt), events };
}

test('on a terminal echo is off before the prompt is shown, and back on before the newline', async () => {
  const r = recordingReader(true, ['secret\n']);
  assert.equal((await r.read('Passphrase'))?.toString(), 'secret');
  assert.deepEqual(r.events, ['echo off', 'write "Passphrase: "', 'read', 'echo on', 'write "\\n"']);
});

test('echo comes back when the passphrase is refused (too long)', async () => {
  const r = recordingReader(true, ['a'.repeat(65)]);
  await assert.rejects(r.read('Passphrase'), (e) => isAgentError(e, 'PASSPHRASE_TOO_LONG'));
  assert.deepEqual(r.events, ['echo off', 'write "Passphrase: "', 'read', 'echo on', 'write "\\n"']);
});

test('from a pipe the terminal is left alone; without a prompt only EOF prints a newline', async () => {
  const piped = recordingReader(false, ['pw\n']);
  assert.equal((await piped.read('Passphrase'))?.toString(), 'pw');
  assert.deepEqual(piped.events, ['write "Passphrase: "', 'read', 'write "\\n"']);
  const silent = recordingReader(false, ['pw\n', null]);
  assert.equal((await silent.read())?.toString(), 'pw');
  assert.equal(await silent.read(), null);
  assert.deepEqual(silent.events, ['read', 'read', 'write "\\n"']);
});
