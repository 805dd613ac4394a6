/**
 * The packed `struct ecryptfs_auth_tok` (740 bytes, little-endian) that
 * ecryptfs-utils' generate_payload() stores as a "user" key named by its sig.
 * Layout byte-verified against keys added by ecryptfs-add-passphrase (notes §2.1, §2.4).
 */
import { allocSecret } from './secret-memory';
import { AgentError } from '../errors';
import { DEFAULT_SALT, FNEK_SALT, KEY_BYTES, SALT_SIZE, SIG_HEX_LEN, deriveKey } from './kdf';

export const AUTH_TOK_SIZE = 740;
export const AUTH_TOK_VERSION = 0x0004; // ECRYPTFS_VERSION_MAJOR 0x00 << 8 | MINOR 0x04
export const TOKEN_TYPE_PASSWORD = 0;
export const TOKEN_TYPE_PRIVATE_KEY = 1;
export const HASH_ALGO_SHA512 = 10; // PGP_DIGEST_ALGO_SHA512
export const FLAG_SESSION_KEY_ENCRYPTION_KEY_SET = 0x02;

const OFF = {
  version: 0,
  tokenType: 2,
  password: 628, // union token → struct ecryptfs_password
  hashAlgo: 632,
  sessionKeyEncryptionKeyBytes: 640,
  passwordFlags: 644,
  sessionKeyEncryptionKey: 648,
  signature: 712, // 16 hex + NUL
  salt: 729,
} as const;

export interface AuthTok {
  sig: string;
  payload: Buffer;
}

/** An eCryptfs key signature: 16 hex digits (the key description of its auth tok). */
export function isSig(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-fA-F]{16}$/.test(s);
}

/** True for a buffer shaped like an eCryptfs password auth tok (size and version bytes). */
export function isAuthTok(payload: Buffer): boolean {
  return payload.length === AUTH_TOK_SIZE && payload[0] === 0x04 && payload[1] === 0x00;
}

/** The signature an auth tok carries in its own bytes (16 hex + NUL at offset 712), or null. */
export function embeddedSig(payload: Buffer): string | null {
  if (payload.length !== AUTH_TOK_SIZE || payload[OFF.signature + 16] !== 0) return null;
  return payload.toString('latin1', OFF.signature, OFF.signature + 16);
}

export interface ParsedAuthTok {
  version: number;
  tokenType: number;
  sig: string;
  salt: Buffer;
  keyBytes: number;
}

/** Payload for a key already derived (the caller keeps ownership of `key`). */
export function packPasswordAuthTok(key: Buffer, sig: string, salt: Buffer): Buffer {
  if (key.length !== KEY_BYTES) throw new RangeError(`key must be ${KEY_BYTES} bytes`);
  if (!/^[0-9a-f]{16}$/.test(sig)) throw new AgentError('BAD_SIG', `Invalid key signature "${sig}"`);
  if (salt.length !== SALT_SIZE) throw new RangeError(`salt must be ${SALT_SIZE} bytes`);
  const payload = allocSecret(AUTH_TOK_SIZE);
  payload.writeUInt16LE(AUTH_TOK_VERSION, OFF.version);
  payload.writeUInt16LE(TOKEN_TYPE_PASSWORD, OFF.tokenType);
  // password_bytes and hash_iterations are never set by ecryptfs-utils: stay 0.
  payload.writeInt32LE(HASH_ALGO_SHA512, OFF.hashAlgo);
  payload.writeInt32LE(KEY_BYTES, OFF.sessionKeyEncryptionKeyBytes);
  payload.writeUInt32LE(FLAG_SESSION_KEY_ENCRYPTION_KEY_SET, OFF.passwordFlags);
  key.copy(payload, OFF.sessionKeyEncryptionKey);
  payload.write(sig, OFF.signature, SIG_HEX_LEN, 'latin1'); // NUL terminator already 0
  salt.copy(payload, OFF.salt);
  return payload;
}

export function buildPasswordAuthTok(passphrase: Buffer, salt: Buffer): AuthTok {
  const { key, sig } = deriveKey(passphrase, salt);
  try {
    return { sig, payload: packPasswordAuthTok(key, sig, salt) };
  } finally {
    key.fill(0);
  }
}

function badTok(message: string): AgentError {
  return new AgentError('CORRUPT_FILE', `Not an eCryptfs auth token: ${message}`, {
    hint: 'The key was not created by ecryptfs-utils or ecryptfs-agent; remove it (keyctl unlink) and unlock again',
  });
}

/** Recognises an ecryptfs password auth token (e.g. from `keyctl read`). Never exposes the key. */
export function parseAuthTok(payload: Buffer): ParsedAuthTok {
  if (payload.length !== AUTH_TOK_SIZE) throw badTok(`${payload.length} bytes instead of ${AUTH_TOK_SIZE}`);
  const version = payload.readUInt16LE(OFF.version);
  if (version !== AUTH_TOK_VERSION) throw badTok(`version 0x${version.toString(16).padStart(4, '0')}`);
  const tokenType = payload.readUInt16LE(OFF.tokenType);
  if (tokenType !== TOKEN_TYPE_PASSWORD) throw badTok(`token type ${tokenType} is not a password token`);
  const keyBytes = payload.readInt32LE(OFF.sessionKeyEncryptionKeyBytes);
  if (keyBytes < 1 || keyBytes > KEY_BYTES) throw badTok(`key size ${keyBytes}`);
  if (payload[OFF.signature + SIG_HEX_LEN] !== 0) throw badTok('signature is not NUL-terminated');
  const sig = payload.subarray(OFF.signature, OFF.signature + SIG_HEX_LEN).toString('latin1');
  if (!/^[0-9a-f]{16}$/.test(sig)) throw badTok('signature is not 16 lowercase hex characters');
  return { version, tokenType, sig, salt: Buffer.from(payload.subarray(OFF.salt, OFF.salt + SALT_SIZE)), keyBytes };
}

export interface MountKeys {
  fek: AuthTok;
  fnek?: AuthTok;
}

/** File-content key (salt from ~/.ecryptfsrc or default) and optionally the filename key (ASCII "99887766" salt). */
export function deriveMountKeys(mountPassphrase: Buffer, salt: Buffer = DEFAULT_SALT, withFnek: boolean): MountKeys {
  const fek = buildPasswordAuthTok(mountPassphrase, salt);
  return withFnek ? { fek, fnek: buildPasswordAuthTok(mountPassphrase, FNEK_SALT) } : { fek };
}
