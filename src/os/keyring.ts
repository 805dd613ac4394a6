/**
 * Kernel keyring wrappers (raw keyctl via the addon) and the eCryptfs-level
 * operations on auth toks. Keyring behaviour established on the real kernel is
 * documented in docs/keyring.md with the test that proves each claim.
 *
 * Which keyring "@u" is depends on the REAL uid of the calling process, and new keys
 * are owned by its fsuid: call these inside credentials.asUser() when acting for a user.
 */
import { endianness } from 'node:os';
import { AgentError, errnoOf } from '../errors';
import { AUTH_TOK_SIZE, embeddedSig, isAuthTok, isSig } from '../formats/auth-tok';
import { call, native } from './native';

/** Special keyring ids (linux/keyctl.h KEY_SPEC_*). */
export const KEY_SPEC = {
  THREAD: -1,
  PROCESS: -2,
  SESSION: -3,
  USER: -4,
  USER_SESSION: -5,
  GROUP: -6,
  REQKEY_AUTH: -7,
  REQUESTOR: -8,
} as const;


export interface KeyDescription {
  type: string;
  uid: number;
  gid: number;
  perm: number;
  description: string;
}

/**
 * KEY_SPEC_USER_KEYRING names the keyring of the REAL uid. Root acting for a user keeps its real
 * uid 0 for file work (credentials.asUser 'files' mode), where @u would be root's own keyring:
 * such code must name the user's keyring by its serial (unlock.possessUserKeyring). This refuses
 * the special id with a real uid 0 and another effective uid, so that mistake cannot pass silently.
 */
function checkUserKeyringSpec(keyring: number): void {
  if (keyring !== KEY_SPEC.USER) return;
  const ids = native().getresuid();
  if (ids.ruid === 0 && ids.euid !== 0) {
    throw new AgentError('USAGE', `KEY_SPEC_USER_KEYRING is ambiguous with real uid ${ids.ruid} and effective uid ${ids.euid}: name the user keyring by its serial`);
  }
}

export function addUserKey(description: string, payload: Buffer, keyring: number): number {
  checkUserKeyringSpec(keyring);
  return call('keyring', `add_key(user, ${description})`, (n) => n.addKey('user', description, payload, keyring));
}

const MISSING = new Set(['ENOKEY', 'EKEYEXPIRED', 'EKEYREVOKED']);

/** Serial of the "user" key with that description reachable from keyring, or null (none, expired or revoked). */
export function searchUserKey(description: string, keyring: number): number | null {
  checkUserKeyringSpec(keyring);
  try {
    return call('keyring', `search for ${description}`, (n) => n.keyctlSearch(keyring, 'user', description, 0));
  } catch (e) {
    if (MISSING.has(errnoOf(e) ?? '')) return null;
    throw e;
  }
}

export function readKey(id: number): Buffer {
  return call('keyring', `read key ${id}`, (n) => n.keyctlRead(id));
}

export function linkKey(id: number, keyring: number): void {
  checkUserKeyringSpec(id);
  checkUserKeyringSpec(keyring);
  call('keyring', `link ${id} into ${keyring}`, (n) => n.keyctlLink(id, keyring));
}

export function unlinkKey(id: number, keyring: number): void {
  call('keyring', `unlink ${id} from ${keyring}`, (n) => n.keyctlUnlink(id, keyring));
}

export function describeKey(id: number): KeyDescription {
  const raw = call('keyring', `describe key ${id}`, (n) => n.keyctlDescribe(id));
  // "type;uid;gid;perm;description" — the description itself may contain ';'.
  const parts = raw.split(';');
  if (parts.length < 5) throw new AgentError('KEYRING', `unexpected key description "${raw}"`);
  const [type, uid, gid, perm] = parts as [string, string, string, string];
  return { type, uid: Number(uid), gid: Number(gid), perm: parseInt(perm, 16), description: parts.slice(4).join(';') };
}

/** Serials linked directly in a keyring (reading a keyring yields an array of native-endian u32). */
export function listKeyring(keyring: number): number[] {
  checkUserKeyringSpec(keyring);
  const buf = readKey(keyring);
  const out: number[] = [];
  const le = endianness() === 'LE';
  for (let off = 0; off + 4 <= buf.length; off += 4) out.push(le ? buf.readInt32LE(off) : buf.readInt32BE(off));
  return out;
}

/** Seconds until expiry; 0 clears the timeout. */
export function setKeyTimeout(id: number, seconds: number): void {
  call('keyring', `set timeout of ${id}`, (n) => n.keyctlSetTimeout(id, seconds));
}

/** Joins (creating it if needed) the named session keyring, or a new anonymous one. */
export function joinSessionKeyring(name?: string): number {
  return call('keyring', 'join session keyring', (n) => n.keyctlJoinSessionKeyring(name ?? null));
}

export function getKeyringId(spec: number, create: boolean): number {
  checkUserKeyringSpec(spec);
  return call('keyring', `keyring id of ${spec}`, (n) => n.keyctlGetKeyringId(spec, create));
}

export function revokeKey(id: number): void {
  call('keyring', `revoke ${id}`, (n) => n.keyctlRevoke(id));
}

export function invalidateKey(id: number): void {
  call('keyring', `invalidate ${id}`, (n) => n.keyctlInvalidate(id));
}

/**
 * Links the caller's @u (by REAL uid) into its process keyring @p and returns @u's serial.
 * Keys are "possessed" only when reachable from the thread/process/session keyrings;
 * without possession a user key (perm 3f010000) cannot be read, linked or given a timeout,
 * and request_key (mount(2)) does not see it. @p survives later set*id calls, so root
 * keeps possession after asUser returns. Idempotent.
 */
export function possessUserKeyring(): number {
  linkKey(KEY_SPEC.USER, KEY_SPEC.PROCESS);
  return getKeyringId(KEY_SPEC.USER, false);
}

// ---------------------------------------------------------------- eCryptfs

/**
 * Adds an auth tok like ecryptfs_add_auth_tok_to_keyring: if a usable "user" key with that
 * description is already reachable from `keyring` it is left alone (added:false) — never
 * replaced. Input is validated before anything touches the kernel, so a bad sig or payload
 * adds nothing. `timeoutSeconds` puts an expiry on a key this call adds (setting it needs
 * possession, so @u is first linked into @p: possessUserKeyring); if that fails the key is
 * unlinked again (nothing half-added). Over an EXPIRED key of the same description add_key
 * updates that key in place (same serial, expiry reset): reported as added:true.
 */
export function insertAuthTok(
  sig: string,
  payload: Buffer,
  keyring: number = KEY_SPEC.USER,
  opts: { timeoutSeconds?: number } = {},
): { id: number; added: boolean } {
  if (!isSig(sig)) throw new AgentError('BAD_SIG', `"${String(sig).slice(0, 40)}" is not a 16-hex-digit signature`);
  if (!Buffer.isBuffer(payload) || payload.length !== AUTH_TOK_SIZE) {
    throw new AgentError('BAD_AUTH_TOK', `auth tok for ${sig} must be ${AUTH_TOK_SIZE} bytes, got ${Buffer.isBuffer(payload) ? payload.length : typeof payload}`);
  }
  if (!isAuthTok(payload)) throw new AgentError('BAD_AUTH_TOK', `auth tok for ${sig} does not start with version bytes 04 00`);
  if (embeddedSig(payload)?.toLowerCase() !== sig.toLowerCase()) {
    throw new AgentError('SIG_MISMATCH', `auth tok signature field does not match ${sig}`);
  }
  const existing = searchUserKey(sig, keyring);
  if (existing !== null) return { id: existing, added: false };
  if (opts.timeoutSeconds !== undefined) {
    if (!Number.isInteger(opts.timeoutSeconds) || opts.timeoutSeconds < 0) throw new AgentError('USAGE', 'timeoutSeconds must be a non-negative integer');
    possessUserKeyring();
  }
  const id = addUserKey(sig, payload, keyring);
  if (opts.timeoutSeconds !== undefined) {
    try {
      setKeyTimeout(id, opts.timeoutSeconds);
    } catch (e) {
      try {
        unlinkKey(id, keyring);
      } catch {
        /* reported through e below; the key has no other link we made */
      }
      throw e;
    }
  }
  return { id, added: true };
}

/** Unlinks the auth tok with that sig from keyring (ecryptfs_remove_auth_tok_from_keyring). False if absent. */
export function removeAuthTok(sig: string, keyring: number = KEY_SPEC.USER): boolean {
  if (!isSig(sig)) throw new AgentError('BAD_SIG', `"${String(sig).slice(0, 40)}" is not a 16-hex-digit signature`);
  const id = searchUserKey(sig, keyring);
  if (id === null) return false;
  unlinkKey(id, keyring);
  return true;
}

export interface AuthTokEntry {
  id: number;
  sig: string;
  /** owner uid of the key */
  uid: number;
}

/**
 * Auth toks linked directly in keyring: "user" keys whose description is a sig and whose
 * payload reads as a 740-byte auth tok. Keys we cannot describe or read are not ours.
 */
export function listAuthToks(keyring: number = KEY_SPEC.USER): AuthTokEntry[] {
  const out: AuthTokEntry[] = [];
  for (const id of listKeyring(keyring)) {
    let d: KeyDescription;
    let payload: Buffer;
    try {
      d = describeKey(id);
      if (d.type !== 'user' || !isSig(d.description)) continue;
      payload = readKey(id);
    } catch {
      continue; // no view/read permission, expired or revoked: not ours to report
    }
    const ok = isAuthTok(payload);
    payload.fill(0);
    if (ok) out.push({ id, sig: d.description, uid: d.uid });
  }
  return out;
}
