/**
 * src/formats/lower-format.ts against lower files the Debian 6.1 kernel wrote (test/fixtures/recovery:
 * made in the VM with `ecryptfs-add-passphrase [--fnek]` + `mount -t ecryptfs`, one FNEK and one
 * plain directory holding hello.txt and sub/random.bin).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { deriveMountKeys } from '../../src/formats/auth-tok';
import { DEFAULT_SALT } from '../../src/formats/kdf';
import { decodeLowerName, FNEK_NAME_PREFIX, fnekSigOfLowerName, MAGIC_ECRYPTFS_MARKER, parseLowerFileHeader } from '../../src/formats/lower-format';

interface Fixture {
  name: string;
  mountPassphrase: string;
  fekSig: string;
  fnekSig?: string;
  entries: Array<{ path: string; type: 'dir' | 'file'; size?: number; gzipBase64?: string }>;
}

const FIXTURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'recovery');
const load = (name: string): Fixture => JSON.parse(readFileSync(join(FIXTURES, `lower-${name}.json`), 'utf8')) as Fixture;
const fnek = load('fnek');
const plain = load('plain');
const bytes = (e: Fixture['entries'][number]): Buffer => gunzipSync(Buffer.from(e.gzipBase64 as string, 'base64'));
const files = (f: Fixture) => f.entries.filter((e) => e.type === 'file');
const baseName = (p: string): string => p.split('/').pop() as string;

test('fixtures: our KDF gives the sigs the kernel wrote into them (mount passphrase → FEK and FNEK sigs)', () => {
  const keys = deriveMountKeys(Buffer.from(fnek.mountPassphrase), DEFAULT_SALT, true);
  assert.equal(keys.fek.sig, fnek.fekSig);
  assert.equal(keys.fnek?.sig, fnek.fnekSig);
  assert.equal(plain.fekSig, fnek.fekSig, 'same passphrase, same file key');
  assert.equal(plain.fnekSig, undefined);
});

test('header: every real lower file names the file key sig, AES-128, its plaintext size', () => {
  for (const f of [fnek, plain]) {
    const sizes: bigint[] = [];
    for (const e of files(f)) {
      const full = bytes(e);
      assert.equal(full.length, e.size);
      const h = parseLowerFileHeader(full.subarray(0, 4096));
      assert.ok(h, `${f.name} ${e.path}`);
      assert.deepEqual(h.keySigs, [f.fekSig]);
      assert.equal(h.fileVersion, 3);
      assert.equal(h.aesKeyBytes, 16);
      sizes.push(h.plaintextSize);
    }
    assert.deepEqual(sizes.sort(), [15n, 5000n], 'hello.txt is 15 bytes, sub/random.bin 5000');
  }
});

test('header: not eCryptfs or damaged → null (short, no marker, broken Tag 11, packet past the end)', () => {
  const real = bytes(files(fnek)[0] as Fixture['entries'][number]).subarray(0, 4096);
  assert.equal(parseLowerFileHeader(real.subarray(0, 26)), null);
  assert.equal(parseLowerFileHeader(Buffer.alloc(4096)), null, 'zeros: no marker');
  const noMarker = Buffer.from(real);
  noMarker[12] = (noMarker[12] as number) ^ 1;
  assert.equal(parseLowerFileHeader(noMarker), null);
  const tag11At = real.indexOf(Buffer.from('_CONSOLE')) - 4; // 0xED, len, 0x62, 0x08
  assert.equal(real[tag11At], 0xed);
  const badTag11 = Buffer.from(real);
  badTag11[tag11At + 2] = 0x63;
  assert.equal(parseLowerFileHeader(badTag11), null);
  assert.equal(parseLowerFileHeader(real.subarray(0, tag11At + 10)), null, 'truncated inside the Tag 11 packet');
  const plainText = Buffer.from('#!/bin/sh\necho this is a plain file, not eCryptfs\n'.padEnd(200, ' '));
  assert.equal(parseLowerFileHeader(plainText), null);
});

test('header: two-byte packet lengths (>= 192) and a second key are read like ecryptfs_parse_packet_length', () => {
  const h = Buffer.alloc(4096);
  h.writeBigUInt64BE(1234n, 0);
  h.writeUInt32BE(0x11223344, 8);
  h.writeUInt32BE((0x11223344 ^ MAGIC_ECRYPTFS_MARKER) >>> 0, 12);
  h.writeUInt32BE(0x03000002, 16);
  h.writeUInt32BE(8192, 20);
  h.writeUInt16BE(1, 24);
  let off = 26;
  const tag3 = (bodySize: number, cipher: number): void => {
    h[off++] = 0x8c;
    if (bodySize < 192) h[off++] = bodySize;
    else {
      h[off++] = Math.floor((bodySize - 192) / 256) + 192;
      h[off++] = (bodySize - 192) % 256;
    }
    h[off] = 0x04;
    h[off + 1] = cipher;
    h[off + 2] = 0x03; // S2K salted+iterated, hash MD5: the only kind parse_tag_3_packet takes
    h[off + 3] = 0x01;
    off += bodySize;
  };
  const tag11 = (sig: string): void => {
    Buffer.concat([Buffer.from([0xed, 22, 0x62, 0x08]), Buffer.from('_CONSOLE'), Buffer.alloc(4), Buffer.from(sig, 'hex')]).copy(h, off);
    off += 24; // tag, length, 22-byte body
  };
  tag3(200, 0x09); // 2-byte length: c0 08 → (0)*256 + 8 + 192 = 200
  tag11('0011223344556677');
  tag3(29, 0x07);
  tag11('8899aabbccddeeff');
  const parsed = parseLowerFileHeader(h);
  assert.deepEqual(parsed?.keySigs, ['0011223344556677', '8899aabbccddeeff']);
  assert.equal(parsed?.aesKeyBytes, 32, 'the first key packet decides (AES-256 code 0x09)');
  assert.equal(parsed?.plaintextSize, 1234n);
});

test('names: the kernel alphabet decodes to a Tag 70 packet holding the FNEK sig; other names are not', () => {
  // "FWZI" = 17,34,37,20 → 010001 100010 100101 010100 → 46 29 54
  assert.deepEqual(decodeLowerName('FWZI'), Buffer.from([0x46, 0x29, 0x54]));
  assert.deepEqual(decodeLowerName('-.z'), Buffer.from([0x00, 0x1f]), '"-" is 0, "." is 1, "z" is 63: 000000 000001 111111');
  assert.equal(decodeLowerName('ab+c'), null);
  const names = fnek.entries.map((e) => baseName(e.path));
  assert.equal(names.length, 3);
  for (const n of names) {
    assert.ok(n.startsWith(FNEK_NAME_PREFIX));
    assert.equal(fnekSigOfLowerName(n), fnek.fnekSig, n);
  }
  for (const e of plain.entries) assert.equal(fnekSigOfLowerName(baseName(e.path)), null, e.path);
  assert.equal(fnekSigOfLowerName(`${FNEK_NAME_PREFIX}short`), null);
  assert.equal(fnekSigOfLowerName(`${FNEK_NAME_PREFIX}${'!'.repeat(40)}`), null);
  assert.equal(fnekSigOfLowerName(`${FNEK_NAME_PREFIX}${'-'.repeat(40)}`), null, 'decodes, but no Tag 70');
});
