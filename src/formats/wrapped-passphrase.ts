/**
 * ~/.ecryptfs/wrapped-passphrase files (ecryptfs-utils 111 key_management.c).
 *
 * v2: ':' 0x02 | salt[8] | sig hex[16] | AES-128-ECB(key16, zero-padded passphrase) (16..64 bytes)
 * v1: sig hex[16] | ciphertext        (salt comes from ~/.ecryptfsrc or the default)
 *
 * There is no MAC: the wrapping password is checked only through the 16-hex sig.
 * Each error carries the errno ecryptfs-utils returns for the same file (the CLI
 * prints it as "[-N]"), e.g. EINVAL for garbage, EOPNOTSUPP for an unknown version.
 */
import { copySecret } from './secret-memory';
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { AgentError } from '../errors';
import { DEFAULT_SALT, MAX_PASSPHRASE_BYTES, SALT_SIZE, SIG_HEX_LEN, deriveKey, validatePassphraseBytes } from './kdf';

const V2_MARKER = 0x3a; // ':'
const V2_VERSION = 2;
const AES_BLOCK = 16;
const AES128_KEY_BYTES = 16;
const V2_HEADER_BYTES = 2 + SALT_SIZE + SIG_HEX_LEN; // 26
const V1_HEADER_BYTES = SIG_HEX_LEN; // 16

export interface WrappedFile {
  version: 1 | 2;
  /** Only in v2 files; v1 files use the caller's salt. */
  salt?: Buffer;
  sig: string;
  ciphertext: Buffer;
}

const HEX_SIG = /^[0-9a-fA-F]{16}$/;

function corrupt(message: string, errno = 'EINVAL'): AgentError {
  return new AgentError('CORRUPT_FILE', message, { errno });
}

/**
 * Like ecryptfs-utils, reads at most 64 ciphertext bytes (bytes after that are
 * ignored); what it reads must be a whole number of AES blocks.
 */
function takeCiphertext(rest: Buffer): Buffer {
  if (rest.length === 0) throw corrupt('Wrapped passphrase file holds no encrypted passphrase');
  const ciphertext = rest.subarray(0, MAX_PASSPHRASE_BYTES);
  // NSS fails such input with -EIO in ecryptfs-utils.
  if (ciphertext.length % AES_BLOCK !== 0) {
    throw corrupt(`Encrypted passphrase is ${ciphertext.length} bytes, not a multiple of ${AES_BLOCK}`, 'EIO');
  }
  return Buffer.from(ciphertext);
}

export function parseWrapped(file: Buffer): WrappedFile {
  if (file.length < SIG_HEX_LEN) throw corrupt(`Wrapped passphrase file is too short (${file.length} bytes)`);
  if (file[0] === V2_MARKER) {
    if (file[1] !== V2_VERSION) {
      throw new AgentError('UNSUPPORTED_VERSION', `Wrapped passphrase file version ${file[1]} is not supported`, { errno: 'EOPNOTSUPP' });
    }
    if (file.length < V2_HEADER_BYTES) throw corrupt(`Wrapped passphrase file is truncated (${file.length} bytes)`);
    const sig = file.subarray(2 + SALT_SIZE, V2_HEADER_BYTES).toString('latin1');
    // ecryptfs-utils only memcmp()s this field, so it reports such a file as a wrong password (-EIO).
    if (!HEX_SIG.test(sig)) throw corrupt('Wrapped passphrase file has a malformed signature', 'EIO');
    return {
      version: 2,
      salt: Buffer.from(file.subarray(2, 2 + SALT_SIZE)),
      sig,
      ciphertext: takeCiphertext(file.subarray(V2_HEADER_BYTES)),
    };
  }
  const sig = file.subarray(0, V1_HEADER_BYTES).toString('latin1');
  if (!HEX_SIG.test(sig)) throw corrupt('Not a wrapped passphrase file (neither v2 header nor v1 hex signature)');
  return { version: 1, sig, ciphertext: takeCiphertext(file.subarray(V1_HEADER_BYTES)) };
}

function aes128Ecb(mode: 'encrypt' | 'decrypt', key16: Buffer, input: Buffer): Buffer {
  const cipher = mode === 'encrypt' ? createCipheriv('aes-128-ecb', key16, null) : createDecipheriv('aes-128-ecb', key16, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(input), cipher.final()]);
}

/** Derives the wrapping key; returns its first 16 bytes (the AES-128 key) and zeroes the rest. */
function wrappingKey(wrappingPassphrase: Buffer, salt: Buffer): { key16: Buffer; sig: string } {
  const { key, sig } = deriveKey(wrappingPassphrase, salt);
  const key16 = Buffer.from(key.subarray(0, AES128_KEY_BYTES));
  key.fill(0);
  return { key16, sig };
}

function validateWrappingPassphrase(wrappingPassphrase: Buffer): void {
  validatePassphraseBytes(wrappingPassphrase, 'wrapping passphrase');
}

/**
 * Returns the mount passphrase. Like the C code the plaintext is used as a C string:
 * it ends at the first NUL (the zero padding).
 */
export function unwrapPassphrase(file: Buffer, wrappingPassphrase: Buffer, v1Salt: Buffer = DEFAULT_SALT): Buffer {
  const parsed = parseWrapped(file);
  validateWrappingPassphrase(wrappingPassphrase);
  const salt = parsed.version === 2 ? (parsed.salt as Buffer) : v1Salt;
  const { key16, sig } = wrappingKey(wrappingPassphrase, salt);
  try {
    if (!timingSafeEqual(Buffer.from(sig, 'latin1'), Buffer.from(parsed.sig, 'latin1'))) {
      throw new AgentError('WRONG_PASSWORD', 'Incorrect wrapping passphrase for this file', { errno: 'EIO' });
    }
    const plain = aes128Ecb('decrypt', key16, parsed.ciphertext);
    try {
      const nul = plain.indexOf(0);
      const length = nul === -1 ? plain.length : nul;
      if (length === 0) throw corrupt('The decrypted passphrase is empty', 'EIO');
      return copySecret(plain.subarray(0, length));
    } finally {
      plain.fill(0);
    }
  } finally {
    key16.fill(0);
  }
}

/** v2 file bytes for `passphrase` wrapped with `wrappingPassphrase` (AES-128-ECB, NUL padding to 16). */
export function wrapPassphrase(passphrase: Buffer, wrappingPassphrase: Buffer, salt: Buffer = randomBytes(SALT_SIZE)): Buffer {
  // ecryptfs-utils reports a bad passphrase-to-wrap as -EIO, a bad wrapping passphrase as -EINVAL.
  try {
    validatePassphraseBytes(passphrase, 'passphrase to wrap');
  } catch (e) {
    if (e instanceof AgentError) throw new AgentError(e.code, e.message, { errno: 'EIO' });
    throw e;
  }
  validateWrappingPassphrase(wrappingPassphrase);
  if (salt.length !== SALT_SIZE) throw new RangeError(`salt must be ${SALT_SIZE} bytes`);
  const { key16, sig } = wrappingKey(wrappingPassphrase, salt);
  const padded = Buffer.alloc(Math.ceil(passphrase.length / AES_BLOCK) * AES_BLOCK);
  passphrase.copy(padded);
  try {
    const ciphertext = aes128Ecb('encrypt', key16, padded);
    return Buffer.concat([Buffer.from([V2_MARKER, V2_VERSION]), salt, Buffer.from(sig, 'latin1'), ciphertext]);
  } finally {
    padded.fill(0);
    key16.fill(0);
  }
}

/**
 * Legacy v1 bytes (sig | ciphertext, salt not stored). Only for tests and
 * migration tooling: v1 uses a fixed or rc-file salt (CVE-2014-9687), never write it for users.
 */
export function wrapPassphraseV1(passphrase: Buffer, wrappingPassphrase: Buffer, salt: Buffer = DEFAULT_SALT): Buffer {
  const v2 = wrapPassphrase(passphrase, wrappingPassphrase, salt);
  return Buffer.from(v2.subarray(2 + SALT_SIZE));
}
