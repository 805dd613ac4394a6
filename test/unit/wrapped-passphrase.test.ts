import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrapped, unwrapPassphrase, wrapPassphrase, wrapPassphraseV1 } from '../../src/formats/wrapped-passphrase';
import { isAgentError, type ErrorCode } from '../../src/errors';
import { createCipheriv } from 'node:crypto';
import { DEFAULT_SALT, deriveKey } from '../../src/formats/kdf';

const A = Buffer.from(
  '3a02072c8d614eb2a49c3737626235623439383834396537613183ef23d95d0faf425adb75ad321f56ad9d3b4748115ca12217989cb61294d712',
  'hex',
);
const B = Buffer.from('3a02000102030405060761373063343132623930356131313861e17b0e90783d7632c1f314e047bdfc76', 'hex');
const C = Buffer.from(
  '383662663032336235343866303063653ab44bfd2691afb27ca21210930f65205bfc471ca3cf572b93d17a973bd9b010',
  'hex',
);

function code(expected: ErrorCode, errno?: string) {
  return (e: unknown): boolean => {
    assert.ok(isAgentError(e), `expected AgentError, got ${String(e)}`);
    assert.equal(e.code, expected);
    if (errno !== undefined) assert.equal(e.errno, errno);
    return true;
  };
}

test('vector A (made by ecryptfs-wrap-passphrase) unwraps and re-wraps byte-identically', () => {
  assert.equal(unwrapPassphrase(A, Buffer.from('hunter2')).toString(), 'mountpass0123456789abcdef');
  const again = wrapPassphrase(Buffer.from('mountpass0123456789abcdef'), Buffer.from('hunter2'), Buffer.from('072c8d614eb2a49c', 'hex'));
  assert.deepEqual(again, A);
  const parsed = parseWrapped(A);
  assert.equal(parsed.version, 2);
  assert.equal(parsed.sig, '77bb5b498849e7a1');
  assert.equal(parsed.ciphertext.length, 32);
});

test('vector B: 16-byte passphrase, no extra padding block', () => {
  assert.deepEqual(wrapPassphrase(Buffer.from('0123456789abcdef'), Buffer.from('pw'), Buffer.from('0001020304050607', 'hex')), B);
  assert.equal(unwrapPassphrase(B, Buffer.from('pw')).toString(), '0123456789abcdef');
});

test('vector C: v1 legacy file with the default salt', () => {
  const parsed = parseWrapped(C);
  assert.equal(parsed.version, 1);
  assert.equal(parsed.salt, undefined);
  assert.equal(parsed.sig, '86bf023b548f00ce');
  assert.equal(unwrapPassphrase(C, Buffer.from('pw1')).toString(), 'v1secretpassphrase');
  assert.deepEqual(wrapPassphraseV1(Buffer.from('v1secretpassphrase'), Buffer.from('pw1'), DEFAULT_SALT), C);
  // v1 with another salt: the sig no longer matches
  assert.throws(() => unwrapPassphrase(C, Buffer.from('pw1'), Buffer.alloc(8)), code('WRONG_PASSWORD', 'EIO'));
});

test('file sizes follow the zero padding: 1..64 bytes → 42/58/74/90', () => {
  const salt = Buffer.alloc(8, 7);
  for (const [len, size] of [[1, 42], [16, 42], [17, 58], [33, 74], [64, 90]] as const) {
    const file = wrapPassphrase(Buffer.alloc(len, 'p'), Buffer.from('w'), salt);
    assert.equal(file.length, size, `passphrase of ${len}`);
    assert.equal(unwrapPassphrase(file, Buffer.from('w')).length, len);
  }
});

test('round trip with non-ASCII UTF-8 and a random salt', () => {
  const pass = Buffer.from('pässwörd ✓ 秘密');
  const wrapping = Buffer.from('wräpping');
  const file = wrapPassphrase(pass, wrapping);
  assert.deepEqual(unwrapPassphrase(file, wrapping), pass);
  assert.notDeepEqual(wrapPassphrase(pass, wrapping).subarray(2, 10), file.subarray(2, 10), 'fresh random salt each time');
});

test('wrong wrapping passphrase → WRONG_PASSWORD (-EIO)', () => {
  assert.throws(() => unwrapPassphrase(A, Buffer.from('hunter3')), code('WRONG_PASSWORD', 'EIO'));
});

test('bad files → exact typed errors with ecryptfs-utils errno', () => {
  assert.throws(() => parseWrapped(Buffer.alloc(0)), code('CORRUPT_FILE', 'EINVAL'));
  assert.throws(() => parseWrapped(A.subarray(0, 15)), code('CORRUPT_FILE', 'EINVAL'));
  assert.throws(() => parseWrapped(A.subarray(0, 20)), code('CORRUPT_FILE', 'EINVAL')); // truncated header
  assert.throws(() => parseWrapped(A.subarray(0, 26)), code('CORRUPT_FILE', 'EINVAL')); // no ciphertext
  assert.throws(() => parseWrapped(A.subarray(0, 30)), code('CORRUPT_FILE', 'EIO')); // not whole AES blocks
  assert.throws(() => parseWrapped(Buffer.from('zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz')), code('CORRUPT_FILE', 'EINVAL'));
  const v3 = Buffer.from(A);
  v3[1] = 3;
  assert.throws(() => parseWrapped(v3), code('UNSUPPORTED_VERSION', 'EOPNOTSUPP'));
  const v1NonHex = Buffer.from(C);
  v1NonHex[5] = 0x67; // 'g'
  assert.throws(() => parseWrapped(v1NonHex), code('CORRUPT_FILE', 'EINVAL'));
  const badSig = Buffer.from(A);
  badSig[12] = 0x7a; // 'z' inside the v2 sig: ecryptfs-utils says -EIO (memcmp mismatch)
  assert.throws(() => parseWrapped(badSig), code('CORRUPT_FILE', 'EIO'));
});

test('one flipped bit anywhere never yields the original passphrase silently', () => {
  const pw = Buffer.from('hunter2');
  const original = 'mountpass0123456789abcdef';
  // Header/salt/sig bytes: typed error. Ciphertext bytes: no MAC in the format, so garbage comes
  // back (like ecryptfs-utils) — but never the original passphrase.
  for (const i of [0, 1, 2, 9, 10, 25, 26, 40, 57]) {
    const bad = Buffer.from(A);
    bad[i] = (bad[i] as number) ^ 0x01;
    let out: string | undefined;
    try {
      out = unwrapPassphrase(bad, pw).toString('latin1');
    } catch (e) {
      assert.ok(isAgentError(e), `byte ${i}: ${String(e)}`);
      assert.ok(['WRONG_PASSWORD', 'CORRUPT_FILE', 'UNSUPPORTED_VERSION'].includes(e.code), `byte ${i}: ${e.code}`);
      continue;
    }
    assert.ok(i >= 26, `byte ${i} in the header must not be accepted`);
    assert.notEqual(out, original);
  }
});

test('ciphertext beyond 64 bytes is ignored, as ecryptfs-utils reads at most 64', () => {
  const padded = Buffer.concat([A, Buffer.alloc(64)]);
  assert.equal(unwrapPassphrase(padded, Buffer.from('hunter2')).toString(), 'mountpass0123456789abcdef');
  // Without NUL padding in the real blocks the extra blocks decrypt to garbage that is kept:
  // ecryptfs-unwrap-passphrase prints exactly these 64 bytes for the same file.
  const unpadded = unwrapPassphrase(Buffer.concat([B, Buffer.alloc(64)]), Buffer.from('pw'));
  assert.equal(unpadded.length, 64);
  assert.equal(unpadded.subarray(0, 16).toString(), '0123456789abcdef');
  assert.equal(unpadded.subarray(16, 32).toString('hex'), '38f73d6177a8935e639ce1cc76f15acb');
});

test('a passphrase that decrypts to nothing is an error, not an empty key', () => {
  // wrapPassphrase cannot produce it, so craft the ciphertext of 16 NUL bytes under the file's key.
  const salt = Buffer.alloc(8, 1);
  const file = wrapPassphrase(Buffer.from('a'), Buffer.from('w'), salt);
  const key16 = deriveKey(Buffer.from('w'), salt).key.subarray(0, 16);
  const c = createCipheriv('aes-128-ecb', key16, null);
  c.setAutoPadding(false);
  const zeros = Buffer.concat([c.update(Buffer.alloc(16)), c.final()]);
  zeros.copy(file, 26);
  assert.throws(() => unwrapPassphrase(file, Buffer.from('w')), code('CORRUPT_FILE'));
});

test('passphrase validation on wrap and unwrap', () => {
  assert.throws(() => wrapPassphrase(Buffer.alloc(0), Buffer.from('w')), code('PASSPHRASE_EMPTY', 'EIO'));
  assert.throws(() => wrapPassphrase(Buffer.alloc(65, 'a'), Buffer.from('w')), code('PASSPHRASE_TOO_LONG', 'EIO'));
  assert.throws(() => wrapPassphrase(Buffer.from('a\0b'), Buffer.from('w')), code('PASSPHRASE_NUL'));
  assert.throws(() => wrapPassphrase(Buffer.from('p'), Buffer.alloc(0)), code('PASSPHRASE_EMPTY', 'EINVAL'));
  assert.throws(() => wrapPassphrase(Buffer.from('p'), Buffer.alloc(65, 'w')), code('PASSPHRASE_TOO_LONG', 'EINVAL'));
  assert.throws(() => wrapPassphrase(Buffer.from('p'), Buffer.from('w\0')), code('PASSPHRASE_NUL'));
  assert.throws(() => unwrapPassphrase(A, Buffer.alloc(0)), code('PASSPHRASE_EMPTY', 'EINVAL'));
  assert.throws(() => unwrapPassphrase(A, Buffer.alloc(65, 'w')), code('PASSPHRASE_TOO_LONG'));
  assert.throws(() => wrapPassphrase(Buffer.from('p'), Buffer.from('w'), Buffer.alloc(4)), RangeError);
});
