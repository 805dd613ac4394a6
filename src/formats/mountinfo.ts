/**
 * eCryptfs mount options and /proc/PID/mountinfo: pure rendering and parsing (no I/O). The
 * mount(2)/umount2(2) calls and reading the table are os/mount.ts.
 */
import { AgentError } from '../errors';
import { isSig } from './auth-tok';
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
} as const;

export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4, UMOUNT_NOFOLLOW: 8 } as const;

export interface EcryptfsOptions {
  sigs: string[];
  fnekSig?: string;
  /** default 'aes' */
  cipher?: string;
  /** default 16 */
  keyBytes?: number;
  /** default false */
  passthrough?: boolean;
  /** default true */
  unlinkSigs?: boolean;
  /** default true */
  checkDevRuid?: boolean;
  fnCipher?: string;
  fnKeyBytes?: number;
  xattrMetadata?: boolean;
  encryptedView?: boolean;
  mountAuthTokOnly?: boolean;
}

const CIPHER = /^[a-z0-9_]{1,32}$/i; // kernel crypto names: aes, des3_ede, cast6, twofish…

function checkSig(s: unknown, what: string): string {
  if (!isSig(s)) throw new AgentError('BAD_SIG', `${what} "${String(s).slice(0, 40)}" is not 16 hex digits`);
  return s;
}

function checkCipher(c: unknown, what: string): string {
  if (typeof c !== 'string' || !CIPHER.test(c)) throw new AgentError('BAD_CONFIG', `${what} "${String(c).slice(0, 40)}" is not a cipher name`);
  return c;
}

function checkKeyBytes(n: unknown, what: string): number {
  // ECRYPTFS_MAX_KEY_BYTES = 64
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) throw new AgentError('BAD_CONFIG', `${what} must be an integer 1..64`);
  return n;
}

/**
 * The eCryptfs mount data string. Defaults and order equal mount.ecryptfs_private's:
 * `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=S[,ecryptfs_fnek_sig=F]`.
 * Every value is validated, so no ',' or '=' can inject another option.
 */
export function renderEcryptfsOptions(o: EcryptfsOptions): string {
  if (!Array.isArray(o.sigs) || o.sigs.length === 0) throw new AgentError('BAD_SIG', 'at least one ecryptfs_sig is required');
  const out: string[] = [];
  if (o.checkDevRuid ?? true) out.push('ecryptfs_check_dev_ruid');
  out.push(`ecryptfs_cipher=${checkCipher(o.cipher ?? 'aes', 'cipher')}`);
  out.push(`ecryptfs_key_bytes=${checkKeyBytes(o.keyBytes ?? 16, 'keyBytes')}`);
  if (o.passthrough) out.push('ecryptfs_passthrough');
  if (o.xattrMetadata) out.push('ecryptfs_xattr_metadata');
  if (o.encryptedView) out.push('ecryptfs_encrypted_view');
  if (o.unlinkSigs ?? true) out.push('ecryptfs_unlink_sigs');
  for (const s of o.sigs) out.push(`ecryptfs_sig=${checkSig(s, 'sig')}`);
  if (o.fnekSig !== undefined) out.push(`ecryptfs_fnek_sig=${checkSig(o.fnekSig, 'fnekSig')}`);
  if (o.fnCipher !== undefined) out.push(`ecryptfs_fn_cipher=${checkCipher(o.fnCipher, 'fnCipher')}`);
  if (o.fnKeyBytes !== undefined) out.push(`ecryptfs_fn_key_bytes=${checkKeyBytes(o.fnKeyBytes, 'fnKeyBytes')}`);
  if (o.mountAuthTokOnly) out.push('ecryptfs_mount_auth_tok_only');
  return out.join(',');
}

export interface MountInfoEntry {
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** root of the mount within its filesystem (unescaped) */
  root: string;
  /** mount point (unescaped) */
  mountPoint: string;
  /** per-mount options, e.g. "rw,nosuid,nodev" */
  mountOptions: string;
  /** optional fields such as "shared:1", "master:2" */
  optionalFields: string[];
  fsType: string;
  /** mount source (unescaped), e.g. /home/alice/.Private */
  source: string;
  /** per-superblock options, kept escaped: split on ',' first, then unescapeMountField each value */
  superOptions: string;
}

/** Undoes the kernel's octal escaping (\040 space, \011 tab, \012 newline, \134 backslash). Byte-exact for UTF-8 paths. */
export function unescapeMountField(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x5c && i + 3 < bytes.length && /^[0-7]{3}$/.test(bytes.toString('latin1', i + 1, i + 4))) {
      out.push(parseInt(bytes.toString('latin1', i + 1, i + 4), 8) & 0xff);
      i += 3;
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out).toString('utf8');
}

function badLine(n: number, why: string): AgentError {
  return new AgentError('IO', `malformed mountinfo line ${n}: ${why}`);
}

/** Parses /proc/PID/mountinfo text (proc(5)). Blank lines are skipped; malformed lines throw IO. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) throw badLine(i + 1, 'too few fields');
    const [mountId, parentId, dev, root, mountPoint, mountOptions] = f as [string, string, string, string, string, string];
    const m = /^(\d+):(\d+)$/.exec(dev);
    if (!/^\d+$/.test(mountId) || !/^\d+$/.test(parentId) || !m) throw badLine(i + 1, 'bad ids');
    out.push({
      mountId: Number(mountId),
      parentId: Number(parentId),
      major: Number(m[1]),
      minor: Number(m[2]),
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      mountOptions,
      optionalFields: f.slice(6, sep),
      fsType: unescapeMountField(f[sep + 1]!),
      source: unescapeMountField(f[sep + 2]!),
      superOptions: f.slice(sep + 3).join(' '),
    });
  }
  return out;
}

/** ecryptfs_sig= and ecryptfs_fnek_sig= values of an eCryptfs mount, separately. */
export function parseEcryptfsSigs(entry: MountInfoEntry): { sigs: string[]; fnekSig?: string } {
  const sigs: string[] = [];
  let fnekSig: string | undefined;
  for (const opt of entry.superOptions.split(',')) {
    const eq = opt.indexOf('=');
    if (eq < 0) continue;
    const name = opt.slice(0, eq);
    const value = unescapeMountField(opt.slice(eq + 1));
    if ((name === 'ecryptfs_sig' || name === 'sig') && isSig(value)) sigs.push(value);
    else if (name === 'ecryptfs_fnek_sig' && isSig(value)) fnekSig = value;
  }
  return fnekSig === undefined ? { sigs } : { sigs, fnekSig };
}

/** All sigs a mount uses (file sigs, then the FNEK sig). */
export function sigsOfMount(entry: MountInfoEntry): string[] {
  const { sigs, fnekSig } = parseEcryptfsSigs(entry);
  return fnekSig === undefined ? sigs : [...sigs, fnekSig];
}
