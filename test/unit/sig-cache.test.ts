import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isAgentError } from '../../src/errors';
import { appendToSigCache, isSigCached, newSigWarning, readSigCache, sigCacheHas, sigCachePath, sigCacheRecord } from '../../src/actions/sig-cache';

const A = 'a1a5358798c8f119';
const B = '17a35eb90f383c7c';
const C = '86bf023b548f00ce';
const dir = fs.mkdtempSync(join(os.tmpdir(), 'eat-sigcache-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('records are 17 bytes "<sig>\\n", matched as ecryptfs_check_sig reads them', () => {
  // What mount.ecryptfs wrote in the VM after "yes, yes" for two passphrases.
  const reference = Buffer.from(`${A}\n${B}\n`, 'latin1');
  assert.equal(sigCacheHas(reference, A), true);
  assert.equal(sigCacheHas(reference, B), true);
  assert.equal(sigCacheHas(reference, C), false);
  assert.equal(sigCacheHas(null, A), false, 'no file: never mounted');
  assert.equal(sigCacheHas(Buffer.alloc(0), A), false);
  assert.deepEqual(sigCacheRecord(A), Buffer.from(`${A}\n`, 'latin1'));
});

test('quirks kept from the reference: case matters, a short last record and a misaligned one do not count', () => {
  assert.equal(sigCacheHas(Buffer.from(`${A.toUpperCase()}\n`), A), false);
  assert.equal(sigCacheHas(Buffer.from(A), A), false, 'no newline: 16 bytes, no record');
  assert.equal(sigCacheHas(Buffer.from(`${A}X`), A), true, 'only the first 16 of 17 bytes are compared');
  assert.equal(sigCacheHas(Buffer.from(`x\n${A}\n`), A), false, 'a stray line shifts every record after it');
  assert.throws(() => sigCacheHas(null, 'nope'), (e) => isAgentError(e, 'BAD_SIG'));
  assert.throws(() => sigCacheRecord(`${A}\n${B}`), (e) => isAgentError(e, 'BAD_SIG'));
});

test('the warning is mount.ecryptfs\'s, trailing spaces included', () => {
  assert.equal(
    newSigWarning('/root/.ecryptfs/sig-cache.txt'),
    'WARNING: Based on the contents of [/root/.ecryptfs/sig-cache.txt],\nit looks like you have never mounted with this key \nbefore. This could mean that you have typed your \npassphrase wrong.\n\n',
  );
  assert.equal(sigCachePath('/root'), '/root/.ecryptfs/sig-cache.txt');
});

test('append creates ~/.ecryptfs 0700 and the file 0600, then appends byte for byte', () => {
  const home = join(dir, 'home1');
  fs.mkdirSync(home);
  const path = sigCachePath(home);
  const oldMask = process.umask(0o022);
  try {
    assert.equal(readSigCache(path), null);
    assert.equal(isSigCached(path, A), false);
    appendToSigCache(path, A);
    appendToSigCache(path, B);
  } finally {
    process.umask(oldMask);
  }
  assert.equal(fs.statSync(join(home, '.ecryptfs')).mode & 0o777, 0o700);
  assert.equal(fs.statSync(path).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(path, 'latin1'), `${A}\n${B}\n`);
  assert.equal(isSigCached(path, B), true);
  assert.equal(isSigCached(path, C), false);
});

test('append keeps what is there (a file the reference wrote) and an existing directory', () => {
  const home = join(dir, 'home2');
  fs.mkdirSync(join(home, '.ecryptfs'), { recursive: true, mode: 0o755 });
  const path = sigCachePath(home);
  fs.writeFileSync(path, `${A}\n`, { mode: 0o600 });
  appendToSigCache(path, C);
  assert.equal(fs.readFileSync(path, 'latin1'), `${A}\n${C}\n`);
  assert.equal(fs.statSync(join(home, '.ecryptfs')).mode & 0o777, 0o755, 'an existing directory is left as it is');
});

test('a symlink at the cache is neither read nor written through', () => {
  const home = join(dir, 'home3');
  fs.mkdirSync(join(home, '.ecryptfs'), { recursive: true });
  const victim = join(dir, 'victim');
  fs.writeFileSync(victim, `${A}\n`);
  fs.symlinkSync(victim, sigCachePath(home));
  assert.throws(() => readSigCache(sigCachePath(home)), (e) => isAgentError(e, 'SYMLINK_REFUSED'));
  assert.throws(() => appendToSigCache(sigCachePath(home), B), (e) => isAgentError(e, 'SYMLINK_REFUSED'));
  assert.equal(fs.readFileSync(victim, 'latin1'), `${A}\n`);
});
