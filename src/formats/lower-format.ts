/**
 * What an eCryptfs lower directory (~/.Private) says about the keys it was made with, read
 * without any key: every encrypted file starts with a plaintext header whose key packet set
 * names the sig of each auth tok that wraps the file's key (a Tag 3 packet followed by a Tag 11
 * literal packet holding the 8-byte sig), and every encrypted file name is
 * "ECRYPTFS_FNEK_ENCRYPTED." + an encoded Tag 70 packet that starts with the FNEK's sig.
 * Formats: Linux fs/ecryptfs (crypto.c ecryptfs_write_headers_virt, keystore.c
 * write_tag_3/11/70_packet, ecryptfs_parse_packet_length), byte-checked against files the
 * Debian 6.1 kernel wrote (test/fixtures/recovery/*.json). Pure functions, no I/O.
 */
import { AgentError } from '../errors';

/** m1 ^ m2 at header bytes 8..15 (big-endian). */
export const MAGIC_ECRYPTFS_MARKER = 0x3c81b7f5;
export const FNEK_NAME_PREFIX = 'ECRYPTFS_FNEK_ENCRYPTED.';
/** The key packet set lives in the first page of the header (the kernel parses PAGE_SIZE - 8 bytes of it). */
export const HEADER_BYTES_NEEDED = 4096;

const TAG_1 = 0x01; // public-key wrapped file key (key modules; never made by ecryptfs-utils' passphrase tools)
const TAG_3 = 0x8c; // passphrase-wrapped file key
const TAG_11 = 0xed; // literal data: the auth tok sig
const TAG_70 = 0x46; // encrypted file name
const SIG_BYTES = 8;
/** RFC 2440 cipher codes the kernel writes for AES (ecryptfs_code_for_cipher_string). */
const AES_KEY_BYTES_BY_CODE: ReadonlyMap<number, number> = new Map([
  [0x07, 16],
  [0x08, 24],
  [0x09, 32],
]);

/** OpenPGP-style length of ecryptfs_parse_packet_length: one byte < 192, or two bytes < 224. */
function packetLength(buf: Buffer, off: number): { size: number; lengthBytes: number } | null {
  const b0 = buf[off];
  if (b0 === undefined) return null;
  if (b0 < 192) return { size: b0, lengthBytes: 1 };
  const b1 = buf[off + 1];
  if (b0 < 224 && b1 !== undefined) return { size: (b0 - 192) * 256 + b1 + 192, lengthBytes: 2 };
  return null;
}

export interface LowerFileHeader {
  /** ECRYPTFS_FILE_VERSION of the header (3 for every kernel since 2.6.24) */
  fileVersion: number;
  /** plaintext size recorded in the header */
  plaintextSize: bigint;
  /** lowercase hex sigs of the auth toks that can open this file, in header order */
  keySigs: string[];
  /** key size in bytes of the file's cipher when it is AES (16 for ecryptfs-utils setups), else undefined */
  aesKeyBytes?: number;
}

/** Header flag bits (crypto.c ecryptfs_flag_map); the top byte of the same word is the file version. */
export const HEADER_FLAG = { HMAC: 0x1, ENCRYPTED: 0x2, METADATA_IN_XATTR: 0x4, ENCRYPT_FILENAMES: 0x8 } as const;
/** Highest file version the kernel reads (ECRYPTFS_SUPPORTED_FILE_VERSION). */
export const SUPPORTED_FILE_VERSION = 3;
/** ECRYPTFS_MINIMUM_HEADER_EXTENT_SIZE: the header size of version-0 files and the least a header in the file may have. */
export const MIN_METADATA_BYTES = 8192;
/** Data extents are always ECRYPTFS_DEFAULT_EXTENT_SIZE: the header's extent size only sizes the header. */
export const DATA_EXTENT_BYTES = 4096;
const MAX_ENCRYPTED_KEY_BYTES = 512; // ECRYPTFS_MAX_ENCRYPTED_KEY_BYTES
/** The kernel gives the packet parser the first PAGE_SIZE - 8 bytes after the header fields. */
const PACKET_SET_BYTES = 4096 - 8;

/** A passphrase-wrapped file key (tag 3) with the sig of the auth tok that wraps it (the tag 11 after it). */
export interface PassphraseKeyPacket {
  kind: 'passphrase';
  sig: string;
  /** RFC 2440 cipher code (crypto.c ecryptfs_cipher_code_str_map) */
  cipherCode: number;
  /** the file key, encrypted in ECB mode with the auth tok's session key encryption key */
  encryptedKey: Buffer;
}
/** A file key wrapped by a public key through ecryptfsd (tag 1): readable only with that key module. */
export interface PublicKeyPacket {
  kind: 'public-key';
  sig: string;
  encryptedKey: Buffer;
}
export type KeyPacket = PassphraseKeyPacket | PublicKeyPacket;

/** The plaintext metadata of an encrypted file (crypto.c ecryptfs_read_headers_virt). */
export interface EcryptfsHeader {
  plaintextSize: bigint;
  fileVersion: number;
  /** HEADER_FLAG bits */
  flags: number;
  /** bytes before the first data extent in the lower file (0 when the header lives in the user.ecryptfs xattr) */
  metadataBytes: number;
  keyPackets: KeyPacket[];
}

/** True when bytes 8..15 hold the marker (m1, m1 ^ MAGIC): the file has an eCryptfs header there. */
export function hasEcryptfsMarker(head: Buffer): boolean {
  return head.length >= 16 && (head.readUInt32BE(8) ^ head.readUInt32BE(12)) >>> 0 === MAGIC_ECRYPTFS_MARKER;
}

function corrupt(why: string): AgentError {
  return new AgentError('CORRUPT_FILE', `damaged eCryptfs header: ${why}`, {
    hint: 'The lower file was truncated or altered; restore it from a backup of the encrypted directory',
  });
}

/**
 * Parses the header at the start of `head` (the file's first page, or the user.ecryptfs xattr
 * when `inXattr`), as ecryptfs_read_headers_virt and ecryptfs_parse_packet_set do. Throws
 * CORRUPT_FILE for anything the kernel would refuse; the marker must be there.
 */
export function parseEcryptfsHeader(head: Buffer, inXattr = false): EcryptfsHeader {
  if (head.length < 26) throw corrupt(`${head.length} bytes, shorter than its fixed fields`);
  if (!hasEcryptfsMarker(head)) throw corrupt('no eCryptfs marker at bytes 8..15');
  const word = head.readUInt32BE(16);
  const fileVersion = word >>> 24;
  if (fileVersion > SUPPORTED_FILE_VERSION) throw corrupt(`file version ${fileVersion} (the kernel reads up to ${SUPPORTED_FILE_VERSION})`);
  let off = 20;
  let metadataBytes = MIN_METADATA_BYTES;
  if (fileVersion >= 1) {
    metadataBytes = head.readUInt32BE(20) * head.readUInt16BE(24);
    off = 26;
    if (!inXattr && metadataBytes < MIN_METADATA_BYTES) throw corrupt(`header size ${metadataBytes} (at least ${MIN_METADATA_BYTES})`);
  }
  const flags = word & 0xff;
  const setStart = off;
  const limit = Math.min(head.length, setStart + PACKET_SET_BYTES);
  const keyPackets: KeyPacket[] = [];
  for (;;) {
    const tag = head[off];
    if (off >= limit || (tag !== TAG_3 && tag !== TAG_1 && tag !== TAG_11)) break;
    if (tag === TAG_11) throw corrupt('a tag 11 packet without its tag 3');
    const len = packetLength(head, off + 1);
    if (len === null) throw corrupt(`bad packet length at byte ${off + 1}`);
    const body = off + 1 + len.lengthBytes;
    if (body + len.size > limit) throw corrupt(`a packet at byte ${off} runs past the header`);
    if (tag === TAG_3) {
      // body: version 0x04, cipher code, S2K 0x03, hash 0x01 (MD5), salt[8], count, encrypted key
      if (len.size < SIG_BYTES + 5) throw corrupt(`tag 3 body of ${len.size} bytes`);
      const keyBytes = len.size - (SIG_BYTES + 5);
      if (keyBytes > MAX_ENCRYPTED_KEY_BYTES) throw corrupt(`tag 3 key of ${keyBytes} bytes`);
      if (head[body] !== 0x04) throw corrupt(`tag 3 version ${head[body]}`);
      const cipherCode = head[body + 1] as number;
      if (head[body + 2] !== 0x03 || head[body + 3] !== 0x01) throw corrupt('tag 3 string-to-key is not salted-iterated MD5');
      const encryptedKey = Buffer.from(head.subarray(body + 13, body + len.size));
      off = body + len.size;
      const sig = parseTag11Sig(head, off, limit);
      if (sig === null) throw corrupt(`no valid tag 11 (key sig) packet after the tag 3 at byte ${body - 1 - len.lengthBytes}`);
      keyPackets.push({ kind: 'passphrase', sig: sig.sig, cipherCode, encryptedKey });
      off = sig.end;
    } else {
      // body: version 0x03, key id (the sig, 8 bytes), algorithm, encrypted key
      if (len.size < SIG_BYTES + 2) throw corrupt(`tag 1 body of ${len.size} bytes`);
      if (len.size - (SIG_BYTES + 2) > MAX_ENCRYPTED_KEY_BYTES) throw corrupt('tag 1 key too large');
      if (head[body] !== 0x03) throw corrupt(`tag 1 version ${head[body]}`);
      const sig = head.subarray(body + 1, body + 1 + SIG_BYTES).toString('hex');
      keyPackets.push({ kind: 'public-key', sig, encryptedKey: Buffer.from(head.subarray(body + SIG_BYTES + 2, body + len.size)) });
      off = body + len.size;
    }
  }
  if (keyPackets.length === 0) throw corrupt('no key packet (the kernel does not read unencrypted eCryptfs files)');
  return { plaintextSize: head.readBigUInt64BE(0), fileVersion, flags, metadataBytes: inXattr ? 0 : metadataBytes, keyPackets };
}

/**
 * Parses the start of a lower file. Returns null when it is not an eCryptfs header (no marker:
 * a passthrough file, or a file whose header is kept in the user.ecryptfs xattr) or when its
 * key packet set is malformed.
 */
export function parseLowerFileHeader(head: Buffer): LowerFileHeader | null {
  if (!hasEcryptfsMarker(head)) return null;
  let h: EcryptfsHeader;
  try {
    h = parseEcryptfsHeader(head);
  } catch (e) {
    if (e instanceof AgentError) return null;
    throw e;
  }
  const out: LowerFileHeader = { fileVersion: h.fileVersion, plaintextSize: h.plaintextSize, keySigs: h.keyPackets.map((p) => p.sig) };
  const first = h.keyPackets[0];
  const aesKeyBytes = first?.kind === 'passphrase' ? AES_KEY_BYTES_BY_CODE.get(first.cipherCode) : undefined;
  if (aesKeyBytes !== undefined) out.aesKeyBytes = aesKeyBytes;
  return out;
}

/** Tag 11: 0xED, length, 0x62 ('b'), 8, "_CONSOLE", 4-byte date, contents (the 8-byte sig). */
function parseTag11Sig(head: Buffer, off: number, limit: number): { sig: string; end: number } | null {
  if (head[off] !== TAG_11) return null;
  const len = packetLength(head, off + 1);
  if (len === null || len.size !== 14 + SIG_BYTES) return null;
  const body = off + 1 + len.lengthBytes;
  if (body + len.size > limit || head[body] !== 0x62 || head[body + 1] !== 0x08) return null;
  const sigAt = body + 14;
  return { sig: head.subarray(sigAt, sigAt + SIG_BYTES).toString('hex'), end: body + len.size };
}

/** The kernel's portable_filename_chars: 64 symbols, 6 bits each, big-endian bit order like base64. */
const FILENAME_ALPHABET = '-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const FILENAME_VALUE = new Map([...FILENAME_ALPHABET].map((c, i) => [c, i]));

/** ecryptfs_decode_from_filename; null for a character outside the alphabet. */
export function decodeLowerName(encoded: string): Buffer | null {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const c of encoded) {
    const v = FILENAME_VALUE.get(c);
    if (v === undefined) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  return Buffer.from(out);
}

/** Sig of the filename key an encrypted lower name was made with, or null for any other name. */
export function fnekSigOfLowerName(name: string): string | null {
  if (!name.startsWith(FNEK_NAME_PREFIX)) return null;
  // Tag 70: 0x46, length (1-2 bytes), FNEK sig (8), cipher code, encrypted name: 14 characters cover 10 bytes.
  const packet = decodeLowerName(name.slice(FNEK_NAME_PREFIX.length, FNEK_NAME_PREFIX.length + 16));
  if (packet === null || packet[0] !== TAG_70) return null;
  const len = packetLength(packet, 1);
  if (len === null || len.size < SIG_BYTES + 1 + 16) return null;
  const sigAt = 1 + len.lengthBytes;
  if (packet.length < sigAt + SIG_BYTES) return null;
  return packet.subarray(sigAt, sigAt + SIG_BYTES).toString('hex');
}
