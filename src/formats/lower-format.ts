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

/**
 * Parses the start of a lower file. Returns null when it is not an eCryptfs header (no marker:
 * a passthrough file, or a file whose header is kept in the user.ecryptfs xattr) or when its
 * key packet set is malformed.
 */
export function parseLowerFileHeader(head: Buffer): LowerFileHeader | null {
  if (head.length < 27) return null;
  if ((head.readUInt32BE(8) ^ head.readUInt32BE(12)) >>> 0 !== MAGIC_ECRYPTFS_MARKER) return null;
  const fileVersion = head[16] as number;
  // flags (4 bytes) at 16; from file version 1 on, header extent size (4) and count (2) follow.
  let off = fileVersion >= 1 ? 26 : 20;
  const keySigs: string[] = [];
  let aesKeyBytes: number | undefined;
  for (;;) {
    const tag = head[off];
    if (tag === TAG_3) {
      const len = packetLength(head, off + 1);
      if (len === null || len.size < SIG_BYTES + 5) return null;
      const body = off + 1 + len.lengthBytes;
      if (body + len.size > head.length) return null;
      // body: version 0x04, cipher code, S2K 0x03, hash, salt[8], count, encrypted key
      if (head[body] !== 0x04) return null;
      if (keySigs.length === 0) aesKeyBytes = AES_KEY_BYTES_BY_CODE.get(head[body + 1] as number);
      off = body + len.size;
      const sig = parseTag11Sig(head, off);
      if (sig === null) return null;
      keySigs.push(sig.sig);
      off = sig.end;
    } else if (tag === TAG_1) {
      // body: version 0x03, key id (the sig, 8 bytes), algorithm, encrypted key
      const len = packetLength(head, off + 1);
      if (len === null || len.size < SIG_BYTES + 2) return null;
      const body = off + 1 + len.lengthBytes;
      if (body + len.size > head.length) return null;
      keySigs.push(head.subarray(body + 1, body + 1 + SIG_BYTES).toString('hex'));
      off = body + len.size;
    } else {
      break; // 0x00 ends the set
    }
  }
  const out: LowerFileHeader = { fileVersion, plaintextSize: head.readBigUInt64BE(0), keySigs };
  if (aesKeyBytes !== undefined) out.aesKeyBytes = aesKeyBytes;
  return out;
}

/** Tag 11: 0xED, length, 0x62 ('b'), 8, "_CONSOLE", 4-byte date, contents (the 8-byte sig). */
function parseTag11Sig(head: Buffer, off: number): { sig: string; end: number } | null {
  if (head[off] !== TAG_11) return null;
  const len = packetLength(head, off + 1);
  if (len === null || len.size !== 14 + SIG_BYTES) return null;
  const body = off + 1 + len.lengthBytes;
  if (body + len.size > head.length || head[body] !== 0x62 || head[body + 1] !== 0x08) return null;
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
