/**
 * The I/O edge of extra mounts (docs/extra-mounts.md): reading /etc/fstab and
 * ~/.ecryptfs/extra-mounts safely, probing keys and encrypted directories, mounting and
 * unmounting, and the two use-cases the PAM agent (and the CLI's root path) share:
 * mountExtras at a login, unmountRecordedExtras at the last logout.
 *
 * Same rules as ~/Private (src/actions/private-mount.ts): both directories are opened as the user,
 * one component at a time with O_NOFOLLOW (only root-controlled symlinks are followed), must
 * be owned by the user and on an approved filesystem type, and mount(2) gets
 * /proc/self/fd/N of both, so nothing can be swapped in between the checks and the mount.
 */
import { closeSync, fstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { asUser } from '../os/credentials';
import { AgentError, asAgentError, isAgentError } from '../errors';
import {
  checkRecordedMount,
  EXTRA_MOUNTS_FILE,
  extraMountSigs,
  FSTAB,
  MAX_EXTRA_MOUNTS_BYTES,
  MAX_FSTAB_BYTES,
  parseFstabExtraMounts,
  parseUserExtraMounts,
  planExtraMounts,
  type ExtraMountEntry,
  type ExtraMountProblem,
  type ExtraSkipReason,
  type ParsedExtraMounts,
} from '../formats/extra-mount-entries';
import { mountRaw, readMountInfo } from '../os/mount';
import { MS, renderEcryptfsOptions, type MountInfoEntry } from '../formats/mountinfo';
import { closeProbe, probeAt, probeMountPoint, unmountProbe } from '../os/mount-point';
import type { PrivateSetup } from './private-setup';
import type { UserRef } from '../os/credentials';
import { closeSafeDirAt, openDirSafely, openDirSafelyAt } from '../os/safe-path';
import { ECRYPTFS_SUPER_MAGIC, LOWER_FS_TYPES } from '../formats/paths';
import { readSmallFile } from '../os/secure-file';
import type { SessionStore } from './session';
import type { ExtraMountRecord } from '../formats/extra-mount-entries';
import { checkKeysAreUsers, keepKeys, sigsPresent, type UserKeyring } from './keys';


function isMissing(e: unknown): boolean {
  return isAgentError(e, 'NOT_FOUND');
}

/**
 * The user's extra mounts: their /etc/fstab lines (read as root; the file must be root's and
 * not writable by others), then ~/.ecryptfs/extra-mounts (read as the user: a regular file,
 * no symlink, owned by the user, not writable by group or others). A missing file is no
 * entries; an unreadable or unsafe one is one problem and no entries from it.
 */
export function loadExtraMounts(user: UserRef, fstab = FSTAB): ParsedExtraMounts {
  const out: ParsedExtraMounts = { entries: [], problems: [] };
  const add = (p: ParsedExtraMounts): void => {
    out.entries.push(...p.entries);
    out.problems.push(...p.problems);
  };
  const fileProblem = (where: string, e: unknown): ExtraMountProblem => ({
    where,
    error: e instanceof AgentError ? new AgentError(e.code, `${where}: ${e.message}`, { hint: e.hint }) : new AgentError('IO', `${where}: ${(e as Error).message}`),
  });
  try {
    add(parseFstabExtraMounts(readSmallFile(fstab, { maxBytes: MAX_FSTAB_BYTES, expectOwnerUid: 0, refuseGroupOrOtherWritable: true }), user, fstab));
  } catch (e) {
    if (!isMissing(e)) out.problems.push(fileProblem(fstab, e));
  }
  const display = `~/.ecryptfs/${EXTRA_MOUNTS_FILE}`;
  try {
    const path = join(user.home, '.ecryptfs', EXTRA_MOUNTS_FILE);
    const buf = asUser(user, () => readSmallFile(path, { maxBytes: MAX_EXTRA_MOUNTS_BYTES, expectOwnerUid: user.uid, refuseGroupOrOtherWritable: true }));
    add(parseUserExtraMounts(buf, user, display));
  } catch (e) {
    if (!isMissing(e)) out.problems.push(fileProblem(display, e));
  }
  return out;
}

/** The sigs among `sigs` that are in the user's keyring now. */
export function sigsInUserKeyring(ring: UserKeyring, sigs: Iterable<string>): Set<string> {
  return new Set(sigsPresent(ring, [...sigs]).present);
}

/**
 * Whether the encrypted directory is there, looked at as the user. Only "does not exist" is
 * absent: anything else (EACCES on a FUSE mount without allow_root ...) is left for the mount,
 * whose checks say precisely what is wrong.
 */
export function lowerPresent(user: UserRef, path: string): boolean {
  return asUser(user, () => {
    try {
      statSync(path);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code !== 'ENOENT' && code !== 'ENOTDIR';
    }
  });
}

/** Opens the encrypted directory safely (as the user); the caller closes the fd. */
function openLower(user: UserRef, lower: string): number {
  try {
    return openDirSafely(lower, { owner: user, role: 'encrypted directory', approved: LOWER_FS_TYPES });
  } catch (e) {
    if (isAgentError(e, 'PERMISSION')) {
      throw new AgentError('PERMISSION', `${e.message} (the encrypted directory ${lower})`, {
        hint: `Make ${lower} a directory you own and can open; if it is on a FUSE mount such as sshfs, mount that with -o allow_root (needs user_allow_other in /etc/fuse.conf)`,
      });
    }
    throw e;
  }
}

/**
 * Mounts one entry: keys must be in the user's keyring, the user's own, and that keyring
 * possessed by this process (unlock.possessUserKeyring). mount(2) gets /proc/self/fd/N of both
 * directories and runs with the real uid of the user, euid 0 and the user's fs ids
 * (ecryptfs_check_dev_ruid checks the encrypted directory's owner against the real uid; the keys
 * are searched with the user's rights). Returns what identifies the new mount for the logout.
 */
export function mountExtra(ring: UserKeyring, entry: ExtraMountEntry): { mountId: number; lowerIno: number } {
  const user = ring.owner;
  const [lowerFd, upper] = asUser(user, () => {
    const lower = openLower(user, entry.lower);
    try {
      return [lower, openDirSafelyAt(entry.upper, { owner: user })] as const;
    } catch (e) {
      closeSync(lower);
      throw e;
    }
  });
  try {
    checkKeysAreUsers(ring, extraMountSigs(entry));
    const lowerIno = fstatSync(lowerFd).ino;
    const before = new Set(readMountInfo().map((m) => m.mountId));
    const flags = MS.NOSUID | MS.NODEV | (entry.readOnly ? MS.RDONLY : 0) | (entry.noexec ? MS.NOEXEC : 0);
    // ecryptfs_check_dev_ruid compares with the real uid, which stays root's ('mount' mode): the
    // owner was checked on the opened directory, and is again on the new mount below
    const data = renderEcryptfsOptions({ ...entry.ecryptfs, checkDevRuid: false });
    asUser(user, () => mountRaw(`/proc/self/fd/${lowerFd}`, `/proc/self/fd/${upper.fd}`, 'ecryptfs', flags, data), { mode: 'mount' });
    // What is now at the mount point must be the new mount of that very directory.
    const probe = probeAt(upper.parentFd, upper.name, entry.upper);
    const made = probe?.entry ?? null;
    if (probe === null || made === null || before.has(made.mountId) || probe.fsType !== ECRYPTFS_SUPER_MAGIC || probe.stat.ino !== lowerIno || probe.stat.uid !== user.uid) {
      if (probe !== null) closeProbe(probe, { keepParentFd: true });
      throw new AgentError('UNSAFE_PATH', `${entry.upper} does not show the new mount of ${entry.lower}; something changed it meanwhile`);
    }
    closeProbe(probe, { keepParentFd: true });
    return { mountId: made.mountId, lowerIno };
  } finally {
    closeSync(lowerFd);
    closeSafeDirAt(upper);
  }
}

export type ExtraMountResult =
  | { entry: ExtraMountEntry; outcome: 'mounted' }
  | { entry: ExtraMountEntry; outcome: 'skipped'; reason: ExtraSkipReason; detail: string }
  | { entry: ExtraMountEntry; outcome: 'failed'; error: AgentError };

/** loadExtraMounts + mountExtras: what a login does (under the user's lock, keyring possessed). */
export function mountConfiguredExtras(ring: UserKeyring, setup: PrivateSetup | null, store: SessionStore): { results: ExtraMountResult[]; problems: ExtraMountProblem[] } {
  const { entries, problems } = loadExtraMounts(ring.owner);
  return { results: mountExtras(ring, setup, store, entries), problems };
}

/**
 * At a login (under the user's lock, keyring possessed): mounts every entry the plan allows,
 * in order, and records each mount at once (so a killed agent leaves an exact record). Earlier
 * logins' mounts are kept, not duplicated; a failing entry never stops the others.
 */
export function mountExtras(ring: UserKeyring, setup: PrivateSetup | null, store: SessionStore, entries: readonly ExtraMountEntry[]): ExtraMountResult[] {
  if (entries.length === 0) return [];
  const user = ring.owner;
  let recorded = store.loadExtraMounts(user.uid);
  const present = sigsInUserKeyring(ring, new Set(entries.flatMap(extraMountSigs)));
  const facts = {
    mounts: readMountInfo(),
    recorded,
    hasKey: (s: string) => present.has(s),
    lowerPresent: (p: string) => lowerPresent(user, p),
    ...(setup ? { privateUpper: setup.upper } : {}),
  };
  return planExtraMounts(entries, facts).map((item): ExtraMountResult => {
    if (item.action === 'skip') return { entry: item.entry, outcome: 'skipped', reason: item.reason, detail: item.detail };
    const { entry } = item;
    let made: { mountId: number; lowerIno: number };
    try {
      made = mountExtra(ring, entry);
    } catch (e) {
      const error = asAgentError(e, 'MOUNT');
      return { entry, outcome: 'failed', error };
    }
    const sigs = extraMountSigs(entry);
    keepKeys(ring, sigs); // a key with an expiry would break the mount when it runs out
    const record: ExtraMountRecord = { upper: entry.upper, lower: entry.lower, sigs, where: entry.where, mounted: new Date().toISOString(), ...made };
    recorded = [...recorded.filter((r) => r.upper !== entry.upper), record];
    store.saveExtraMounts(user.uid, recorded);
    return { entry, outcome: 'mounted' };
  });
}

export type ExtraUnmountResult =
  | { record: ExtraMountRecord; outcome: 'unmounted'; lazy: boolean }
  /** nothing is mounted there any more (unmounted by hand): nothing to do */
  | { record: ExtraMountRecord; outcome: 'gone'; why: string }
  /** something else is mounted there now (another mount, another user's): never touched */
  | { record: ExtraMountRecord; outcome: 'foreign'; why: string }
  | { record: ExtraMountRecord; outcome: 'failed'; error: AgentError };

/**
 * At the last logout (under the user's lock): unmounts what logins recorded, in reverse order of
 * mounting (busy → lazy detach, like ~/Private, unless lazyWhenBusy is false: then UNMOUNT_BUSY).
 * Each mount point is walked as the user and the mount there is unmounted through fds only when
 * it is still the mount the login made (checkRecordedMount). Returns the results in that order and
 * every sig the records named, for the caller to unlink those no remaining mount uses. Records
 * whose unmount failed are kept for the next last logout.
 */
export function unmountRecordedExtras(user: UserRef, store: SessionStore, opts: { lazyWhenBusy?: boolean } = {}): { results: ExtraUnmountResult[]; sigs: string[] } {
  const recorded = store.loadExtraMounts(user.uid);
  if (recorded.length === 0) return { results: [], sigs: [] };
  const results: ExtraUnmountResult[] = [];
  const failed = new Set<ExtraMountRecord>();
  for (const record of [...recorded].reverse()) {
    try {
      let probe;
      try {
        probe = asUser(user, () => probeMountPoint(record.upper, { who: user.name }));
      } catch (e) {
        // the user cannot reach it (any more): nothing there is theirs to have unmounted
        if (!(e instanceof AgentError) || !['PERMISSION', 'SYMLINK_REFUSED', 'UNSAFE_PATH'].includes(e.code)) throw e;
        results.push({ record, outcome: 'foreign', why: e.message });
        continue;
      }
      const found = probe?.entry ? { entry: probe.entry, rootUid: probe.stat.uid, rootIno: probe.stat.ino } : null;
      const check = checkRecordedMount(record, user.uid, found);
      if (check.kind !== 'ours') {
        if (probe) closeProbe(probe);
        results.push({ record, outcome: check.kind, why: check.why });
        continue;
      }
      const lazy = unmountProbe(probe!, { lazyWhenBusy: opts.lazyWhenBusy !== false }).lazy;
      results.push({ record, outcome: 'unmounted', lazy });
    } catch (e) {
      failed.add(record);
      results.push({ record, outcome: 'failed', error: asAgentError(e, 'MOUNT') });
    }
  }
  store.saveExtraMounts(user.uid, recorded.filter((r) => failed.has(r)));
  return { results, sigs: [...new Set(recorded.flatMap((r) => r.sigs))] };
}

export interface ExtraMountStatus {
  where: string;
  lower: string;
  upper: string;
  /** an eCryptfs mount is at the mount point now */
  mounted: boolean;
}

/** For `ecryptfs-agent status`: the configured entries, whether each is mounted, and the refused lines. */
export function gatherExtraMountStatus(user: UserRef, mounts: readonly MountInfoEntry[] = readMountInfo()): { entries: ExtraMountStatus[]; problems: string[] } {
  const { entries, problems } = loadExtraMounts(user);
  return {
    entries: entries.map((e) => ({ where: e.where, lower: e.lower, upper: e.upper, mounted: mounts.some((m) => m.fsType === 'ecryptfs' && m.mountPoint === e.upper) })),
    problems: problems.map((p) => `${p.error.message} (fix: ${p.error.hint})`),
  };
}
