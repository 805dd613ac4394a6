/**
 * Mounting and unmounting a user's private directory safely (docs/security.md).
 *
 * The agent runs as root, so everything a user's files name is hostile input: the mount point in
 * Private.mnt (CVE-2016-1572: mounting over /proc/PID deceived setuid programs), ~/.Private, and
 * the mount found at the mount point at logout (another user's, root's own). Mounting:
 *  1. the mount point is walked from "/" as the user, one component at a time with O_NOFOLLOW
 *     (only root-controlled symlinks are followed), must be the user's own directory on an
 *     approved filesystem type, and mount(2) gets /proc/self/fd/N of it;
 *  2. ~/.Private is opened as the user (safe-path.openLowerDir): the user's own directory, on a
 *     disk-like filesystem (never procfs);
 *  3. the auth toks it will use are checked to be the user's own (unlock.checkKeysAreUsers);
 *  4. mount(2) runs with root's real and effective uid (the user can never signal the agent) and
 *     the user's fs ids: the kernel resolves ~/.Private and searches the keys with the user's
 *     rights. The source stays the path `$HOME/.Private`, as mount.ecryptfs_private passes it,
 *     because umount.ecryptfs_private and `mount` listings compare that string;
 *  5. afterwards the new mount at that directory must show the inode of the directory opened in
 *     step 2 and be owned by the user; otherwise it is detached at once. (This is the check
 *     ecryptfs_check_dev_ruid makes against the real uid; with the real uid root's it is made here.)
 * Unmounting: the mount at the mount point is reached the same way (as the user, through fds)
 * and is unmounted only when it is this user's private directory: an eCryptfs mount whose source
 * is the user's ~/.Private, whose key sig is in Private.sig, whose root the user owns, and whose
 * inode is that of ~/.Private. Anything else there is left alone and reported (NOT_YOURS).
 */
import { closeSync, fstatSync } from 'node:fs';
import { asUser } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { mountEcryptfs, readMountInfo, sigsNotInUse } from '../os/mount';
import { type MountInfoEntry, sigsOfMount } from '../formats/mountinfo';
import { closeProbe, type MountProbe, probeAt, probeMountPoint, unmountProbe } from '../os/mount-point';
import type { PrivateSetup } from './private-setup';
import type { UserRef } from '../os/credentials';
import { setupSigs } from './private-setup';
import { closeSafeDirAt, openDirSafelyAt, openLowerDir } from '../os/safe-path';
import { ECRYPTFS_SUPER_MAGIC } from '../formats/paths';
import { checkKeysAreUsers, type UserKeyring } from './keys';


/** What is at the mount point of a setup: no eCryptfs mount, this user's private directory, or another eCryptfs mount. */
export type PrivateMountState =
  | { state: 'none' }
  | { state: 'ours'; entry: MountInfoEntry }
  | { state: 'foreign'; entry: MountInfoEntry; why: string };

/**
 * Pure: why the mount a probe found is not `user`'s private directory of `setup`, or null when it
 * is. `lowerIno` is the inode ~/.Private resolves to now (undefined: it could not be opened).
 */
export function privateMountProblem(
  user: UserRef,
  setup: PrivateSetup,
  found: { entry: MountInfoEntry; uid: number; ino: number; fsType: number },
  lowerIno: number | undefined,
): string | null {
  const { entry } = found;
  if (entry.fsType !== 'ecryptfs' || found.fsType !== ECRYPTFS_SUPER_MAGIC) return `a ${entry.fsType} mount of ${entry.source} is there, not an eCryptfs one`;
  if (entry.source !== setup.lower) return `its encrypted directory is ${entry.source}, not ${setup.lower}`;
  if (!sigsOfMount(entry).includes(setup.fekSig)) return `it is mounted with key ${sigsOfMount(entry).join(',') || 'none'}, not the key ${setup.fekSig} of ${setup.configDir}/Private.sig`;
  if (found.uid !== user.uid) return `its files belong to uid ${found.uid}, not to ${user.name}`;
  if (lowerIno !== undefined && found.ino !== lowerIno) return `${setup.lower} is no longer the directory mounted there`;
  return null;
}

/** The inode ~/.Private resolves to for the user now, or undefined when it cannot be opened. */
function currentLowerIno(user: UserRef, setup: PrivateSetup): number | undefined {
  try {
    const lower = asUser(user, () => openLowerDir(user, setup.lower));
    closeSync(lower.fd);
    return lower.stat.ino;
  } catch {
    return undefined;
  }
}

/** Probes the setup's mount point as the user; null when nothing is mounted there. */
function probePrivate(user: UserRef, setup: PrivateSetup): MountProbe | null {
  const probe = asUser(user, () => probeMountPoint(setup.upper, { who: user.name }));
  if (probe !== null && probe.entry === null) {
    closeProbe(probe);
    return null;
  }
  return probe;
}

function classify(user: UserRef, setup: PrivateSetup, probe: MountProbe): PrivateMountState {
  const entry = probe.entry as MountInfoEntry;
  // Another kind of mount there (an admin's bind mount, the user's own FUSE mount) is no private
  // directory: nothing to unmount, and a login mounts on top of it after the usual checks.
  if (entry.fsType !== 'ecryptfs') return { state: 'none' };
  const why = privateMountProblem(user, setup, { entry, uid: probe.stat.uid, ino: probe.stat.ino, fsType: probe.fsType }, currentLowerIno(user, setup));
  return why === null ? { state: 'ours', entry } : { state: 'foreign', entry, why };
}

/**
 * What is mounted at the setup's mount point, examined as the user through fds (see the head of
 * this file). Changes nothing.
 */
export function examinePrivateMount(user: UserRef, setup: PrivateSetup): PrivateMountState {
  let probe: MountProbe | null;
  try {
    probe = probePrivate(user, setup);
  } catch (e) {
    // a mount point the user cannot even reach holds nothing of theirs
    if (isAgentError(e, 'PERMISSION') || isAgentError(e, 'SYMLINK_REFUSED') || isAgentError(e, 'UNSAFE_PATH')) return { state: 'none' };
    throw e;
  }
  if (probe === null) return { state: 'none' };
  try {
    return classify(user, setup, probe);
  } finally {
    closeProbe(probe);
  }
}

/** The mount of this setup in the mount table (by mount point only; for status and messages). */
export function findPrivateMount(setup: PrivateSetup, mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry | undefined {
  return mounts.find((m) => m.fsType === 'ecryptfs' && m.mountPoint === setup.upper);
}

export type MountOutcome = 'mounted' | 'already-mounted';

/**
 * Mounts the private directory (see the head of this file). The auth toks must already be in the
 * user's keyring, possessed by this process (unlock.possessUserKeyring). A mount that is not the
 * user's already at the mount point: NOT_YOURS, nothing mounted.
 */
export function mountPrivate(ring: UserKeyring, setup: PrivateSetup): MountOutcome {
  const user = ring.owner;
  const now = examinePrivateMount(user, setup);
  if (now.state === 'ours') return 'already-mounted';
  if (now.state === 'foreign') {
    throw new AgentError('NOT_YOURS', `${setup.upper} already has a mount that is not ${user.name}'s private directory (${now.why}); nothing mounted`);
  }
  const upper = asUser(user, () => openDirSafelyAt(setup.upper, { owner: user }));
  try {
    const lower = asUser(user, () => openLowerDir(user, setup.lower));
    try {
      checkKeysAreUsers(ring, setupSigs(setup));
      const before = new Set(readMountInfo().map((m) => m.mountId));
      const opts: Parameters<typeof mountEcryptfs>[2] = { sigs: [setup.fekSig], cipher: 'aes', keyBytes: 16, unlinkSigs: true, checkDevRuid: false };
      if (setup.fnekSig !== undefined) opts.fnekSig = setup.fnekSig;
      asUser(user, () => mountEcryptfs(setup.lower, `/proc/self/fd/${upper.fd}`, opts), { mode: 'mount' });
      verifyNewMount(user, setup, upper.parentFd, upper.name, fstatSync(lower.fd).ino, before);
    } finally {
      closeSync(lower.fd);
    }
  } finally {
    closeSafeDirAt(upper);
  }
  return 'mounted';
}

/**
 * The mount just made at parentFd/name must be a new eCryptfs mount of the directory that was
 * opened as ~/.Private (same inode; an eCryptfs inode carries its lower inode's number), owned by
 * the user. The path ~/.Private was resolved again by mount(2), with the user's rights: if the
 * user swapped it in between, what got mounted is one of the user's own directories, which is
 * detached here at once.
 */
function verifyNewMount(user: UserRef, setup: PrivateSetup, parentFd: number, name: string, lowerIno: number, before: Set<number>): void {
  const probe = probeAt(parentFd, name, setup.upper);
  if (probe === null) throw new AgentError('UNSAFE_PATH', `${setup.upper} vanished while it was being mounted`);
  const entry = probe.entry;
  const isNew = entry !== null && !before.has(entry.mountId) && entry.fsType === 'ecryptfs';
  const ok = isNew && probe.fsType === ECRYPTFS_SUPER_MAGIC && probe.stat.ino === lowerIno && probe.stat.uid === user.uid;
  if (ok) {
    closeSync(probe.fd);
    return;
  }
  if (isNew) {
    try {
      unmountProbe(probe, { lazyWhenBusy: true, keepParentFd: true });
    } catch {
      /* reported below with the reason */
    }
  } else {
    closeSync(probe.fd);
  }
  throw new AgentError('UNSAFE_PATH', `${setup.lower} changed while it was being mounted (the mount did not show the directory that was checked); unmounted again`, {
    hint: `Make ${setup.lower} a plain directory of yours again (or the link ecryptfs-setup-private made), then log in again`,
  });
}

export interface UnmountOutcome {
  unmounted: boolean;
  /** the mount was busy and was detached lazily (MNT_DETACH), like `umount -l` */
  lazy: boolean;
}

/**
 * Unmounts the user's private directory: only when what is mounted at the mount point is theirs
 * (examinePrivateMount), through the fds of that examination. Busy → lazy detach, as
 * umount.ecryptfs_private does, unless lazyWhenBusy is false (then UNMOUNT_BUSY). Another mount
 * there: NOT_YOURS, nothing unmounted.
 */
export function unmountPrivate(user: UserRef, setup: PrivateSetup, opts: { lazyWhenBusy?: boolean } = {}): UnmountOutcome {
  let probe: MountProbe | null;
  try {
    probe = probePrivate(user, setup);
  } catch (e) {
    if (isAgentError(e, 'PERMISSION') || isAgentError(e, 'SYMLINK_REFUSED') || isAgentError(e, 'UNSAFE_PATH')) return { unmounted: false, lazy: false };
    throw e;
  }
  if (probe === null) return { unmounted: false, lazy: false };
  const state = classify(user, setup, probe);
  if (state.state !== 'ours') {
    closeProbe(probe);
    const why = state.state === 'foreign' ? state.why : 'nothing of theirs is mounted there';
    throw new AgentError('NOT_YOURS', `refusing to unmount ${setup.upper}: it is not the private directory of ${user.name} (${why})`);
  }
  return { unmounted: true, lazy: unmountProbe(probe, { lazyWhenBusy: opts.lazyWhenBusy ?? true }).lazy };
}

/** Sigs of this setup that no remaining ecryptfs mount still uses (safe to unlink). */
export function sigsNoLongerMounted(setup: PrivateSetup, mounts: MountInfoEntry[] = readMountInfo()): string[] {
  return sigsNotInUse(setupSigs(setup), mounts);
}
