/**
 * eCryptfs passphrase key derivation, byte-compatible with ecryptfs-utils 111
 * `generate_passphrase_sig` (libecryptfs/main.c):
 *
 *   buf = SHA512(salt[0..8] || passphrase); 65535 more times buf = SHA512(buf)
 *   key = buf (64 bytes); sig = lowercase hex of SHA512(key)[0..8]
 *
 * Not PBKDF2. The iteration loop is pluggable so a native implementation can
 * replace the JS one after benchmarking; the JS loop stays the reference.
 */
import * as crypto from 'node:crypto';
import { AgentError } from '../errors';

export const SALT_SIZE = 8;
export const SIG_HEX_LEN = 16;
export const MAX_PASSPHRASE_BYTES = 64;
export const KDF_ROUNDS = 65536;
export const KEY_BYTES = 64;
/** ECRYPTFS_DEFAULT_SALT_HEX "0011223344556677", hex-decoded. */
export const DEFAULT_SALT: Buffer = Buffer.from('0011223344556677', 'hex');
/** ecryptfs-utils passes the *string* "9988776655443322" as an 8-byte salt: its ASCII bytes "99887766". */
export const FNEK_SALT: Buffer = Buffer.from('99887766', 'ascii');

/** SHA512 applied `rounds` times, the first time over `first`. Must not modify `first`. */
export type Sha512Iterate = (first: Buffer, rounds: number) => Buffer;

type OneShotHash = (algorithm: string, data: Buffer, outputEncoding: 'buffer') => Buffer;
// crypto.hash exists from Node 20.12/21.7 and is ~1.5x faster than createHash per call; Node 18 lacks it.
const oneShotHash: OneShotHash | undefined =
  typeof (crypto as { hash?: unknown }).hash === 'function' ? ((crypto as unknown as { hash: OneShotHash }).hash) : undefined;

export function sha512(data: Buffer): Buffer {
  if (oneShotHash !== undefined) return oneShotHash('sha512', data, 'buffer');
  return crypto.createHash('sha512').update(data).digest();
}

/** Reference JS implementation; zeroes every intermediate digest it creates. */
export const sha512IterateJs: Sha512Iterate = (first, rounds) => {
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError('rounds must be a positive integer');
  let digest = sha512(first);
  for (let i = 1; i < rounds; i++) {
    const next = sha512(digest);
    digest.fill(0);
    digest = next;
  }
  return digest;
};

let sha512Iterate: Sha512Iterate = sha512IterateJs;

/** Plug in another implementation (e.g. the native addon's); `undefined` restores the JS reference. */
export function setKdfImplementation(fn: Sha512Iterate | undefined): void {
  sha512Iterate = fn ?? sha512IterateJs;
}

export function getKdfImplementation(): Sha512Iterate {
  return sha512Iterate;
}

/** Sig of a 64-byte key: first 8 bytes of one extra SHA-512, lowercase hex. */
export function sigOfKey(key: Buffer): string {
  const digest = sha512(key);
  const sig = digest.subarray(0, SIG_HEX_LEN / 2).toString('hex');
  digest.fill(0);
  return sig;
}

/** Length rules of ecryptfs-utils (strlen 1..64); NUL cannot occur in a C string. */
export function validatePassphraseBytes(passphrase: Buffer, what = 'passphrase'): void {
  if (passphrase.length === 0) throw new AgentError('PASSPHRASE_EMPTY', `The ${what} is empty`, { errno: 'EINVAL' });
  if (passphrase.length > MAX_PASSPHRASE_BYTES) {
    throw new AgentError('PASSPHRASE_TOO_LONG', `The ${what} is longer than ${MAX_PASSPHRASE_BYTES} bytes`, { errno: 'EINVAL' });
  }
  if (passphrase.includes(0)) {
    throw new AgentError(
      'PASSPHRASE_NUL',
      `The ${what} contains a NUL byte; ecryptfs-utils treats passphrases as C strings, so it would be silently cut at the NUL and could not round-trip`,
      { errno: 'EINVAL' },
    );
  }
}

export function deriveKey(passphrase: Buffer, salt: Buffer): { key: Buffer; sig: string } {
  if (salt.length !== SALT_SIZE) throw new RangeError(`salt must be ${SALT_SIZE} bytes, got ${salt.length}`);
  validatePassphraseBytes(passphrase);
  const first = Buffer.concat([salt, passphrase]);
  try {
    const key = sha512Iterate(first, KDF_ROUNDS);
    if (key.length !== KEY_BYTES) throw new AgentError('NATIVE', `KDF implementation returned ${key.length} bytes instead of ${KEY_BYTES}`);
    return { key, sig: sigOfKey(key) };
  } finally {
    first.fill(0);
  }
}
