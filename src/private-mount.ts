/**
 * Mounting and unmounting a user's private directory safely.
 *
 * The agent runs as root, so the mount point named in the user's Private.mnt is hostile
 * input (CVE-2016-1572: mounting over /proc/PID deceived setuid programs). We:
 *  1. walk the mount point from "/" one component at a time as the user, opening each
 *     directory with O_NOFOLLOW; a symbolic link is followed only when root owns it and the
 *     directory holding it (e.g. /home -> /data/home), never one the user could plant;
 *  2. require the final directory to be owned by the user and to live on a filesystem type
 *     that mount.ecryptfs_private 111 approves (the same whitelist);
 *  3. mount onto /proc/self/fd/N of that open directory, so nothing can be swapped in between
 *     the checks and mount(2);
 *  4. call mount(2) with the real uid of the user and effective uid 0, as
 *     mount.ecryptfs_private does, so the kernel's ecryptfs_check_dev_ruid verifies that the
 *     user owns the lower directory and the key lookup happens in the user's keyrings.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, statSync, statfsSync } from 'node:fs';
import { normalize } from 'node:path';
import { asUser } from './credentials';
import { AgentError } from './errors';
import { type MountInfoEntry, mountEcryptfs, readMountInfo, sigsNotInUse, unmount } from './mount';
import type { PrivateSetup, UserRef } from './private-setup';
import { setupSigs } from './private-setup';

/** statfs f_type values mount.ecryptfs_private 111 accepts as a mount point's filesystem. */
export const APPROVED_FS_TYPES: ReadonlyMap<number, string> = new Map([
  [0x61756673, 'aufs'],
  [0x9123683e, 'btrfs'],
  [0x00c36400, 'ceph'],
  [0xff534d42, 'cifs'],
  [0xf15f, 'ecryptfs'],
  [0xef53, 'ext2/3/4'],
  [0xf2f52010, 'f2fs'],
  [0x65735546, 'fuse'],
  [0x01161970, 'gfs2'],
  [0x3153464a, 'jfs'],
  [0x72b6, 'jffs2'],
  [0x564c, 'ncp'],
  [0x6969, 'nfs'],
  [0x3434, 'nilfs'],
  [0x5346544e, 'ntfs'],
  [0x794c7630, 'overlayfs'],
  [0x52654973, 'reiserfs'],
  [0x73717368, 'squashfs'],
  [0x01021994, 'tmpfs'],
  [0x24051905, 'ubifs'],
  [0x58465342, 'xfs'],
  [0x2fc12fc1, 'zfs'],
]);

/** Pure: the path must be absolute and already normal (no "..", ".", "//" or trailing "/"). */
export function checkMountPointSyntax(path: string, role = 'mount point'): void {
  if (!path.startsWith('/') || path.includes('\0') || normalize(path) !== path || path === '/' || path.endsWith('/')) {
    throw new AgentError('UNSAFE_PATH', `${role} "${path}" must be an absolute, normalised path`);
  }
  if (path.split('/').some((c) => c === '..' || c === '.')) {
    throw new AgentError('UNSAFE_PATH', `${role} "${path}" contains "." or ".." components`);
  }
}

// libuv opens every fd with O_CLOEXEC already.
const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

export interface SafeDirOptions {
  /** the final directory must be owned by this user (omit: any owner, e.g. root's own `mount`) */
  owner?: UserRef;
  /** what the directory is, for messages: "mount point" (default), "lower directory"… */
  role?: string;
  /** statfs f_type values accepted for the directory (default APPROVED_FS_TYPES) */
  approved?: ReadonlyMap<number, string>;
}

/**
 * Opens `path` as a directory without following any symlink the user could control.
 * Must run with the user's credentials. Returns an fd the caller closes.
 */
export function openDirNoUserSymlinks(path: string, owner: UserRef): number {
  return openDirSafely(path, { owner });
}

/**
 * The walk of openDirNoUserSymlinks for any caller: from "/" one component at a time with
 * O_NOFOLLOW, following only root-controlled symlinks and never a final one, then the owner
 * (when given) and the filesystem-type whitelist checks. Returns an fd the caller closes.
 */
export function openDirSafely(path: string, opts: SafeDirOptions = {}): number {
  const role = opts.role ?? 'mount point';
  const owner = opts.owner;
  checkMountPointSyntax(path, role);
  let fd = openSync('/', DIR_FLAGS);
  const components = path.split('/').filter((c) => c !== '');
  let walked = '';
  try {
    for (let i = 0; i < components.length; i++) {
      const name = components[i] as string;
      const here = `${walked}/${name}`;
      let next: number;
      try {
        next = openSync(`/proc/self/fd/${fd}/${name}`, DIR_FLAGS);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ELOOP' || code === 'ENOTDIR') {
          const st = lstatSync(here);
          if (!st.isSymbolicLink()) {
            // open(O_DIRECTORY|O_NOFOLLOW) failed, so it was not a directory then (a symlink gives
            // ENOTDIR or ELOOP): a directory now means it was swapped in between; name it as such.
            if (st.isDirectory()) throw new AgentError('SYMLINK_REFUSED', `${here} was a symbolic link when opened and changed since; refusing to mount through it`);
            throw new AgentError('UNSAFE_PATH', `${here} is not a directory`);
          }
          const parent = fstatSync(fd);
          if (st.uid !== 0 || parent.uid !== 0 || (parent.mode & 0o022) !== 0) {
            throw new AgentError('SYMLINK_REFUSED', `${here} is a symbolic link that is not controlled by root; refusing to mount through it`);
          }
          // Root-controlled indirection (e.g. /home -> /data/home): follow it for this component only.
          next = openSync(`/proc/self/fd/${fd}/${name}`, fsc.O_RDONLY | fsc.O_DIRECTORY);
          if (i === components.length - 1) {
            closeSync(next);
            throw new AgentError('SYMLINK_REFUSED', `${here} is a symbolic link; the ${role} itself must be a real directory`);
          }
        } else if (code === 'ENOENT') {
          throw new AgentError('NOT_FOUND', `${role} ${path} does not exist (missing ${here})`, { hint: `Create it: mkdir -m 700 ${path}` });
        } else if (code === 'EACCES') {
          throw new AgentError('PERMISSION', `${owner?.name ?? 'this process'} cannot reach ${here}`);
        } else {
          throw new AgentError('IO', `cannot open ${here}: ${(e as Error).message}`);
        }
      }
      closeSync(fd);
      fd = next;
      walked = here;
    }
    const st = fstatSync(fd);
    if (!st.isDirectory()) throw new AgentError('UNSAFE_PATH', `${path} is not a directory`);
    if (owner !== undefined && st.uid !== owner.uid) {
      throw new AgentError('BAD_OWNER', `${owner.name} does not own the ${role} ${path} (owner uid ${st.uid})`, {
        hint: role === 'mount point' ? 'The mount point must be a directory you own, e.g. ~/Private; fix ~/.ecryptfs/Private.mnt' : `The ${role} must be a directory you own (chown it, or fix the entry)`,
      });
    }
    const fsType = Number(statfsSync(`/proc/self/fd/${fd}`).type) >>> 0;
    if (!(opts.approved ?? APPROVED_FS_TYPES).has(fsType)) {
      const what = role === 'mount point' ? 'to mount over' : `to use ${/^[aeiou]/i.test(role) ? 'an' : 'a'} ${role} on`;
      const hint = role === 'mount point' ? {} : { hint: `Keep the ${role} on a disk, network, FUSE or tmpfs filesystem (not proc, sys, cgroup …)` };
      throw new AgentError('UNSAFE_PATH', `refusing ${what} an unapproved filesystem type: 0x${fsType.toString(16)} at ${path}`, hint);
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function lowerCheck(owner: UserRef, lower: string): void {
  let st;
  try {
    // ~/.Private may be a symlink (encrypted-home layout: /home/.ecryptfs/USER/.Private); the
    // kernel's ecryptfs_check_dev_ruid re-checks the owner of what it resolves to at mount time.
    st = statSync(lower);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AgentError('NOT_FOUND', `the encrypted directory ${lower} does not exist`, { hint: 'Restore ~/.Private from a backup, or set up again with ecryptfs-agent setup-private' });
    }
    throw new AgentError('IO', `cannot examine ${lower}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${lower} is not a directory`);
  if (st.uid !== owner.uid) throw new AgentError('BAD_OWNER', `${lower} is not owned by ${owner.name}`);
}

/** The mount of this setup, if any: an ecryptfs mount at the mount point. */
export function findPrivateMount(setup: PrivateSetup, mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry | undefined {
  return mounts.find((m) => m.fsType === 'ecryptfs' && m.mountPoint === setup.upper);
}

export type MountOutcome = 'mounted' | 'already-mounted';

/**
 * Mounts the private directory. The auth toks must already be in the user's keyring and that
 * keyring linked into this process's keyring (unlock.possessUserKeyring), so that the
 * kernel's request_key during mount(2) finds them.
 */
export function mountPrivate(owner: UserRef, setup: PrivateSetup): MountOutcome {
  if (findPrivateMount(setup)) return 'already-mounted';
  const fd = asUser(owner, () => {
    lowerCheck(owner, setup.lower);
    return openDirNoUserSymlinks(setup.upper, owner);
  });
  try {
    asUser(
      owner,
      () => {
        const opts: Parameters<typeof mountEcryptfs>[2] = { sigs: [setup.fekSig], cipher: 'aes', keyBytes: 16, unlinkSigs: true, checkDevRuid: true };
        if (setup.fnekSig !== undefined) opts.fnekSig = setup.fnekSig;
        mountEcryptfs(setup.lower, `/proc/self/fd/${fd}`, opts);
      },
      { effectiveRoot: true },
    );
  } finally {
    closeSync(fd);
  }
  return 'mounted';
}

export interface UnmountOutcome {
  unmounted: boolean;
  /** the mount was busy and was detached lazily (MNT_DETACH), like `umount -l` */
  lazy: boolean;
}

/** Unmounts the private directory (as root). Busy → lazy detach, as umount.ecryptfs_private does. */
export function unmountPrivate(setup: PrivateSetup): UnmountOutcome {
  const entry = findPrivateMount(setup);
  if (!entry) return { unmounted: false, lazy: false };
  return unmountOrDetach(entry.mountPoint);
}

/** Unmounts mountPoint (as root, never through a final symlink); busy → lazy detach. */
export function unmountOrDetach(mountPoint: string): UnmountOutcome {
  try {
    unmount(mountPoint, {});
    return { unmounted: true, lazy: false };
  } catch (e) {
    if (e instanceof AgentError && e.code === 'UNMOUNT_BUSY') {
      unmount(mountPoint, { lazy: true });
      return { unmounted: true, lazy: true };
    }
    throw e;
  }
}

/** Sigs of this setup that no remaining ecryptfs mount still uses (safe to unlink). */
export function sigsNoLongerMounted(setup: PrivateSetup, mounts: MountInfoEntry[] = readMountInfo()): string[] {
  return sigsNotInUse(setupSigs(setup), mounts);
}
