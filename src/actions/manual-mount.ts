/**
 * Root's `mount LOWER UPPER` / `umount UPPER`: what `mount -t ecryptfs` does with ecryptfs-utils
 * 111's mount.ecryptfs helper, without the helper.
 *
 * The dialog asks what mount.ecryptfs asks, in its order and words (key type, passphrase, cipher,
 * key bytes, plaintext passthrough, filename encryption and its key's sig), but offers only the
 * ciphers and key sizes the running kernel has (src/os/ciphers.ts). Every answer can come from a flag
 * instead; without a terminal every choice must. The key is mount.ecryptfs's: the passphrase with
 * the salt of ~/.ecryptfsrc (else the default salt), one auth tok in root's user keyring, and the
 * FNEK is that same key unless another sig is named — so a directory mounted by one tool with the
 * same answers is mounted by the other. The kernel gets mount.ecryptfs's options
 * (ecryptfs_sig, ecryptfs_cipher, ecryptfs_key_bytes, [ecryptfs_passthrough], [ecryptfs_fnek_sig],
 * ecryptfs_unlink_sigs).
 *
 * Where we differ, on purpose: nothing is changed until the last answer is in (111 adds the key
 * before the sig-cache question and leaves it there when you answer "no"); a sig is recorded in the
 * cache only once the mount worked; both directories are opened without following symlinks the
 * user could control and must be on a whitelisted filesystem type (src/os/safe-path.ts); the mount
 * is MS_NOSUID|MS_NODEV; the sig is always checked against the cache unless --no-sig-cache.
 */
import { closeSync, fstatSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { type AuthTok, buildPasswordAuthTok } from '../formats/auth-tok';
import { type CipherDescriptor, type KernelCiphers, checkKeyBytes, cipherByName, describeCipher, keyBytesOffered } from '../os/ciphers';
import { AgentError, isAgentError } from '../errors';
import { insertAuthTok, KEY_SPEC, possessUserKeyring, removeAuthTok, searchUserKey } from '../os/keyring';
import { isSig } from '../formats/auth-tok';
import { ecryptfsMounts, mountEcryptfs, readMountInfo, sigsNotInUse } from '../os/mount';
import { type EcryptfsOptions, type MountInfoEntry, renderEcryptfsOptions, sigsOfMount } from '../formats/mountinfo';
import { closeProbe, probeAt, probeMountPoint, unmountProbe } from '../os/mount-point';
import { openDirSafely, openDirSafelyAt, type SafeDirAt } from '../os/safe-path';
import { newSigWarning } from './sig-cache';

export interface MountChoices {
  cipher: string;
  keyBytes: number;
  passthrough: boolean;
  /** filename encryption */
  fnek: boolean;
  /** with fnek: the filename key's sig when it is not the file key (default: the file key itself) */
  fnekSig?: string;
}

export type GivenChoices = Partial<MountChoices>;

/** The terminal side of the dialog (tests script it). */
export interface Prompter {
  /** Shows text as it is. */
  say(text: string): void;
  /** Shows `${prompt}: ` and reads one line (echo on); null at end of input. */
  ask(prompt: string): Promise<string | null>;
  /** Shows `${prompt}: ` and reads a secret (echo off); null at end of input. */
  askSecret(prompt: string): Promise<Buffer | null>;
}

/** mount.ecryptfs re-asks a question this often before it gives up (decision_graph.c, process_sig). */
const TRIES = 5;
/** …and the passphrase this often (obtain_value). */
const PASSPHRASE_TRIES = 3;

export const KEY_TYPE = 'passphrase';

// ------------------------------------------------------------------ flags (pure)

/** Checks what flags gave against the catalogue (before anything is asked or touched). */
export function checkGivenChoices(given: GivenChoices): void {
  if (given.cipher !== undefined) {
    const c = cipherByName(given.cipher);
    if (given.keyBytes !== undefined) checkKeyBytes(c, given.keyBytes);
  } else if (given.keyBytes !== undefined && !Number.isInteger(given.keyBytes)) {
    throw new AgentError('BAD_CIPHER', 'key bytes must be a whole number');
  }
  if (given.fnekSig !== undefined) {
    if (!isSig(given.fnekSig)) throw new AgentError('BAD_SIG', `FNEK signature "${String(given.fnekSig).slice(0, 40)}" is not 16 hex digits`);
    if (given.fnek === false) throw new AgentError('USAGE', 'a FNEK signature was given together with no filename encryption');
  }
}

/** The flags a non-interactive run lacks, by name. */
export function missingChoiceFlags(given: GivenChoices): string[] {
  const missing: string[] = [];
  if (given.cipher === undefined) missing.push('--cipher NAME');
  if (given.keyBytes === undefined) missing.push('--key-bytes N');
  if (given.passthrough === undefined) missing.push('--passthrough or --no-passthrough');
  if (given.fnek === undefined && given.fnekSig === undefined) missing.push('--fnek or --no-fnek');
  return missing;
}

/** The kernel options for the answers: mount.ecryptfs's set (root mounts, so no ecryptfs_check_dev_ruid). */
export function manualMountOptions(choices: MountChoices, sig: string): EcryptfsOptions {
  const opts: EcryptfsOptions = {
    sigs: [sig],
    cipher: choices.cipher,
    keyBytes: choices.keyBytes,
    passthrough: choices.passthrough,
    unlinkSigs: true,
    checkDevRuid: false,
  };
  if (choices.fnek) opts.fnekSig = choices.fnekSig ?? sig;
  return opts;
}

/** mount.ecryptfs's announcement, with the options we really pass. */
export function renderOptionsAnnouncement(options: string): string {
  return `Attempting to mount with the following options:\n${options.split(',').map((o) => `  ${o}\n`).join('')}`;
}

// ------------------------------------------------------------------ the dialog

function cancelled(what: string): AgentError {
  return new AgentError('CANCELLED', `${what}; nothing changed`);
}

async function answer(p: Prompter, prompt: string): Promise<string> {
  const line = await p.ask(prompt);
  if (line === null) throw cancelled('end of input while asking "' + prompt.split('\n').pop() + '"');
  return line.trim();
}

/** A numbered menu as mount.ecryptfs draws it; a number, a listed value, or Enter for the suggestion. */
async function askMenu(p: Prompter, title: string, items: { value: string; label: string }[], suggested: string | undefined): Promise<string> {
  const menu = `${title}: \n${items.map((it, i) => ` ${i + 1}) ${it.label}\n`).join('')}Selection${suggested === undefined ? '' : ` [${suggested}]`}`;
  for (let i = 0; i < TRIES; i++) {
    const a = await answer(p, menu);
    if (a === '' && suggested !== undefined) return suggested;
    const n = /^\d+$/.test(a) ? Number(a) : NaN;
    if (n >= 1 && n <= items.length) return (items[n - 1] as { value: string }).value;
    const hit = items.find((it) => it.value === a);
    if (hit) return hit.value;
  }
  throw cancelled(`no valid selection for "${title}" after ${TRIES} tries`);
}

/** "(y/n) [n]" questions: y, yes, n, no, or Enter for the suggestion. */
async function askYesNo(p: Prompter, prompt: string, suggested: 'y' | 'n'): Promise<boolean> {
  for (let i = 0; i < TRIES; i++) {
    const a = (await answer(p, `${prompt} [${suggested}]`)) || suggested;
    if (a === 'y' || a === 'yes') return true;
    if (a === 'n' || a === 'no') return false;
  }
  throw cancelled(`no valid answer to "${prompt}" after ${TRIES} tries`);
}

async function askPassphrase(p: Prompter): Promise<Buffer> {
  for (let i = 0; i < PASSPHRASE_TRIES; i++) {
    const pw = await p.askSecret('Passphrase');
    if (pw === null) throw cancelled('end of input while asking for the passphrase');
    if (pw.length > 0) return pw;
    p.say('Wrong input, non-empty value required!\n');
  }
  throw new AgentError('PASSPHRASE_EMPTY', `no passphrase after ${PASSPHRASE_TRIES} tries; nothing changed`);
}

export interface DialogInput {
  /** null: no terminal; every choice must be in `given` and the passphrase in `passphrase` */
  prompter: Prompter | null;
  kernel: KernelCiphers;
  given: GivenChoices;
  /** read already (--passphrase-stdin); otherwise asked for. Zeroed here. */
  passphrase?: Buffer;
  salt: Buffer;
}

export interface DialogResult {
  choices: MountChoices;
  /** the file key's auth tok; the caller zeroes its payload */
  authTok: AuthTok;
}

/**
 * Asks what flags did not say, in mount.ecryptfs's order, and derives the key as soon as the
 * passphrase is in (its sig is the suggested FNEK sig). Changes nothing, except that choosing a
 * cipher loads its kernel module (the kernel would load it at mount time anyway).
 */
export async function runMountDialog(input: DialogInput): Promise<DialogResult> {
  const { prompter: p, kernel, given } = input;
  checkGivenChoices(given);
  if (p === null) {
    const missing = missingChoiceFlags(given);
    if (missing.length > 0) throw new AgentError('USAGE', `not a terminal, so nothing can be asked: give ${missing.join(', ')}`);
    if (input.passphrase === undefined) throw new AgentError('USAGE', 'not a terminal, so the passphrase cannot be asked for: give --passphrase-stdin');
  }
  if (given.cipher !== undefined) {
    // A cipher named by a flag is checked against the kernel before the passphrase is typed.
    const c = cipherByName(given.cipher);
    const sizes = keyBytesOffered(c, kernel.load(c.name));
    if (given.keyBytes !== undefined) checkKeyBytes(c, given.keyBytes, sizes);
  }
  if (p !== null && missingChoiceFlags(given).length > 0) {
    await askMenu(p, 'Select key type to use for newly created files', [{ value: KEY_TYPE, label: KEY_TYPE }], KEY_TYPE);
  }
  let passphrase: Buffer | undefined = input.passphrase;
  let authTok: AuthTok | undefined;
  try {
    passphrase ??= await askPassphrase(p as Prompter);
    if (passphrase.length === 0) throw new AgentError('PASSPHRASE_EMPTY', 'the passphrase is empty; nothing changed');
    authTok = buildPasswordAuthTok(passphrase, input.salt);
  } finally {
    passphrase?.fill(0);
  }
  try {
    const choices = await chooseCipherAndFlags(p, kernel, given, authTok.sig);
    return { choices, authTok };
  } catch (e) {
    authTok.payload.fill(0);
    throw e;
  }
}

async function chooseCipherAndFlags(p: Prompter | null, kernel: KernelCiphers, given: GivenChoices, sig: string): Promise<MountChoices> {
  let cipher: CipherDescriptor;
  if (given.cipher !== undefined) {
    cipher = cipherByName(given.cipher);
  } else {
    const offered = kernel.available();
    if (offered.length === 0) throw new AgentError('CIPHER_UNAVAILABLE', 'this kernel offers none of the ciphers eCryptfs can use (/proc/crypto)');
    const name = await askMenu(p as Prompter, 'Select cipher', offered.map((c) => ({ value: c.name, label: describeCipher(c) })), offered[0]?.name);
    cipher = cipherByName(name);
  }
  const sizes = keyBytesOffered(cipher, kernel.load(cipher.name));
  if (sizes.length === 0) throw new AgentError('CIPHER_UNAVAILABLE', `this kernel's ${cipher.name} accepts none of the key sizes ${cipher.keyBytes.join(', ')}`);
  let keyBytes: number;
  if (given.keyBytes !== undefined) {
    keyBytes = checkKeyBytes(cipher, given.keyBytes, sizes);
  } else {
    keyBytes = Number(await askMenu(p as Prompter, 'Select key bytes', sizes.map((n) => ({ value: String(n), label: String(n) })), String(sizes[0])));
  }
  const passthrough = given.passthrough ?? (await askYesNo(p as Prompter, 'Enable plaintext passthrough (y/n)', 'n'));
  const fnek = given.fnekSig !== undefined ? true : (given.fnek ?? (await askYesNo(p as Prompter, 'Enable filename encryption (y/n)', 'n')));
  const choices: MountChoices = { cipher: cipher.name, keyBytes, passthrough, fnek };
  if (fnek) {
    const fnekSig = given.fnekSig ?? (given.fnek === true ? sig : await askFnekSig(p as Prompter, sig));
    if (fnekSig !== sig) choices.fnekSig = fnekSig;
  }
  return choices;
}

async function askFnekSig(p: Prompter, suggested: string): Promise<string> {
  for (let i = 0; i < TRIES; i++) {
    const a = (await answer(p, `Filename Encryption Key (FNEK) Signature [${suggested}]`)) || suggested;
    if (isSig(a)) return a;
    p.say('A signature is 16 hexadecimal digits (ecryptfs-agent keys lists the keys in the keyring).\n');
  }
  throw cancelled(`no valid FNEK signature after ${TRIES} tries`);
}

// ------------------------------------------------------------------ the sig cache question

/** known: in the cache; record: mount, then add it; proceed: mount without adding it. */
export type SigCacheDecision = 'known' | 'record' | 'proceed';

/**
 * mount.ecryptfs's process_sig: a sig missing from the cache gets its warning and two yes/no
 * questions (only "yes" and "no" count, 5 tries each). Without a terminal, --yes is the answer
 * "yes, yes"; without it the mount is refused.
 */
export async function decideAboutNewSig(p: Prompter | null, o: { cached: boolean; sig: string; path: string; yes: boolean }): Promise<SigCacheDecision> {
  if (o.cached) return 'known';
  if (o.yes) return 'record';
  if (p === null) {
    throw new AgentError('SIG_NOT_CACHED', `the key's signature ${o.sig} is not in ${o.path}: you have never mounted with this key before, which could mean a mistyped passphrase; nothing changed`);
  }
  p.say(newSigWarning(o.path));
  const yesNo = async (prompt: string): Promise<string | null> => {
    for (let i = 0; i < TRIES; i++) {
      const a = await answer(p, prompt);
      if (a === 'yes' || a === 'no') return a;
    }
    return null;
  };
  const proceed = await yesNo('Would you like to proceed with the mount (yes/no)? ');
  if (proceed !== 'yes') {
    p.say('Aborting mount.\n');
    throw cancelled(proceed === 'no' ? 'mount aborted' : 'no "yes" or "no" answer; mount aborted');
  }
  p.say(`Would you like to append sig [${o.sig}] to\n[${o.path}] \nin order to avoid this warning in the future`);
  const record = await yesNo(' (yes/no)? ');
  if (record === null) throw cancelled('no "yes" or "no" answer; mount aborted');
  if (record === 'no') {
    p.say('Not adding sig to user sig cache file; continuing with mount.\n');
    return 'proceed';
  }
  return 'record';
}

// ------------------------------------------------------------------ mount (edge)

export interface MountTarget {
  /** canonical paths */
  lower: string;
  upper: string;
  lowerFd: number;
  upperFd: number;
  /** the mount point's directory and name in it: after the mount, what is there is looked at through these */
  upperParentFd: number;
  upperName: string;
  lowerIno: number;
}

export function closeMountTarget(t: MountTarget): void {
  closeSync(t.lowerFd);
  closeSync(t.upperFd);
  closeSync(t.upperParentFd);
}

/**
 * Opens both directories safely (no symlink a user controls, never a symlink as the last
 * component, whitelisted filesystem types) before anything is asked. Refuses LOWER == UPPER and
 * an UPPER that already has an eCryptfs mount.
 */
export function openMountTarget(lowerArg: string, upperArg: string, mounts: MountInfoEntry[] = readMountInfo()): MountTarget {
  const lowerFd = openDirSafely(resolve(lowerArg), { role: 'lower directory' });
  let upper: SafeDirAt;
  try {
    upper = openDirSafelyAt(resolve(upperArg), { role: 'mount point' });
  } catch (e) {
    closeSync(lowerFd);
    throw e;
  }
  const t: MountTarget = {
    lower: readlinkSync(`/proc/self/fd/${lowerFd}`),
    upper: readlinkSync(`/proc/self/fd/${upper.fd}`),
    lowerFd,
    upperFd: upper.fd,
    upperParentFd: upper.parentFd,
    upperName: upper.name,
    lowerIno: fstatSync(lowerFd).ino,
  };
  try {
    const l = fstatSync(lowerFd);
    const u = fstatSync(t.upperFd);
    if (l.dev === u.dev && l.ino === u.ino) {
      throw new AgentError('USAGE', `the lower directory and the mount point are the same directory (${t.lower})`, {
        hint: 'Mount the encrypted (lower) directory on a different, empty directory: ecryptfs-agent mount LOWER UPPER',
      });
    }
    const existing = ecryptfsMounts(mounts).filter((m) => m.mountPoint === t.upper).pop();
    if (existing) {
      throw new AgentError('MOUNT', `${t.upper} already has an eCryptfs mount (of ${existing.source})`, { hint: `Unmount it first: ecryptfs-agent umount ${t.upper}` });
    }
  } catch (e) {
    closeMountTarget(t);
    throw e;
  }
  return t;
}

/** Checks that a FNEK other than the file key is in root's keyring already (we only derive the file key). */
export function checkFnekKeyPresent(choices: MountChoices): void {
  if (choices.fnekSig === undefined) return;
  possessUserKeyring();
  if (searchUserKey(choices.fnekSig, KEY_SPEC.USER) === null) {
    throw new AgentError('KEY_NOT_FOUND', `no key with the FNEK signature ${choices.fnekSig} in root's keyring; nothing changed`, {
      hint: 'Add it first (ecryptfs-agent add-passphrase --fnek), or use the file key for filenames too (--fnek)',
    });
  }
}

const ECRYPTFS_MAGIC = 0xf15f;

/**
 * Adds the auth tok to root's user keyring (left alone when there already), links that keyring
 * into our process keyring so mount(2)'s request_key finds it, and mounts. Afterwards the new
 * mount's root must be the lower directory we checked (an eCryptfs inode carries its lower inode's
 * number): the lower is named by path, and a path a user can write to could have been swapped in
 * between. Any failure takes back the key this call added (unless another mount uses it).
 */
export function mountManually(t: MountTarget, authTok: AuthTok, choices: MountChoices): { options: string } {
  const opts = manualMountOptions(choices, authTok.sig);
  const options = renderEcryptfsOptions(opts);
  possessUserKeyring();
  const { added } = insertAuthTok(authTok.sig, authTok.payload, KEY_SPEC.USER);
  const takeBack = (): void => {
    if (added) for (const s of sigsNotInUse([authTok.sig])) removeAuthTok(s, KEY_SPEC.USER);
  };
  const before = new Set(readMountInfo().map((m) => m.mountId));
  try {
    try {
      mountEcryptfs(t.lower, `/proc/self/fd/${t.upperFd}`, opts);
    } catch (e) {
      if (!isAgentError(e)) throw e;
      // Name the paths the user gave, not /proc/self/fd/N.
      const why = e.message.replace(/^mount .* \(ecryptfs\): (mount: )?/, '');
      const hint = e.errno === 'EINVAL' ? `The kernel log says why: dmesg | grep -i ecryptfs (cipher ${choices.cipher}, ${choices.keyBytes} key bytes)` : e.hint;
      throw new AgentError(e.code, `cannot mount ${t.lower} on ${t.upper}: ${why}`, { ...(e.errno ? { errno: e.errno } : {}), cause: e, hint });
    }
    // looked at through the mount point's pinned parent, never by the path again
    const probe = probeAt(t.upperParentFd, t.upperName, t.upper);
    const made = probe?.entry ?? null;
    if (probe === null || made === null || before.has(made.mountId) || probe.fsType !== ECRYPTFS_MAGIC || probe.stat.ino !== t.lowerIno) {
      try {
        if (probe !== null && made !== null && !before.has(made.mountId)) unmountProbe(probe, { lazyWhenBusy: true, keepParentFd: true });
        else if (probe !== null) closeProbe(probe, { keepParentFd: true });
      } catch {
        /* reported below; the mount point shows it */
      }
      throw new AgentError('UNSAFE_PATH', `${t.lower} changed while it was being mounted; unmounted again`);
    }
    closeProbe(probe, { keepParentFd: true });
  } catch (e) {
    takeBack();
    throw e;
  }
  return { options };
}

// ------------------------------------------------------------------ umount (edge)

/**
 * Unmounts the mount `entry` names and no other: its mount point is walked again without
 * following a symlink that is not root's, and unmounted through the pinned parent only when the
 * mount found there is still that entry (same mount id). A path under a user's directory could
 * otherwise be turned into another mount between the look at the table and umount2.
 */
export function unmountExactly(entry: MountInfoEntry, opts: { lazy?: boolean; lazyWhenBusy: boolean }): { lazy: boolean } {
  const probe = probeMountPoint(entry.mountPoint);
  if (probe === null || probe.entry?.mountId !== entry.mountId) {
    if (probe !== null) closeProbe(probe);
    throw new AgentError('UNSAFE_PATH', `${entry.mountPoint} changed since it was looked at (it is no longer mount ${entry.mountId}); nothing unmounted`, { hint: 'Look again (grep ecryptfs /proc/self/mountinfo) and name the mount point itself' });
  }
  return unmountProbe(probe, { lazyWhenBusy: opts.lazyWhenBusy, ...(opts.lazy ? { lazy: true } : {}) });
}

/**
 * The eCryptfs mount at `arg` (the innermost when stacked). A symlink is refused rather than
 * followed, as umount2(UMOUNT_NOFOLLOW) would refuse it anyway.
 */
export function findEcryptfsMount(arg: string, mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry {
  const path = resolve(arg);
  let canonical: string;
  try {
    if (lstatSync(path).isSymbolicLink()) {
      throw new AgentError('SYMLINK_REFUSED', `${path} is a symbolic link; name the mount point itself`, { hint: `Use the real path: ecryptfs-agent umount "$(realpath ${path})"` });
    }
    canonical = realpathSync(path);
  } catch (e) {
    if (e instanceof AgentError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new AgentError('NOT_FOUND', `${path} does not exist`, { hint: 'Name the directory the eCryptfs file system is mounted on' });
    throw new AgentError('IO', `cannot examine ${path}: ${(e as Error).message}`);
  }
  const here = mounts.filter((m) => m.mountPoint === canonical);
  const entry = ecryptfsMounts(here).pop();
  if (entry === undefined) {
    const other = here.pop();
    throw new AgentError('NOT_MOUNTED', `${canonical} is not an eCryptfs mount${other ? ` (it is a ${other.fsType} mount)` : ''}; nothing changed`);
  }
  return entry;
}

export interface ManualUnmountResult {
  lazy: boolean;
  /** sigs unlinked from root's keyring */
  removed: string[];
  /** sigs kept because another eCryptfs mount uses them, with those mounts */
  kept: { sig: string; by: string[] }[];
  /** the mount was made without ecryptfs_unlink_sigs: its keys are left as they are */
  keysLeft: boolean;
}

/**
 * Unmounts (lazily with `lazy`, as `umount -l`; `lazyIfBusy`: lazily only when busy), then, for a mount made with
 * ecryptfs_unlink_sigs (as umount.ecryptfs does), unlinks its keys from root's keyring — except
 * those another eCryptfs mount still uses.
 */
export function unmountManually(entry: MountInfoEntry, opts: { lazy: boolean; lazyIfBusy?: boolean }): ManualUnmountResult {
  const { lazy } = unmountExactly(entry, { lazy: opts.lazy, lazyWhenBusy: opts.lazyIfBusy === true });
  const keysLeft = !entry.superOptions.split(',').includes('ecryptfs_unlink_sigs');
  const result: ManualUnmountResult = { lazy, removed: [], kept: [], keysLeft };
  if (keysLeft) return result;
  const sigs = [...new Set(sigsOfMount(entry))];
  const remaining = ecryptfsMounts(readMountInfo());
  const unused = new Set(sigsNotInUse(sigs, remaining));
  possessUserKeyring();
  for (const sig of sigs) {
    if (unused.has(sig)) {
      if (removeAuthTok(sig, KEY_SPEC.USER)) result.removed.push(sig);
    } else {
      result.kept.push({ sig, by: remaining.filter((m) => sigsOfMount(m).includes(sig)).map((m) => m.mountPoint) });
    }
  }
  return result;
}
