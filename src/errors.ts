/**
 * Typed errors. Every error the library raises is an AgentError with a stable
 * `code`; `hintFor(code)` is the one table that tells the user what to try next
 * (the CLI prints it, the agent sends it through the PAM conversation).
 */

export type ErrorCode =
  // wrapped-passphrase and key formats
  | 'WRONG_PASSWORD'
  | 'CORRUPT_FILE'
  | 'UNSUPPORTED_VERSION'
  | 'PASSPHRASE_TOO_LONG'
  | 'PASSPHRASE_EMPTY'
  | 'PASSPHRASE_NUL'
  | 'SIG_MISMATCH'
  | 'BAD_AUTH_TOK'
  | 'BAD_SIG'
  | 'BAD_CONFIG'
  | 'BAD_CIPHER'
  | 'SIG_NOT_CACHED'
  | 'WRONG_MOUNT_PASSPHRASE'
  // files and paths
  | 'NOT_FOUND'
  | 'NOT_REGULAR_FILE'
  | 'SYMLINK_REFUSED'
  | 'BAD_OWNER'
  | 'UNSAFE_PATH'
  | 'ALREADY_EXISTS'
  | 'NOT_ECRYPTFS_DIR'
  | 'NOT_YOURS'
  | 'SETUP_INCOMPLETE'
  | 'IO'
  // kernel edges
  | 'KEYRING'
  | 'KEY_NOT_FOUND'
  | 'KEY_QUOTA'
  | 'MOUNT'
  | 'UNMOUNT_BUSY'
  | 'LOCK_TIMEOUT'
  | 'NO_ECRYPTFS'
  | 'CIPHER_UNAVAILABLE'
  | 'NOT_MOUNTED'
  | 'NO_SUCH_USER'
  | 'PERMISSION'
  | 'NATIVE'
  // migrate-home
  | 'IN_USE'
  | 'NO_SPACE'
  | 'NAME_TOO_LONG'
  | 'VERIFY_FAILED'
  | 'NO_FS_ENCRYPTION'
  | 'FSCRYPT'
  // usage
  | 'USAGE'
  | 'CANCELLED';

const HINTS: Record<ErrorCode, string> = {
  WRONG_PASSWORD: 'Check the passphrase; if you changed your login password, rewrap with the old one: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase',
  CORRUPT_FILE: 'The file is damaged; restore it from a backup or rewrap your recorded mount passphrase with ecryptfs-agent wrap-passphrase',
  UNSUPPORTED_VERSION: 'This wrapped-passphrase version is not supported; only v1 and v2 files (ecryptfs-utils <= 111) are',
  PASSPHRASE_TOO_LONG: 'Use a passphrase of at most 64 bytes',
  PASSPHRASE_EMPTY: 'Use a passphrase of at least 1 byte',
  PASSPHRASE_NUL: 'Use a passphrase without NUL bytes (ecryptfs-utils cuts passphrases at the first NUL)',
  SIG_MISMATCH: 'The unwrapped passphrase does not match ~/.ecryptfs/Private.sig; the wrapped file or Private.sig is damaged or from another setup',
  BAD_AUTH_TOK: 'The eCryptfs auth token is malformed (must be 740 bytes, version 0x0004); this is a bug, please report it',
  BAD_SIG: 'A signature must be 16 hexadecimal characters; check ~/.ecryptfs/Private.sig',
  BAD_CONFIG: 'Fix or recreate the file named in the message (see ecryptfs-agent(1), FILES)',
  BAD_CIPHER: 'Pick a cipher and key size from the list in ecryptfs-agent mount --help',
  SIG_NOT_CACHED: 'Check the passphrase; if it is right, run again with --yes to record its signature (or --no-sig-cache to skip the check)',
  WRONG_MOUNT_PASSPHRASE:
    'Type the mount passphrase recorded at setup (ecryptfs-setup-private makes 32 hex characters; "ecryptfs-agent recovery" shows it while the login password still works), or use the wrapped-passphrase file and its login password',
  NOT_FOUND: 'Create it, or run ecryptfs-agent setup-private',
  NOT_REGULAR_FILE: 'Replace it with a regular file',
  SYMLINK_REFUSED: 'Replace the symbolic link with the real file or directory',
  BAD_OWNER: 'The file or directory must be owned by the user (chown it)',
  UNSAFE_PATH: 'Choose a mount point inside your own home directory that you own',
  ALREADY_EXISTS: 'Move the existing file away first, or pass --force where offered',
  NOT_ECRYPTFS_DIR: 'Name the encrypted directory (.Private: files with eCryptfs headers, names that may start with ECRYPTFS_FNEK_ENCRYPTED.) or the home directory that holds it',
  NOT_YOURS: 'Nothing of another user was touched. Fix the entry that names it (~/.ecryptfs/Private.mnt, an extra-mount line) so that it names your own directory',
  SETUP_INCOMPLETE:
    'Restore the missing file from a backup, or recreate ~/.ecryptfs/Private.sig from your mount passphrase: ecryptfs-agent unwrap-passphrase ~/.ecryptfs/wrapped-passphrase | ecryptfs-agent add-passphrase --fnek - prints its two sigs (write them one per line; only the first without filename encryption)',
  IO: 'Check free space, permissions and the system log',
  KEYRING: 'Check the kernel keyring (keyctl show @u) and the system log',
  KEY_NOT_FOUND: 'Unlock first: ecryptfs-agent unlock (or ecryptfs-agent insert-wrapped-passphrase)',
  KEY_QUOTA: 'The user keyring is full; remove unused keys (ecryptfs-agent forget) or raise /proc/sys/kernel/keys/maxkeys',
  MOUNT: 'Check the system log (journalctl -t ecryptfs-agent, dmesg) for the kernel reason',
  UNMOUNT_BUSY: 'Close the programs still using the directory (fuser -vm DIR) and try again',
  LOCK_TIMEOUT: 'Another login or unlock for this user is still running; wait and try again',
  NO_ECRYPTFS: 'Load the module: modprobe ecryptfs (package linux-image with CONFIG_ECRYPT_FS)',
  CIPHER_UNAVAILABLE: 'Load the cipher (modprobe crypto-NAME) or choose one the kernel lists in /proc/crypto',
  NOT_MOUNTED: 'Name the directory an eCryptfs file system is mounted on (grep ecryptfs /proc/self/mounts)',
  NO_SUCH_USER: 'Check the user name',
  PERMISSION: 'Run as root, or as the user who owns the files',
  NATIVE: 'Rebuild the native addon: npm run build:native',
  IN_USE: 'Log the user out and end their processes (loginctl terminate-user USER, or pkill -u USER), then try again',
  NO_SPACE: 'Free space on that filesystem (or move data out of the home), then try again',
  NAME_TOO_LONG: 'Rename the files listed (eCryptfs stores at most 143-byte names with filename encryption), or migrate with --no-fnek',
  VERIFY_FAILED: 'Nothing was removed: the plaintext original is intact. Check the disk and the kernel log (dmesg), then run migrate-home again to resume',
  NO_FS_ENCRYPTION: 'fscrypt needs ext4 with the encrypt feature on a kernel with CONFIG_FS_ENCRYPTION; the message names what is missing. Without it, migrate-out --to plain on a LUKS-encrypted disk is the way',
  FSCRYPT: 'fscrypt refused (its message is above); fscrypt status DIR shows the directory. Nothing of the eCryptfs side was changed: run migrate-out again to resume',
  USAGE: 'See ecryptfs-agent --help',
  CANCELLED: 'Nothing was changed; run the command again when you are ready',
};

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  /** errno name from a failed system call, when there was one (e.g. 'ENOKEY'). */
  readonly errno?: string;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; errno?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AgentError';
    this.code = code;
    this.hint = opts.hint ?? HINTS[code];
    if (opts.errno !== undefined) this.errno = opts.errno;
  }
}

/** errno name of a failed system call (native, Node fs, or kept in an AgentError), if any. */
export function errnoOf(e: unknown): string | undefined {
  if (e instanceof AgentError) return e.errno;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Anything thrown, as an AgentError: itself when it is one, else `code` with its message. */
export function asAgentError(e: unknown, code: ErrorCode = 'IO'): AgentError {
  if (e instanceof AgentError) return e;
  const errno = errnoOf(e);
  return new AgentError(code, (e as Error)?.message ?? String(e), { cause: e, ...(errno === undefined ? {} : { errno }) });
}

export function hintFor(code: ErrorCode): string {
  return HINTS[code];
}

export function isAgentError(e: unknown, code?: ErrorCode): e is AgentError {
  return e instanceof AgentError && (code === undefined || e.code === code);
}
