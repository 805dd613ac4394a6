import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { FdLineSource, TOO_LONG_MESSAGE, passphraseFromLine } from '../../src/passphrase-input';
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
