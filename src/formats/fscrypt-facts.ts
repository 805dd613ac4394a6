/**
 * What `migrate-out --to fscrypt` needs to know about a filesystem and an fscrypt directory,
 * from bytes: the ext4 superblock's `encrypt` feature (the kernel refuses encryption policies on
 * an ext4 without it), and `fscrypt status DIR` as fscrypt 0.3 prints it. Pure; the reads and the
 * fscrypt runs are os/fscrypt.ts.
 */

/** The ext4 superblock starts 1024 bytes into the device and is 1024 bytes long. */
export const EXT4_SUPERBLOCK_OFFSET = 1024;
export const EXT4_SUPERBLOCK_BYTES = 1024;
const EXT4_MAGIC = 0xef53;
/** s_feature_incompat bits (fs/ext4/ext4.h) */
const INCOMPAT_ENCRYPT = 0x10000;

export interface Ext4Superblock {
  /** 1024 << s_log_block_size */
  blockSize: number;
  /** EXT4_FEATURE_INCOMPAT_ENCRYPT: `tune2fs -O encrypt` set it */
  encrypt: boolean;
  /** the filesystem's UUID, as blkid prints it */
  uuid: string;
}

/** The superblock's fields we use, or null when the bytes are not an ext2/3/4 superblock. */
export function parseExt4Superblock(sb: Buffer): Ext4Superblock | null {
  if (sb.length < 0x78 || sb.readUInt16LE(0x38) !== EXT4_MAGIC) return null;
  const logBlock = sb.readUInt32LE(0x18);
  if (logBlock > 6) return null; // 64 KiB is the largest block size ext4 knows
  const hex = sb.subarray(0x68, 0x78).toString('hex');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { blockSize: 1024 << logBlock, encrypt: (sb.readUInt32LE(0x60) & INCOMPAT_ENCRYPT) !== 0, uuid };
}

export interface FscryptDirStatus {
  /** the policy's descriptor (hex) */
  policy: string;
  /** "Yes", "No" or "Partially" (files still open after a lock) */
  unlocked: 'Yes' | 'No' | 'Partially';
  /** the login protector of the user asked about, as MOUNTPOINT:ID for --unlock-with */
  loginProtector: string | null;
}

/**
 * `fscrypt status DIR` of an encrypted directory (fscrypt 0.3.x, cmd/fscrypt/status.go):
 *
 *   "DIR" is encrypted with fscrypt.
 *
 *   Policy:   8467093d8208ea34faf239bcaf8cc47f
 *   Options:  padding:32 contents:AES_256_XTS filenames:AES_256_CTS policy_version:2
 *   Unlocked: Yes
 *
 *   Protected with 2 protectors:
 *   PROTECTOR         LINKED   DESCRIPTION
 *   e1a6eba2474e506f  Yes (/)  login protector for alice
 *   6d46596a3f140165  No       custom protector "Recovery passphrase for P"
 *
 * Returns null for text of another shape (fscrypt's wording is its own: a change is refused,
 * never guessed at). The login protector's mount point is the LINKED column's, else `localMount`.
 */
export function parseFscryptStatus(text: string, user: string, localMount: string): FscryptDirStatus | null {
  const policy = /^Policy:\s+([0-9a-f]{16,64})\s*$/m.exec(text)?.[1];
  const unlocked = /^Unlocked:\s+(Yes|No|Partially)\b/m.exec(text)?.[1] as FscryptDirStatus['unlocked'] | undefined;
  if (policy === undefined || unlocked === undefined) return null;
  return { policy, unlocked, loginProtector: parseLoginProtector(text, user, localMount) };
}

/**
 * `user`'s login protector in a PROTECTOR/LINKED/DESCRIPTION table of `fscrypt status`, as
 * MOUNTPOINT:ID (the LINKED column's mount point, else `localMount`: the table's own); null if
 * there is none. Also reads `fscrypt status /`, where the login protectors themselves are.
 */
export function parseLoginProtector(text: string, user: string, localMount: string): string | null {
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{16})\s+(?:Yes \((.+)\)|No)\s+login protector for (\S+)\s*$/.exec(line);
    if (m !== null && m[3] === user) return `${m[2] ?? localMount}:${m[1]}`;
  }
  return null;
}

/** The file fscrypt writes into a directory it gives a recovery passphrase (cmd/fscrypt/commands.go). */
export const FSCRYPT_RECOVERY_README = 'fscrypt_recovery_readme.txt';

/**
 * What the admin is told about the PAM stacks, from whether Debian's common-auth and
 * common-session call pam_fscrypt.so (null: the file is not there, as on other distributions);
 * null when both do.
 */
export function pamFscryptNote(auth: boolean | null, session: boolean | null): string | null {
  if (auth === null && session === null) {
    return "Make sure the login stacks call pam_fscrypt.so in auth and session (see fscrypt's README): without it no login unlocks the directory.";
  }
  const missing = [auth !== true ? 'common-auth' : '', session !== true ? 'common-session' : ''].filter(Boolean);
  if (missing.length === 0) return null;
  return `pam_fscrypt.so is not in /etc/pam.d/${missing.join(' nor /etc/pam.d/')}: no login unlocks the directory until it is (Debian: pam-auth-update --enable fscrypt).`;
}
