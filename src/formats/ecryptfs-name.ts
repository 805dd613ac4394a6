/**
 * Decrypting eCryptfs file names (and symlink targets, which the kernel encrypts the same way)
 * without the kernel module: crypto.c ecryptfs_decode_and_decrypt_filename and keystore.c
 * ecryptfs_write_tag_70_packet / ecryptfs_parse_tag_70_packet.
 * A lower name "ECRYPTFS_FNEK_ENCRYPTED." + portable-base64 (lower-format.ts decodeLowerName) of
 * a tag 70 packet: 0x46, length, FNEK sig (8), cipher code, then the block-aligned filename,
 * encrypted under the first fn-key-bytes of the FNEK auth tok's session key encryption key in
 * ECB mode: the source says CBC with a zero IV, but the tfm ecryptfs_get_tfm_and_mutex_for_cipher_name
 * hands out is "ecb(cipher)" (crypto.c ecryptfs_process_key_cipher), and the kernel-written
 * fixtures decrypt only that way. Its plaintext: "random" bytes (in fact the MD5 chain of that 64-byte key, a
 * 0 byte replaced by 0x42), one NUL, the name. The prefix is deterministic, so checking it tells
 * a wrong key (or, for ciphers whose code does not say the key size, the right size) for sure.
 * Names without the prefix are shown as they are (the kernel does the same). Pure functions.
 */
import * as crypto from 'node:crypto';
import { AgentError } from '../errors';
import { aesKeyBytesOfCode, cipherOfCode } from './ecryptfs-file';
import { decodeLowerName, FNEK_NAME_PREFIX } from './lower-format';

const TAG_70 = 0x46;
const SIG_BYTES = 8;
const MIN_RANDOM_PREPEND_BYTES = 16; // ECRYPTFS_FILENAME_MIN_RANDOM_PREPEND_BYTES
const NON_NULL = 0x42; // ECRYPTFS_NON_NULL
/** Key sizes mount.ecryptfs offers per cipher (src/os/ciphers.ts CIPHERS), tried when the code does not say. */
const KEY_BYTES_TO_TRY: Readonly<Record<string, readonly number[]>> = {
  blowfish: [16, 32, 56],
  des3_ede: [24],
  cast5: [16],
  twofish: [16, 32],
  cast6: [16, 32],
};

export interface EncryptedName {
  fnekSig: string;
  cipherCode: number;
  /** the block-aligned encrypted filename */
  ciphertext: Buffer;
}

function badName(why: string): AgentError {
  return new AgentError('CORRUPT_FILE', `damaged encrypted file name: ${why}`);
}

/** The tag 70 packet of an encrypted lower name; null for a name without the prefix (a plaintext name). */
export function parseEncryptedName(lowerName: string): EncryptedName | null {
  if (!lowerName.startsWith(FNEK_NAME_PREFIX) || lowerName.length === FNEK_NAME_PREFIX.length) return null;
  const packet = decodeLowerName(lowerName.slice(FNEK_NAME_PREFIX.length));
  if (packet === null) throw badName('a character outside the kernel\'s filename alphabet');
  if (packet[0] !== TAG_70) throw badName('not a tag 70 packet');
  const b0 = packet[1];
  if (b0 === undefined || b0 >= 224) throw badName('bad packet length');
  const lengthBytes = b0 < 192 ? 1 : 2;
  const size = b0 < 192 ? b0 : (b0 - 192) * 256 + (packet[2] ?? 0) + 192;
  if (lengthBytes === 2 && packet[2] === undefined) throw badName('bad packet length');
  const sigAt = 1 + lengthBytes;
  if (size < SIG_BYTES + 1 + 1 || sigAt + size > packet.length) throw badName(`packet of ${size} bytes in a name of ${packet.length}`);
  return {
    fnekSig: packet.subarray(sigAt, sigAt + SIG_BYTES).toString('hex'),
    cipherCode: packet[sigAt + SIG_BYTES] as number,
    ciphertext: Buffer.from(packet.subarray(sigAt + SIG_BYTES + 1, sigAt + size)),
  };
}

/** The bytes write_tag_70_packet puts before the NUL: the MD5 chain of the FNEK's 64-byte key. */
function expectedPrefix(fnekSek: Buffer, n: number): Buffer {
  const out = Buffer.alloc(n);
  let hash = crypto.createHash('md5').update(fnekSek).digest();
  for (let j = 0; j < n; j++) {
    out[j] = hash[j % 16] as number;
    if (j % 16 === 15) hash = crypto.createHash('md5').update(hash).digest();
    if (out[j] === 0) out[j] = NON_NULL;
  }
  return out;
}

/**
 * Decrypts one encrypted name (or symlink target) with the FNEK's session key encryption key (64 bytes). Throws
 * WRONG_MOUNT_PASSPHRASE when the name was made with another FNEK, CORRUPT_FILE when damaged.
 */
export function decryptName(name: EncryptedName, fnekSek: Buffer, opts: { symlinkTarget?: boolean } = {}): Buffer {
  const cipher = cipherOfCode(name.cipherCode);
  if (name.ciphertext.length % cipher.blockBytes !== 0) throw badName(`${name.ciphertext.length} encrypted bytes are not whole ${cipher.name} blocks`);
  const aes = aesKeyBytesOfCode(name.cipherCode);
  const sizes = aes !== undefined ? [aes] : (KEY_BYTES_TO_TRY[cipher.name] ?? []);
  for (const keyBytes of sizes) {
    const algo = cipher.openssl('ecb', keyBytes);
    if (algo === null) {
      throw new AgentError('CIPHER_UNAVAILABLE', `cannot decrypt ${cipher.name} file names: OpenSSL has no such cipher`, {
        hint: `${cipher.name} is not implemented yet: mount the directory with the kernel module and copy the files out (ecryptfs-agent recover)`,
      });
    }
    let plain: Buffer;
    try {
      const d = crypto.createDecipheriv(algo, fnekSek.subarray(0, keyBytes), null);
      d.setAutoPadding(false);
      plain = Buffer.concat([d.update(name.ciphertext), d.final()]);
    } catch (e) {
      throw new AgentError('CIPHER_UNAVAILABLE', `cannot decrypt ${cipher.name} file names here: ${(e as Error).message}`, {
        hint: `OpenSSL's legacy provider has ${cipher.name}: ecryptfs-agent export loads it when OpenSSL has it (the legacy module of libssl3)`,
      });
    }
    const nul = plain.indexOf(0);
    // at least MIN_RANDOM_PREPEND_BYTES before the NUL, all of them the MD5 chain
    if (nul < MIN_RANDOM_PREPEND_BYTES || !plain.subarray(0, nul).equals(expectedPrefix(fnekSek, nul))) continue;
    const out = plain.subarray(nul + 1);
    // a symlink target is a path: "/" is allowed there
    if (out.length === 0 || out.includes(0) || (opts.symlinkTarget !== true && out.includes(0x2f))) throw badName('the decrypted name is empty or holds NUL or "/"');
    return Buffer.from(out);
  }
  throw new AgentError('WRONG_MOUNT_PASSPHRASE', `the file name key (sig ${name.fnekSig}) does not decrypt this name`);
}
