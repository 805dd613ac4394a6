/**
 * Decrypting eCryptfs file contents without the kernel module. The header is parsed by
 * lower-format.ts (parseEcryptfsHeader); this is what the kernel then does with it:
 *  - keystore.c decrypt_passphrase_encrypted_session_key: the file key (FEK) is the tag 3
 *    encrypted key decrypted in ECB mode of the file's cipher, keyed with the first key_size bytes
 *    of the auth tok's session key encryption key (the 64-byte iterated SHA-512 of the mount
 *    passphrase). key_size is the encrypted key's length, except AES-192: 24, its 32-byte
 *    encrypted key is the FEK and 8 zero bytes (write_tag_3_packet).
 *  - crypto.c ecryptfs_compute_root_iv: root IV = MD5(FEK); iv_bytes is always 16
 *    (ECRYPTFS_DEFAULT_IV_BYTES), whatever the cipher's block size.
 *  - crypto.c ecryptfs_derive_iv: the IV of extent N = MD5(root IV || "%lld" of N, NUL-padded to
 *    16 bytes), of which CBC uses the first block-size bytes.
 *  - each 4096-byte extent N is CBC-encrypted on its own at metadata size + N * 4096 of the lower
 *    file; the plaintext size is the header's first 8 bytes (the last extent is whole, zero-padded
 *    plaintext). Pure functions over node:crypto, no I/O.
 */
import * as crypto from 'node:crypto';
import { AgentError } from '../errors';
import { allocSecret } from './secret-memory';
import { DATA_EXTENT_BYTES, type PassphraseKeyPacket } from './lower-format';

export type CipherName = 'aes' | 'blowfish' | 'des3_ede' | 'cast5' | 'twofish' | 'cast6';

export interface FileCipher {
  name: CipherName;
  blockBytes: number;
  /** OpenSSL's name of the cipher in `mode` for a key of `keyBytes`, or null when OpenSSL has none */
  openssl(mode: 'ecb' | 'cbc', keyBytes: number): string | null;
}

const RFC2440_AES_192 = 0x08;

/** crypto.c ecryptfs_cipher_code_str_map, with what OpenSSL calls each (twofish and cast6: nothing). */
const CIPHER_BY_CODE: ReadonlyMap<number, FileCipher> = new Map<number, FileCipher>([
  [0x07, { name: 'aes', blockBytes: 16, openssl: (m, k) => `aes-${k * 8}-${m}` }],
  [RFC2440_AES_192, { name: 'aes', blockBytes: 16, openssl: (m, k) => `aes-${k * 8}-${m}` }],
  [0x09, { name: 'aes', blockBytes: 16, openssl: (m, k) => `aes-${k * 8}-${m}` }],
  [0x04, { name: 'blowfish', blockBytes: 8, openssl: (m) => `bf-${m}` }],
  [0x02, { name: 'des3_ede', blockBytes: 8, openssl: (m) => (m === 'ecb' ? 'des-ede3' : 'des-ede3-cbc') }],
  [0x03, { name: 'cast5', blockBytes: 8, openssl: (m) => `cast5-${m}` }],
  [0x0a, { name: 'twofish', blockBytes: 16, openssl: () => null }],
  [0x0b, { name: 'cast6', blockBytes: 16, openssl: () => null }],
]);

/** AES key size named by the code itself (RFC 2440 AES-128/192/256), else undefined. */
export function aesKeyBytesOfCode(code: number): number | undefined {
  return code === 0x07 ? 16 : code === RFC2440_AES_192 ? 24 : code === 0x09 ? 32 : undefined;
}

export function cipherOfCode(code: number): FileCipher {
  const c = CIPHER_BY_CODE.get(code);
  if (c === undefined) throw new AgentError('CORRUPT_FILE', `unknown cipher code 0x${code.toString(16).padStart(2, '0')} in an eCryptfs header or name`);
  return c;
}

/** Legacy-provider ciphers (blowfish, cast5) need OpenSSL's legacy provider, which export loads (os/ciphers enableOpensslLegacyCiphers). */
function unsupported(c: FileCipher, keyBytes: number, why: string): AgentError {
  return new AgentError('CIPHER_UNAVAILABLE', `cannot decrypt ${c.name} (${keyBytes}-byte key) here: ${why}`, {
    hint:
      c.openssl('cbc', keyBytes) === null
        ? `${c.name} is not in OpenSSL and not implemented yet: mount the directory with the kernel module and copy the files out (ecryptfs-agent recover)`
        : `OpenSSL's legacy provider has ${c.name}: ecryptfs-agent export loads it when OpenSSL has it (the legacy module of libssl3)`,
  });
}

/** A Node decipher without padding; typed error when this OpenSSL cannot do it. */
function decipher(c: FileCipher, mode: 'ecb' | 'cbc', key: Buffer, iv: Buffer | null): crypto.Decipher {
  const name = c.openssl(mode, key.length);
  if (name === null) throw unsupported(c, key.length, 'OpenSSL has no such cipher');
  let d: crypto.Decipher;
  try {
    d = crypto.createDecipheriv(name, key, iv);
  } catch (e) {
    const msg = (e as Error).message;
    if (/unsupported|unknown cipher|invalid key length/i.test(msg)) throw unsupported(c, key.length, `OpenSSL says "${msg}"`);
    throw e;
  }
  d.setAutoPadding(false);
  return d;
}

function ecbDecrypt(c: FileCipher, key: Buffer, data: Buffer): Buffer {
  if (data.length % c.blockBytes !== 0) throw new AgentError('CORRUPT_FILE', `encrypted key of ${data.length} bytes is not whole ${c.name} blocks`);
  const d = decipher(c, 'ecb', key, null);
  const out = allocSecret(data.length);
  const a = d.update(data);
  const b = d.final();
  a.copy(out, 0);
  b.copy(out, a.length);
  a.fill(0);
  return out;
}

/** The file's cipher and key, ready to decrypt its extents. */
export interface FileKey {
  cipher: FileCipher;
  /** the FEK (secret memory; zero it when done) */
  key: Buffer;
  rootIv: Buffer;
}

/**
 * Unwraps the FEK of a tag 3 packet with the session key encryption key of its auth tok (the
 * 64-byte key deriveKey makes from the mount passphrase and salt). The caller keeps `sek`.
 */
export function unwrapFileKey(packet: PassphraseKeyPacket, sek: Buffer): FileKey {
  const cipher = cipherOfCode(packet.cipherCode);
  const keyBytes = packet.cipherCode === RFC2440_AES_192 ? 24 : packet.encryptedKey.length;
  if (keyBytes === 0 || keyBytes > sek.length || keyBytes > packet.encryptedKey.length) {
    throw new AgentError('CORRUPT_FILE', `tag 3 packet with a ${packet.encryptedKey.length}-byte key for ${cipher.name}`);
  }
  const sekPart = allocSecret(keyBytes);
  sek.copy(sekPart, 0, 0, keyBytes);
  let plain: Buffer;
  try {
    plain = ecbDecrypt(cipher, sekPart, packet.encryptedKey);
  } finally {
    sekPart.fill(0);
  }
  const key = allocSecret(keyBytes);
  plain.copy(key, 0, 0, keyBytes);
  plain.fill(0);
  return { cipher, key, rootIv: crypto.createHash('md5').update(key).digest() };
}

/** ecryptfs_derive_iv: MD5(root IV (16) || decimal extent number, NUL-padded to 16 bytes). */
export function extentIv(rootIv: Buffer, extent: number): Buffer {
  const src = Buffer.alloc(32);
  rootIv.copy(src, 0, 0, 16);
  src.write(String(extent).slice(0, 15), 16, 'latin1'); // snprintf(.., 16, "%lld"): 15 digits at most
  return crypto.createHash('md5').update(src).digest();
}

/** Plaintext of data extent `extent` (DATA_EXTENT_BYTES of ciphertext). */
export function decryptExtent(fk: FileKey, extent: number, ciphertext: Buffer): Buffer {
  return decryptExtents(fk, extent, ciphertext);
}

/**
 * Plaintext of consecutive extents `first`, `first + 1`, … (whole extents of ciphertext). CBC is
 * done as one ECB pass over all of them, then each block XORed with the ciphertext block before
 * it, or with its extent's IV for an extent's first block: one OpenSSL call per batch instead of
 * one cipher context per extent (same result as CBC per extent, which the tests check).
 */
export function decryptExtents(fk: FileKey, first: number, ciphertext: Buffer): Buffer {
  if (ciphertext.length === 0 || ciphertext.length % DATA_EXTENT_BYTES !== 0) {
    throw new AgentError('CORRUPT_FILE', `extent ${first}: ${ciphertext.length} bytes are not whole extents of ${DATA_EXTENT_BYTES}`);
  }
  const d = decipher(fk.cipher, 'ecb', fk.key, null);
  const out = Buffer.concat([d.update(ciphertext), d.final()]);
  const b = fk.cipher.blockBytes;
  // 32-bit words when both buffers allow it (block sizes are multiples of 4), else bytes
  const words = out.byteOffset % 4 === 0 && ciphertext.byteOffset % 4 === 0;
  const o32 = words ? new Uint32Array(out.buffer, out.byteOffset, out.length / 4) : null;
  const c32 = words ? new Uint32Array(ciphertext.buffer, ciphertext.byteOffset, ciphertext.length / 4) : null;
  for (let e = 0; e * DATA_EXTENT_BYTES < out.length; e++) {
    const base = e * DATA_EXTENT_BYTES;
    const iv = extentIv(fk.rootIv, first + e);
    for (let k = 0; k < b; k++) out[base + k] = (out[base + k] as number) ^ (iv[k] as number);
    if (o32 !== null && c32 !== null) {
      const end = (base + DATA_EXTENT_BYTES) / 4;
      for (let k = (base + b) / 4, p = base / 4; k < end; k++, p++) o32[k] = (o32[k] as number) ^ (c32[p] as number);
    } else {
      for (let k = base + b; k < base + DATA_EXTENT_BYTES; k++) out[k] = (out[k] as number) ^ (ciphertext[k - b] as number);
    }
  }
  return out;
}

/** Number of data extents a file of `plaintextSize` bytes has in its lower file. */
export function extentCount(plaintextSize: bigint): number {
  return Number((plaintextSize + BigInt(DATA_EXTENT_BYTES - 1)) / BigInt(DATA_EXTENT_BYTES));
}

/** Checks that this Node can decrypt `c` with `keyBytes` (throws CIPHER_UNAVAILABLE otherwise). */
export function assertCipherUsable(c: FileCipher, keyBytes: number): void {
  decipher(c, 'cbc', Buffer.alloc(keyBytes), Buffer.alloc(c.blockBytes));
}
