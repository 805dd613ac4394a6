import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  DEFAULT_SALT, FNEK_SALT, KDF_ROUNDS, deriveKey, getKdfImplementation, setKdfImplementation, sha512IterateJs, sigOfKey,
} from '../../src/formats/kdf';
import { isAgentError } from '../../src/errors';

const TESTPASS_KEY =
  'e4e6eac3631766d57505c42104d8544b0c852b1a9f93ff257ee2377b11ca3865063ee6edd99c9a5eab2632fbbb51ca262bad6e5d5782f2315ed96dfcafdd56d1';

test('constants match ecryptfs-utils', () => {
  assert.equal(DEFAULT_SALT.toString('hex'), '0011223344556677');
  assert.equal(FNEK_SALT.toString('hex'), '3939383837373636');
  assert.equal(KDF_ROUNDS, 65536);
});

test('testpass with the default salt gives the keyring vector (notes §2.4)', () => {
  const { key, sig } = deriveKey(Buffer.from('testpass'), DEFAULT_SALT);
  assert.equal(sig, '2eb5a49ebe845786');
  assert.equal(key.toString('hex'), TESTPASS_KEY);
});

test('testpass with the FNEK salt gives the FNEK sig', () => {
  assert.equal(deriveKey(Buffer.from('testpass'), FNEK_SALT).sig, '054ad0eaff33ed88');
});

test('JS iteration equals a plain createHash loop (small round count)', () => {
  const input = Buffer.from('abc');
  let d = createHash('sha512').update(input).digest();
  for (let i = 1; i < 5; i++) d = createHash('sha512').update(d).digest();
  assert.deepEqual(sha512IterateJs(input, 5), d);
  assert.equal(input.toString(), 'abc', 'input must not be modified');
});

test('a plugged-in implementation is used, and undefined restores the reference', () => {
  const calls: number[] = [];
  setKdfImplementation((first, rounds) => {
    calls.push(rounds);
    return sha512IterateJs(first, rounds);
  });
  try {
    assert.equal(deriveKey(Buffer.from('testpass'), DEFAULT_SALT).sig, '2eb5a49ebe845786');
    assert.deepEqual(calls, [65536]);
  } finally {
    setKdfImplementation(undefined);
  }
  assert.equal(getKdfImplementation(), sha512IterateJs);
});

test('an implementation returning the wrong size is a NATIVE error', () => {
  setKdfImplementation(() => Buffer.alloc(32));
  try {
    assert.throws(() => deriveKey(Buffer.from('x'), DEFAULT_SALT), (e) => isAgentError(e, 'NATIVE'));
  } finally {
    setKdfImplementation(undefined);
  }
});

test('sigOfKey is the first 8 bytes of SHA-512(key), lowercase hex', () => {
  const key = Buffer.from(TESTPASS_KEY, 'hex');
  assert.equal(sigOfKey(key), '2eb5a49ebe845786');
});

test('passphrase length and NUL rules', () => {
  assert.throws(() => deriveKey(Buffer.alloc(0), DEFAULT_SALT), (e) => isAgentError(e, 'PASSPHRASE_EMPTY'));
  assert.throws(() => deriveKey(Buffer.alloc(65, 'a'), DEFAULT_SALT), (e) => isAgentError(e, 'PASSPHRASE_TOO_LONG'));
  assert.throws(() => deriveKey(Buffer.from('a\0b'), DEFAULT_SALT), (e) => isAgentError(e, 'PASSPHRASE_NUL'));
  assert.throws(() => deriveKey(Buffer.from('a'), Buffer.alloc(7)), RangeError);
  assert.equal(deriveKey(Buffer.alloc(64, 'a'), DEFAULT_SALT).sig.length, 16);
});
