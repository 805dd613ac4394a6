/**
 * Test-only: writes lower files and names the way the kernel's write path does (crypto.c
 * ecryptfs_write_headers_virt / ecryptfs_encrypt_page, keystore.c write_tag_3_packet /
 * write_tag_11_packet / ecryptfs_write_tag_70_packet, crypto.c ecryptfs_encode_for_filename),
 * for the ciphers the kernel fixtures do not cover. The kernel-written fixtures and the VM test
 * are what prove the reader; this proves it is consistent for every cipher code and key size.
 */
import * as crypto from 'node:crypto';
import { MAGIC_ECRYPTFS_MARKER } from '../../src/formats/lower-format';
import { extentIv } from '../../src/formats/ecryptfs-file';

export interface WriterCipher {
  code: number;
  keyBytes: number;
  block: number;
  ecb: string;
  cbc: string;
}

/** Every cipher code and key size mount.ecryptfs offers that OpenSSL has. */
export const WRITER_CIPHERS: readonly WriterCipher[] = [
  { code: 0x07, keyBytes: 16, block: 16, ecb: 'aes-128-ecb', cbc: 'aes-128-cbc' },
  { code: 0x08, keyBytes: 24, block: 16, ecb: 'aes-192-ecb', cbc: 'aes-192-cbc' },
  { code: 0x09, keyBytes: 32, block: 16, ecb: 'aes-256-ecb', cbc: 'aes-256-cbc' },
  { code: 0x02, keyBytes: 24, block: 8, ecb: 'des-ede3', cbc: 'des-ede3-cbc' },
  { code: 0x04, keyBytes: 16, block: 8, ecb: 'bf-ecb', cbc: 'bf-cbc' },
  { code: 0x04, keyBytes: 32, block: 8, ecb: 'bf-ecb', cbc: 'bf-cbc' },
  { code: 0x04, keyBytes: 56, block: 8, ecb: 'bf-ecb', cbc: 'bf-cbc' },
  { code: 0x03, keyBytes: 16, block: 8, ecb: 'cast5-ecb', cbc: 'cast5-cbc' },
];

function crypt(algo: string, key: Buffer, iv: Buffer | null, data: Buffer): Buffer {
  const c = crypto.createCipheriv(algo, key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

function packetLength(n: number): Buffer {
  return n < 192 ? Buffer.from([n]) : Buffer.from([Math.floor((n - 192) / 256) + 192, (n - 192) % 256]);
}

/** A whole lower file: 8192-byte header (or, with inXattr, the header alone for user.ecryptfs) and the extents. */
export function writeLowerFile(plain: Buffer, c: WriterCipher, sek: Buffer, sig: string, opts: { fek?: Buffer; inXattr?: boolean } = {}): { lower: Buffer; header: Buffer } {
  const fek = opts.fek ?? crypto.randomBytes(c.keyBytes);
  const toWrap = c.code === 0x08 ? Buffer.concat([fek, Buffer.alloc(8)]) : fek; // AES-192: 32 bytes
  const encKey = crypt(c.ecb, sek.subarray(0, c.keyBytes), null, toWrap);
  const tag3Body = Buffer.concat([Buffer.from([0x04, c.code, 0x03, 0x01]), crypto.randomBytes(8), Buffer.from([0x60]), encKey]);
  const tag3 = Buffer.concat([Buffer.from([0x8c]), packetLength(tag3Body.length), tag3Body]);
  const tag11Body = Buffer.concat([Buffer.from([0x62, 0x08]), Buffer.from('_CONSOLE'), Buffer.alloc(4), Buffer.from(sig, 'hex')]);
  const tag11 = Buffer.concat([Buffer.from([0xed]), packetLength(tag11Body.length), tag11Body]);
  const fixed = Buffer.alloc(26);
  fixed.writeBigUInt64BE(BigInt(plain.length), 0);
  const m1 = crypto.randomBytes(4).readUInt32BE(0);
  fixed.writeUInt32BE(m1, 8);
  fixed.writeUInt32BE((m1 ^ MAGIC_ECRYPTFS_MARKER) >>> 0, 12);
  fixed.writeUInt32BE((3 << 24) | 0x2 | (opts.inXattr ? 0x4 : 0), 16);
  fixed.writeUInt32BE(4096, 20);
  fixed.writeUInt16BE(2, 24);
  const headerBytes = Buffer.concat([fixed, tag3, tag11, Buffer.alloc(1)]);
  const rootIv = crypto.createHash('md5').update(fek).digest();
  const extents: Buffer[] = [];
  for (let i = 0; i * 4096 < plain.length; i++) {
    const page = Buffer.alloc(4096);
    plain.copy(page, 0, i * 4096, Math.min(plain.length, (i + 1) * 4096));
    extents.push(crypt(c.cbc, fek, extentIv(rootIv, i).subarray(0, c.block), page));
  }
  const header = Buffer.alloc(8192);
  headerBytes.copy(header);
  return { lower: Buffer.concat(opts.inXattr ? extents : [header, ...extents]), header: headerBytes };
}

const ALPHABET = '-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** ecryptfs_encode_for_filename: 3 bytes → 4 characters, the last block zero-padded. */
export function encodeForFilename(src: Buffer): string {
  let out = '';
  for (let i = 0; i < src.length; i += 3) {
    const b = [src[i] ?? 0, src[i + 1] ?? 0, src[i + 2] ?? 0] as [number, number, number];
    out += ALPHABET[b[0] >> 2]! + ALPHABET[((b[0] << 4) & 0x30) | (b[1] >> 4)]! + ALPHABET[((b[1] << 2) & 0x3c) | (b[2] >> 6)]! + ALPHABET[b[2] & 0x3f]!;
  }
  return out;
}

/** ecryptfs_write_tag_70_packet + the prefix: the lower name of `name`. */
export function writeLowerName(name: Buffer, c: WriterCipher, fnekSek: Buffer, fnekSig: string): string {
  let numRand = 17;
  if ((numRand + name.length) % c.block !== 0) numRand += c.block - ((numRand + name.length) % c.block);
  const aligned = Buffer.alloc(numRand + name.length);
  let hash = crypto.createHash('md5').update(fnekSek).digest();
  for (let j = 0; j < numRand - 1; j++) {
    aligned[j] = hash[j % 16] as number;
    if (j % 16 === 15) hash = crypto.createHash('md5').update(hash).digest();
    if (aligned[j] === 0) aligned[j] = 0x42;
  }
  name.copy(aligned, numRand);
  const enc = crypt(c.ecb, fnekSek.subarray(0, c.keyBytes), null, aligned);
  const packet = Buffer.concat([Buffer.from([0x46]), packetLength(8 + 1 + enc.length), Buffer.from(fnekSig, 'hex'), Buffer.from([c.code]), enc]);
  return `ECRYPTFS_FNEK_ENCRYPTED.${encodeForFilename(packet)}`;
}
