/**
 * Pure parsers for the small per-user config files ecryptfs-utils reads.
 * They work on raw bytes (files may hold anything) and never do I/O.
 */
import { AgentError } from '../errors';
import { SALT_SIZE } from './kdf';

export const MAX_CONFIG_BYTES = 4096;

const HEX_SIG = /^[0-9a-fA-F]{16}$/;
const LOWER_HEX_SIG = /^[0-9a-f]{16}$/;

function badConfig(file: string, message: string): AgentError {
  return new AgentError('BAD_CONFIG', `${file}: ${message}`);
}

function checkSize(buf: Buffer, file: string): void {
  if (buf.length > MAX_CONFIG_BYTES) throw badConfig(file, `larger than ${MAX_CONFIG_BYTES} bytes`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Buffer, file: string, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw badConfig(file, `${what} is not valid UTF-8`);
  }
}

/** Control characters (NUL, CR, TAB, ESC…) have no business in a mount path and can hide tricks. */
function checkPath(path: string, file: string, what: string): string {
  if (path.length === 0) throw badConfig(file, `${what} is empty`);
  if (/[\x00-\x1f\x7f]/.test(path)) throw badConfig(file, `${what} contains control characters`);
  if (!path.startsWith('/')) throw badConfig(file, `${what} "${path}" is not an absolute path`);
  return path;
}

export interface PrivateSig {
  /** File-content key sig (line 1). */
  fekSig: string;
  /** Filename key sig (line 2), when filename encryption is on. */
  fnekSig?: string;
}

/**
 * ~/.ecryptfs/<alias>.sig, with mount.ecryptfs_private's fetch_sig rules: at most two lines are read;
 * each may hold only hex digits and whitespace, is cut at the first whitespace and, when non-empty,
 * must be 16 characters long. Line 1 is required. Case is kept (keys are looked up verbatim).
 * Whitespace is isspace() in the C locale the tool runs in: space, \t, \v, \f, \r; not U+00A0
 * (byte 0xa0 in Latin-1), which a JavaScript \s or trim() would also take.
 */
export function parsePrivateSig(buf: Buffer, file = 'Private.sig'): PrivateSig {
  checkSize(buf, file);
  const lines = buf.toString('latin1').split('\n').slice(0, 2);
  const sigs: (string | undefined)[] = lines.map((line, i) => {
    if (!/^[0-9a-fA-F \t\v\f\r]*$/.test(line)) {
      throw new AgentError('BAD_SIG', `${file} line ${i + 1}: invalid hex signature`);
    }
    const sig = line.split(/[ \t\v\f\r]/, 1)[0] ?? '';
    if (sig.length === 0) return undefined;
    if (!HEX_SIG.test(sig)) throw new AgentError('BAD_SIG', `${file} line ${i + 1}: invalid hex signature length ${sig.length}`);
    return sig;
  });
  const fekSig = sigs[0];
  if (fekSig === undefined) throw new AgentError('BAD_SIG', `${file} line 1: missing file encryption signature`);
  const fnekSig = sigs[1];
  return fnekSig === undefined ? { fekSig } : { fekSig, fnekSig };
}

/** Same bytes ecryptfs-setup-private writes: one lowercase sig per line, each ending in '\n'. */
export function renderPrivateSig(sigs: PrivateSig): Buffer {
  const all = sigs.fnekSig === undefined ? [sigs.fekSig] : [sigs.fekSig, sigs.fnekSig];
  for (const sig of all) {
    if (!LOWER_HEX_SIG.test(sig)) throw new AgentError('BAD_SIG', `Invalid key signature "${sig}"`);
  }
  return Buffer.from(all.map((s) => `${s}\n`).join(''), 'latin1');
}

/**
 * ~/.ecryptfs/Private.mnt: the mount point is the first line (up to '\n');
 * no file (undefined) means `${home}/Private`, as in ecryptfs_fetch_private_mnt.
 */
export function parsePrivateMnt(buf: Buffer | undefined, home: string, file = 'Private.mnt'): string {
  if (buf === undefined) return `${home.replace(/\/+$/, '')}/Private`;
  checkSize(buf, file);
  const newline = buf.indexOf(0x0a);
  const firstLine = newline === -1 ? buf : buf.subarray(0, newline);
  return checkPath(decodeUtf8(firstLine, file, 'the mount point'), file, 'the mount point');
}

/**
 * `salt=<16 hex>` from ~/.ecryptfsrc (other keys are ignored). Returns undefined when absent,
 * meaning the default salt. A malformed salt is an error rather than silently the default,
 * because the wrong salt yields a different key.
 */
export function parseEcryptfsrcSalt(buf: Buffer, file = '.ecryptfsrc'): Buffer | undefined {
  checkSize(buf, file);
  const lines = buf.toString('latin1').split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq === -1 || line.slice(0, eq).trim() !== 'salt') continue;
    const value = line.slice(eq + 1).trim();
    if (!new RegExp(`^[0-9a-fA-F]{${SALT_SIZE * 2}}$`).test(value)) {
      throw badConfig(file, `line ${i + 1}: salt must be ${SALT_SIZE * 2} hexadecimal characters`);
    }
    return Buffer.from(value, 'hex');
  }
  return undefined;
}

/** getmntent's field decoding: \040 space, \011 tab, \012 newline, \134 and \\ backslash. */
function decodeMntField(field: string): string {
  return field.replace(/\\(040|011|012|134|\\)/g, (_m, code: string) => (code === '\\' ? '\\' : String.fromCharCode(parseInt(code, 8))));
}

export interface AliasConf {
  /** Encrypted (lower) directory. */
  lower: string;
  /** Mount point (upper). */
  upper: string;
}

/**
 * ~/.ecryptfs/<alias>.conf read like mount.ecryptfs_private's read_config (getmntent):
 * the first non-blank, non-comment line `SRC DEST ecryptfs [OPTS]`; OPTS must be empty or "none".
 */
export function parseAliasConf(buf: Buffer, file = 'alias.conf'): AliasConf {
  checkSize(buf, file);
  const text = decodeUtf8(buf, file, 'the file');
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `line ${i + 1}`;
    const fields = line.split(/[ \t]+/);
    if (fields.length < 3) throw badConfig(file, `${where}: expected "SOURCE MOUNTPOINT ecryptfs [OPTIONS]"`);
    const [src, dest, type, opts = ''] = fields as [string, string, string, string?];
    if (type !== 'ecryptfs') throw badConfig(file, `${where}: bad fs type "${type}" (must be ecryptfs)`);
    if (opts !== '' && opts !== 'none') throw badConfig(file, `${where}: mount options are not supported here`);
    return {
      lower: checkPath(decodeMntField(src), file, `${where}: the source`),
      upper: checkPath(decodeMntField(dest), file, `${where}: the mount point`),
    };
  }
  throw badConfig(file, 'no mount entry');
}
