import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUTH_TOK_SIZE, buildPasswordAuthTok, deriveMountKeys, parseAuthTok } from '../../src/formats/auth-tok';
import { DEFAULT_SALT, FNEK_SALT } from '../../src/formats/kdf';
import { isAgentError } from '../../src/errors';

const KEY = 'e4e6eac3631766d57505c42104d8544b0c852b1a9f93ff257ee2377b11ca3865063ee6edd99c9a5eab2632fbbb51ca262bad6e5d5782f2315ed96dfcafdd56d1';

/** The payload of `keyctl pipe` for testpass (notes §2.4), built from its non-zero bytes. */
function expectedPayload(key: string, sig: string, salt: Buffer): Buffer {
  const p = Buffer.alloc(740);
  p[0] = 0x04;
  p[0x278] = 0x0a; // hash_algo @632
  p[0x280] = 0x40; // key bytes @640
  p[0x284] = 0x02; // flags @644
  Buffer.from(key, 'hex').copy(p, 0x288);
  p.write(sig, 0x2c8, 'latin1');
  salt.copy(p, 0x2d9);
  return p;
}

test('main payload for testpass is byte-identical to the keyctl dump', () => {
  const { sig, payload } = buildPasswordAuthTok(Buffer.from('testpass'), DEFAULT_SALT);
  assert.equal(sig, '2eb5a49ebe845786');
  assert.equal(payload.length, AUTH_TOK_SIZE);
  assert.deepEqual(payload, expectedPayload(KEY, sig, DEFAULT_SALT));
  assert.equal(payload.subarray(0x2d0, 0x2e4).toString('hex'), '62653834353738360000112233445566' + '77000000');
});

test('FNEK payload tail matches the keyctl dump', () => {
  const { sig, payload } = buildPasswordAuthTok(Buffer.from('testpass'), FNEK_SALT);
  assert.equal(sig, '054ad0eaff33ed88');
  assert.equal(payload.subarray(0x2c0, 0x2e4).toString('hex'), '6bd4a684ce8a977930353461643065616666333365643838003939383837373636000000');
});

test('deriveMountKeys: FEK with the given salt, FNEK only when asked', () => {
  const both = deriveMountKeys(Buffer.from('testpass'), DEFAULT_SALT, true);
  assert.equal(both.fek.sig, '2eb5a49ebe845786');
  assert.equal(both.fnek?.sig, '054ad0eaff33ed88');
  const one = deriveMountKeys(Buffer.from('testpass'), undefined, false);
  assert.equal(one.fek.sig, '2eb5a49ebe845786');
  assert.equal(one.fnek, undefined);
});

test('parseAuthTok recognises our tokens and never returns the key', () => {
  const { payload } = buildPasswordAuthTok(Buffer.from('testpass'), FNEK_SALT);
  const parsed = parseAuthTok(payload);
  assert.deepEqual({ ...parsed, salt: parsed.salt.toString('hex') }, {
    version: 4, tokenType: 0, sig: '054ad0eaff33ed88', salt: '3939383837373636', keyBytes: 64,
  });
  assert.equal(Object.values(parsed).some((v) => Buffer.isBuffer(v) && v.length === 64), false);
});

test('parseAuthTok rejects other payloads with CORRUPT_FILE', () => {
  const good = buildPasswordAuthTok(Buffer.from('x'), DEFAULT_SALT).payload;
  const bad = (mutate: (b: Buffer) => Buffer): void => {
    assert.throws(() => parseAuthTok(mutate(Buffer.from(good))), (e) => isAgentError(e, 'CORRUPT_FILE'));
  };
  bad((b) => b.subarray(0, 739));
  bad((b) => Buffer.concat([b, Buffer.alloc(1)]));
  bad((b) => { b[0] = 3; return b; });
  bad((b) => { b[2] = 1; return b; }); // private-key token
  bad((b) => { b.writeInt32LE(0, 640); return b; });
  bad((b) => { b[728] = 0x41; return b; }); // sig not NUL-terminated
  bad((b) => { b[712] = 0x47; return b; }); // 'G' not hex
  bad(() => Buffer.alloc(0));
});
