/**
 * Extra eCryptfs mounts at login (docs/extra-mounts.md): the two formats and the decisions,
 * no I/O. The agent runs as root and mounts on the user's behalf, so everything here is
 * hostile input: paths must be absolute and normal, the mount point inside the user's home,
 * and only the eCryptfs options understood below reach the kernel (never suid/dev; nosuid and
 * nodev are always set, as mount.ecryptfs_private does).
 *
 * Sources, mounted in this order:
 *  1. /etc/fstab: `ecryptfs` lines with `user` (or `users`) and `noauto` whose mount point lies
 *     inside the user's home (fstab(5) syntax, octal escapes such as \040 for a space);
 *  2. ~/.ecryptfs/extra-mounts, the user's own list, same line syntax:
 *     `LOWER UPPER ecryptfs ecryptfs_sig=S[,OPTION...]`.
 * A bad line is reported with its file, line number and fix, and only that line is dropped.
 */
import { AgentError, type ErrorCode } from '../errors';
import { isSig } from './auth-tok';
import { type EcryptfsOptions, type MountInfoEntry, sigsOfMount, unescapeMountField } from './mountinfo';
import { checkMountPointSyntax } from './paths';

/** The user's list, in ~/.ecryptfs. */
export const EXTRA_MOUNTS_FILE = 'extra-mounts';
export const FSTAB = '/etc/fstab';
export const MAX_EXTRA_MOUNTS_BYTES = 16 * 1024;
export const MAX_FSTAB_BYTES = 256 * 1024;

export type ExtraMountOrigin = 'fstab' | 'user';

export interface ExtraMountEntry {
  origin: ExtraMountOrigin;
  /** where it was written, for messages: "/etc/fstab line 12" or "~/.ecryptfs/extra-mounts line 3" */
  where: string;
  lower: string;
  upper: string;
  /** what reaches the kernel; checkDevRuid and unlinkSigs are always on */
  ecryptfs: EcryptfsOptions;
  readOnly: boolean;
  noexec: boolean;
}

export interface ExtraMountProblem {
  where: string;
  /** BAD_CONFIG, BAD_SIG or UNSAFE_PATH; the message names the line, the hint says how to fix it */
  error: AgentError;
}

export interface ParsedExtraMounts {
  entries: ExtraMountEntry[];
  problems: ExtraMountProblem[];
}

/** What the parsers need of the user. */
export interface HomeOwner {
  name: string;
  home: string;
}

// ------------------------------------------------------------------ fstab line syntax

/**
 * Splits an fstab(5)-style line into its fields (blanks separate them; \ooo octal escapes, such as
 * \040 for a space, are undone per field). Null for a blank or comment line.
 */
export function splitFstabLine(line: string): string[] | null {
  const trimmed = line.replace(/^[ \t]+/, '');
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  return trimmed
    .split(/[ \t]+/)
    .filter((f) => f !== '')
    .map(unescapeMountField);
}

function lineError(code: ErrorCode, where: string, message: string, fix: string): AgentError {
  return new AgentError(code, `${where}: ${message}`, { hint: fix });
}

// ------------------------------------------------------------------ options

/** Options that only mount(8) or mount.ecryptfs read; harmless, never passed to the kernel. */
const FSTAB_USERSPACE_ONLY = new Set(['defaults', 'auto', 'noauto', 'user', 'users', 'nofail', '_netdev', 'no_sig_cache']);

const UNDERSTOOD_HELP =
  'ecryptfs_sig=, ecryptfs_fnek_sig=, ecryptfs_cipher=, ecryptfs_key_bytes=, ecryptfs_passthrough, ecryptfs_fn_cipher=, ecryptfs_fn_key_bytes=, ' +
  'ecryptfs_xattr_metadata, ecryptfs_encrypted_view, ecryptfs_mount_auth_tok_only, ecryptfs_unlink_sigs, ecryptfs_check_dev_ruid, ro, rw, noexec, exec, nosuid, nodev';

export interface ParsedOptions {
  ecryptfs: EcryptfsOptions;
  readOnly: boolean;
  noexec: boolean;
  /** fstab only: `user` or `users` present */
  userMountable: boolean;
  /** fstab only: the last of auto/noauto is noauto */
  noauto: boolean;
}

function parseYesNo(value: string, name: string, where: string): boolean {
  if (value === 'y' || value === 'yes') return true;
  if (value === 'n' || value === 'no') return false;
  throw lineError('BAD_CONFIG', where, `${name}=${value}: expected y or n`, `Write ${name}=y or ${name}=n`);
}

function parseKeyBytes(value: string, name: string, where: string): number {
  // ECRYPTFS_MAX_KEY_BYTES = 64
  const n = /^[0-9]{1,2}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 64) throw lineError('BAD_CONFIG', where, `${name}=${value}: not a key size`, `Give the key size in bytes, 1..64 (AES: 16, 24 or 32)`);
  return n;
}

function parseCipher(value: string, name: string, where: string): string {
  if (!/^[a-z0-9_]{1,32}$/i.test(value)) throw lineError('BAD_CONFIG', where, `${name}=${value.slice(0, 40)}: not a cipher name`, 'Name a kernel cipher such as aes');
  return value;
}

function parseSigValue(value: string, name: string, where: string): string {
  if (!isSig(value)) {
    throw lineError('BAD_SIG', where, `${name}=${String(value).slice(0, 40)}: a signature is 16 hexadecimal characters`, 'Copy the sig from "ecryptfs-agent keys" or ~/.ecryptfs/Private.sig');
  }
  return value;
}

/**
 * Parses a comma-separated option list. `fstab` also accepts mount(8)'s own words (user,
 * noauto, nofail ...) and applies its rule that `user`/`users` imply noexec unless a later
 * `exec` says otherwise. Throws an AgentError naming `where` and the fix.
 */
export function parseExtraMountOptions(text: string, where: string, source: ExtraMountOrigin): ParsedOptions {
  const sigs: string[] = [];
  const o: EcryptfsOptions = { sigs, checkDevRuid: true, unlinkSigs: true };
  const out: ParsedOptions = { ecryptfs: o, readOnly: false, noexec: false, userMountable: false, noauto: false };
  const seen = new Set<string>();
  let fnekWanted: boolean | undefined;
  const once = (name: string): void => {
    if (seen.has(name)) throw lineError('BAD_CONFIG', where, `${name} is given twice`, `Keep one ${name}`);
    seen.add(name);
  };
  for (const opt of text.split(',')) {
    if (opt === '') throw lineError('BAD_CONFIG', where, 'empty option (two commas, or a comma at an end)', 'Remove the extra comma');
    const eq = opt.indexOf('=');
    const name = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? undefined : opt.slice(eq + 1);
    const needValue = (): string => {
      if (value === undefined || value === '') throw lineError('BAD_CONFIG', where, `${name} needs a value`, `Write ${name}=VALUE`);
      return value;
    };
    const noValue = (): void => {
      if (value !== undefined) throw lineError('BAD_CONFIG', where, `${name} takes no value`, `Write just ${name}`);
    };
    /** An option given at most once (counted under `canonical`), with a value `parse` checks. */
    const onceWithValue = <T>(canonical: string, parse: (value: string, name: string, where: string) => T): T => {
      once(canonical);
      return parse(needValue(), name, where);
    };
    switch (name) {
      case 'ecryptfs_sig':
      case 'sig': {
        const s = parseSigValue(needValue(), name, where);
        if (sigs.includes(s)) throw lineError('BAD_CONFIG', where, `ecryptfs_sig=${s} is given twice`, 'Keep one');
        sigs.push(s);
        break;
      }
      case 'ecryptfs_fnek_sig':
        o.fnekSig = onceWithValue(name, parseSigValue);
        break;
      case 'ecryptfs_cipher':
      case 'cipher':
        o.cipher = onceWithValue('ecryptfs_cipher', parseCipher);
        break;
      case 'ecryptfs_key_bytes':
        o.keyBytes = onceWithValue(name, parseKeyBytes);
        break;
      case 'ecryptfs_fn_cipher':
        o.fnCipher = onceWithValue(name, parseCipher);
        break;
      case 'ecryptfs_fn_key_bytes':
        o.fnKeyBytes = onceWithValue(name, parseKeyBytes);
        break;
      case 'ecryptfs_passthrough':
        once(name);
        // bare (the kernel's form) or =y/=n (mount.ecryptfs's form)
        o.passthrough = value === undefined ? true : parseYesNo(value, name, where);
        break;
      case 'ecryptfs_enable_filename_crypto': // mount.ecryptfs's question, answered by ecryptfs_fnek_sig
        fnekWanted = onceWithValue(name, parseYesNo);
        break;
      case 'ecryptfs_xattr_metadata':
        noValue();
        o.xattrMetadata = true;
        break;
      case 'ecryptfs_encrypted_view':
        noValue();
        o.encryptedView = true;
        break;
      case 'ecryptfs_mount_auth_tok_only':
        noValue();
        o.mountAuthTokOnly = true;
        break;
      case 'ecryptfs_unlink_sigs':
      case 'ecryptfs_check_dev_ruid':
      case 'nosuid':
      case 'nodev':
        noValue(); // always on
        break;
      case 'ro':
      case 'rw':
        noValue();
        out.readOnly = name === 'ro';
        break;
      case 'exec':
      case 'noexec':
        noValue();
        out.noexec = name === 'noexec';
        break;
      case 'suid':
      case 'dev':
        throw lineError('UNSAFE_PATH', where, `"${name}" is never granted: an eCryptfs mount made for a user is always nosuid,nodev`, `Remove ${name}`);
      case 'key':
        throw lineError(
          'BAD_CONFIG',
          where,
          'key= (a mount.ecryptfs key module) is not supported: the agent mounts with the keys already in your keyring',
          'Remove key=...; name the key with ecryptfs_sig=SIG and load it at login (same mount passphrase as ~/Private) or with ecryptfs-agent add-passphrase',
        );
      case 'verbosity':
        if (source !== 'fstab') throw unknownOption(name, where);
        needValue(); // mount.ecryptfs's chattiness: nothing to do here
        break;
      default:
        if (source === 'fstab' && (FSTAB_USERSPACE_ONLY.has(name) || name.startsWith('x-') || name === 'comment')) {
          if (name === 'user' || name === 'users') {
            out.userMountable = true;
            out.noexec = true; // mount(8): user implies noexec,nosuid,nodev unless overridden later
          } else if (name === 'noauto' || name === 'auto') {
            out.noauto = name === 'noauto';
          }
          break;
        }
        throw unknownOption(name, where);
    }
  }
  if (sigs.length === 0) {
    throw lineError('BAD_SIG', where, 'no ecryptfs_sig= option', 'Add ecryptfs_sig=SIG (the key of the encrypted directory; "ecryptfs-agent keys" lists the loaded ones)');
  }
  if (fnekWanted === true && o.fnekSig === undefined) {
    throw lineError('BAD_CONFIG', where, 'ecryptfs_enable_filename_crypto=y without ecryptfs_fnek_sig=', 'Add ecryptfs_fnek_sig=SIG, or remove ecryptfs_enable_filename_crypto');
  }
  if ((o.fnCipher !== undefined || o.fnKeyBytes !== undefined) && o.fnekSig === undefined) {
    throw lineError('BAD_CONFIG', where, 'ecryptfs_fn_cipher/ecryptfs_fn_key_bytes without ecryptfs_fnek_sig=', 'Add ecryptfs_fnek_sig=SIG, or remove them');
  }
  if (o.encryptedView) out.readOnly = true; // the kernel refuses writes to the encrypted view anyway
  return out;
}

function unknownOption(name: string, where: string): AgentError {
  return lineError('BAD_CONFIG', where, `unknown option "${name.slice(0, 40)}"`, `Remove it; understood here: ${UNDERSTOOD_HELP}`);
}

// ------------------------------------------------------------------ paths

function isInside(path: string, dir: string): boolean {
  return dir === '/' ? path !== '/' : path.startsWith(dir + '/');
}

/**
 * Pure path rules: both absolute and normal, no control characters; the mount point strictly
 * inside the home (not the home itself, not ~/.ecryptfs); the mount point not inside the
 * encrypted directory (eCryptfs would see its own plaintext as ciphertext).
 */
export function checkExtraMountPaths(lower: string, upper: string, owner: HomeOwner, where: string): void {
  for (const [what, p] of [['encrypted directory', lower], ['mount point', upper]] as const) {
    if (/[\x00-\x1f\x7f]/.test(p)) throw lineError('UNSAFE_PATH', where, `the ${what} contains control characters (tab, newline ...)`, 'Use a directory whose name has no control characters');
    try {
      checkMountPointSyntax(p);
    } catch {
      throw lineError('UNSAFE_PATH', where, `the ${what} "${p}" is not an absolute, normalised path`, 'Write the full path, without "..", "." or a trailing "/"; \\040 for a space');
    }
  }
  if (!isInside(upper, owner.home)) {
    throw lineError('UNSAFE_PATH', where, `the mount point ${upper} is not inside ${owner.name}'s home ${owner.home}`, `Choose a directory under ${owner.home} that you own`);
  }
  const config = `${owner.home === '/' ? '' : owner.home}/.ecryptfs`;
  if (upper === config || isInside(upper, config)) {
    throw lineError('UNSAFE_PATH', where, `the mount point ${upper} is in ~/.ecryptfs`, 'Choose another directory; ~/.ecryptfs holds your keys and must stay visible');
  }
  if (isInside(upper, lower)) {
    throw lineError('UNSAFE_PATH', where, `the mount point ${upper} is inside the encrypted directory ${lower}`, 'Put the mount point outside the encrypted directory');
  }
}

// ------------------------------------------------------------------ the two files

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(buf: Buffer, file: string): string | AgentError {
  try {
    return utf8.decode(buf);
  } catch {
    return new AgentError('BAD_CONFIG', `${file}: not valid UTF-8`, { hint: 'Save the file as UTF-8 text' });
  }
}

/**
 * Runs lineEntry on the fields of every non-blank, non-comment line (CRLF tolerated): an entry
 * is kept, null passes the line over, an AgentError becomes that line's problem.
 */
function parseLines(buf: Buffer, file: string, lineEntry: (fields: string[], where: string) => ExtraMountEntry | null): ParsedExtraMounts {
  const text = decode(buf, file);
  if (text instanceof AgentError) return { entries: [], problems: [{ where: file, error: text }] };
  const out: ParsedExtraMounts = { entries: [], problems: [] };
  text.split('\n').forEach((raw, i) => {
    const where = `${file} line ${i + 1}`;
    const fields = splitFstabLine(raw.replace(/\r$/, ''));
    if (fields === null) return;
    try {
      const entry = lineEntry(fields, where);
      if (entry !== null) out.entries.push(entry);
    } catch (e) {
      if (!(e instanceof AgentError)) throw e;
      out.problems.push({ where, error: e });
    }
  });
  return out;
}

function entryOf(origin: ExtraMountOrigin, where: string, lower: string, upper: string, opts: string, owner: HomeOwner): ExtraMountEntry {
  const o = parseExtraMountOptions(opts, where, origin);
  checkExtraMountPaths(lower, upper, owner, where);
  return { origin, where, lower, upper, ecryptfs: o.ecryptfs, readOnly: o.readOnly, noexec: o.noexec };
}

/**
 * Parses ~/.ecryptfs/extra-mounts: `LOWER UPPER ecryptfs OPTIONS [0 [0]]` per line (the dump
 * and pass fields of an fstab line are allowed and must be numbers). `display` names the file
 * in messages (e.g. "~/.ecryptfs/extra-mounts").
 */
export function parseUserExtraMounts(buf: Buffer, owner: HomeOwner, display = `~/.ecryptfs/${EXTRA_MOUNTS_FILE}`): ParsedExtraMounts {
  return parseLines(buf, display, (f, where) => {
    if (f.length < 4 || f.length > 6) {
      throw lineError('BAD_CONFIG', where, `expected "LOWER UPPER ecryptfs OPTIONS", found ${f.length} field(s)`, 'Write four fields separated by blanks; \\040 for a space inside a path');
    }
    const [lower, upper, type, opts, ...rest] = f as [string, string, string, string, ...string[]];
    if (type !== 'ecryptfs') throw lineError('BAD_CONFIG', where, `type "${type.slice(0, 40)}" is not ecryptfs`, 'Only eCryptfs mounts are listed here; the third field must be ecryptfs');
    if (rest.some((r) => !/^[0-9]{1,3}$/.test(r))) throw lineError('BAD_CONFIG', where, 'the fields after the options must be numbers (fstab dump and pass)', 'Remove them');
    return entryOf('user', where, lower, upper, opts, owner);
  });
}

/**
 * The user's entries of /etc/fstab: `ecryptfs` lines with `user`/`users` and `noauto` whose
 * mount point is inside the home. Lines of other types, other users, or without user,noauto
 * are not ours and are passed over silently; a line of ours with a bad option or path is a
 * problem (the admin's to fix, and the user is told).
 */
export function parseFstabExtraMounts(buf: Buffer, owner: HomeOwner, file = FSTAB): ParsedExtraMounts {
  return parseLines(buf, file, (f, where) => {
    if (f.length < 4 || f[2] !== 'ecryptfs') return null;
    const [lower, upper, , opts] = f as [string, string, string, string];
    if (!isInside(upper, owner.home)) return null; // another user's, or a system mount
    // Whether the line is meant for users at all: decided on the words alone, so that a line
    // without user,noauto is ignored even when its other options are broken.
    const words = opts.split(',').map((w) => w.split('=')[0]);
    const lastAuto = words.filter((w) => w === 'auto' || w === 'noauto').pop();
    if (!(words.includes('user') || words.includes('users')) || lastAuto !== 'noauto') return null;
    if (f.length > 6) throw lineError('BAD_CONFIG', where, `${f.length} fields; an fstab line has at most 6`, 'Escape blanks inside paths as \\040');
    return entryOf('fstab', where, lower, upper, opts, owner);
  });
}

/** Every sig an entry needs in the keyring: file sigs, then the FNEK sig. */
export function extraMountSigs(e: Pick<ExtraMountEntry, 'ecryptfs'>): string[] {
  return e.ecryptfs.fnekSig === undefined ? [...e.ecryptfs.sigs] : [...e.ecryptfs.sigs, e.ecryptfs.fnekSig];
}

// ------------------------------------------------------------------ decisions

export type ExtraSkipReason =
  /** an earlier login of this user mounted it: kept, counted with the sessions */
  | 'mounted-earlier'
  /** something else is mounted there (by hand, by root): left alone, never unmounted by us */
  | 'mounted-by-other'
  /** the same mount point is listed twice (or is ~/Private's) */
  | 'duplicate'
  | 'keys-missing'
  | 'lower-missing';

export interface ExtraMountFacts {
  mounts: readonly MountInfoEntry[];
  /** what earlier logins mounted and have not unmounted yet */
  recorded: readonly ExtraMountRecord[];
  hasKey(sig: string): boolean;
  lowerPresent(path: string): boolean;
  /** ~/Private's mount point, when the user has one */
  privateUpper?: string;
}

export type ExtraMountPlanItem =
  | { entry: ExtraMountEntry; action: 'mount' }
  | { entry: ExtraMountEntry; action: 'skip'; reason: ExtraSkipReason; detail: string };

/** Pure: which entries to mount now, and why the others are skipped. Order is kept. */
export function planExtraMounts(entries: readonly ExtraMountEntry[], facts: ExtraMountFacts): ExtraMountPlanItem[] {
  const firstAt = new Map<string, string>();
  if (facts.privateUpper !== undefined) firstAt.set(facts.privateUpper, "~/Private's mount point (~/.ecryptfs/Private.mnt)");
  return entries.map((entry): ExtraMountPlanItem => {
    const skip = (reason: ExtraSkipReason, detail: string): ExtraMountPlanItem => ({ entry, action: 'skip', reason, detail });
    const earlier = firstAt.get(entry.upper);
    if (earlier !== undefined) return skip('duplicate', `${entry.upper} is also ${earlier}; this entry is ignored`);
    firstAt.set(entry.upper, `listed at ${entry.where}`);
    const there = facts.mounts.filter((m) => m.mountPoint === entry.upper);
    if (there.length > 0) {
      const top = there[there.length - 1] as MountInfoEntry;
      const ours = top.fsType === 'ecryptfs' && facts.recorded.some((r) => r.upper === entry.upper);
      return ours ? skip('mounted-earlier', 'mounted by an earlier login') : skip('mounted-by-other', `${top.fsType} is already mounted there (not by a login); left alone`);
    }
    const missing = extraMountSigs(entry).filter((s) => !facts.hasKey(s));
    if (missing.length > 0) return skip('keys-missing', `key(s) not in the user keyring: ${missing.join(',')}`);
    if (!facts.lowerPresent(entry.lower)) return skip('lower-missing', `the encrypted directory ${entry.lower} is not there (not mounted yet?)`);
    return { entry, action: 'mount' };
  });
}

/** Whether what is mounted at a recorded extra mount's mount point is still the mount a login made. */
export type RecordedMountCheck = { kind: 'ours' } | { kind: 'gone'; why: string } | { kind: 'foreign'; why: string };

/**
 * Pure: the last logout unmounts a recorded extra mount only when the mount found at its mount
 * point (walked as the user, through fds) is still the one the login made: an eCryptfs mount with
 * the recorded sigs, the recorded mount id and encrypted directory (its root carries the lower
 * directory's inode number), whose files the user owns. Anything else is never touched.
 */
export function checkRecordedMount(r: ExtraMountRecord, uid: number, found: { entry: MountInfoEntry; rootUid: number; rootIno: number } | null): RecordedMountCheck {
  if (found === null) return { kind: 'gone', why: 'nothing is mounted there any more (unmounted by hand?)' };
  const { entry } = found;
  if (entry.fsType !== 'ecryptfs') return { kind: 'foreign', why: `a ${entry.fsType} mount is there now` };
  if (!r.sigs.every((s) => sigsOfMount(entry).includes(s))) return { kind: 'foreign', why: 'an eCryptfs mount with other keys is there now' };
  if (r.mountId !== undefined && entry.mountId !== r.mountId) return { kind: 'foreign', why: `mount ${entry.mountId} is there, the login made mount ${r.mountId}` };
  if (r.lowerIno !== undefined && found.rootIno !== r.lowerIno) return { kind: 'foreign', why: `it shows another encrypted directory than ${r.lower}` };
  if (found.rootUid !== uid) return { kind: 'foreign', why: `its files belong to uid ${found.rootUid}` };
  return { kind: 'ours' };
}

// ------------------------------------------------------------------ what a login recorded

/**
 * One extra eCryptfs mount a login made (docs/extra-mounts.md). The list is kept in the order
 * of mounting, so the last logout unmounts in reverse order; only what is recorded here is
 * ever unmounted by a logout.
 */
export interface ExtraMountRecord {
  upper: string;
  lower: string;
  /** every sig the mount uses (file sigs, then the FNEK sig) */
  sigs: string[];
  /** the line it came from, e.g. "/etc/fstab line 12" */
  where: string;
  /** ISO time of the mount */
  mounted: string;
  /** the mount's id (/proc/self/mountinfo), so the logout unmounts that mount and no other */
  mountId?: number;
  /** inode number of the encrypted directory (an eCryptfs root shows its lower inode's number) */
  lowerIno?: number;
}

function isExtraMountRecord(x: unknown): x is ExtraMountRecord {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.upper === 'string' &&
    r.upper.startsWith('/') &&
    typeof r.lower === 'string' &&
    Array.isArray(r.sigs) &&
    r.sigs.every((s) => typeof s === 'string' && /^[0-9a-fA-F]{16}$/.test(s)) &&
    typeof r.where === 'string' &&
    typeof r.mounted === 'string' &&
    (r.mountId === undefined || (typeof r.mountId === 'number' && Number.isInteger(r.mountId))) &&
    (r.lowerIno === undefined || (typeof r.lowerIno === 'number' && Number.isInteger(r.lowerIno)))
  );
}

/** Pure: parses UID.extra-mounts; a damaged file counts as nothing recorded. */
export function parseExtraMountRecords(text: string): ExtraMountRecord[] {
  try {
    const data: unknown = JSON.parse(text);
    const list = typeof data === 'object' && data !== null ? (data as { mounts?: unknown }).mounts : undefined;
    return Array.isArray(list) ? list.filter(isExtraMountRecord) : [];
  } catch {
    return [];
  }
}
