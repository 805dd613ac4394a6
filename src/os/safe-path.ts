/**
 * Reaching a directory a user can influence without letting them redirect root: the no-symlink
 * walk, the encrypted (lower) directory opened with the user's own rights, and the identity of a
 * mount read from an open fd (its mount id), never from a path looked up again later.
 *
 * Every function here returns file descriptors: callers act on those (fstat, fstatfs, mount(2)
 * onto /proc/self/fd/N, umount2 of /proc/self/fd/PARENT/NAME), so nothing can be swapped in
 * between a check and the act (docs/security.md, "the class").
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readFileSync, statfsSync, type Stats } from 'node:fs';
import { AgentError } from '../errors';
import { APPROVED_FS_TYPES, checkMountPointSyntax, LOWER_FS_TYPES } from '../formats/paths';
import type { UserRef } from './credentials';
import { onlyRootCanChange } from './secure-file';

/** O_PATH (Linux): a handle on a name that needs only search permission on its directory. */
export const O_PATH = 0o10000000;

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

/** A directory reached by the safe walk: its fd, and its parent's fd with the name in it. */
export interface SafeDirAt {
  fd: number;
  parentFd: number;
  name: string;
}

export function closeSafeDirAt(d: SafeDirAt): void {
  closeSync(d.fd);
  closeSync(d.parentFd);
}

/**
 * Walks `path` from "/" one component at a time with O_NOFOLLOW, following a symbolic link only
 * when root owns it and the directory holding it (e.g. /home -> /data/home), never one a user
 * could plant, and never a final one. Returns the parent's fd and the last name; the final
 * component itself is not opened. Run it with the credentials whose reach counts (asUser).
 */
export function walkToParent(path: string, role = 'mount point', who?: string): { parentFd: number; name: string } {
  checkMountPointSyntax(path, role);
  const components = path.split('/').filter((c) => c !== '');
  let fd = openSync('/', DIR_FLAGS);
  let walked = '';
  try {
    for (let i = 0; i < components.length - 1; i++) {
      const name = components[i] as string;
      const next = openComponent(fd, walked, name, role, path, who, false);
      closeSync(fd);
      fd = next;
      walked = `${walked}/${name}`;
    }
    return { parentFd: fd, name: components[components.length - 1] as string };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function openComponent(fd: number, walked: string, name: string, role: string, path: string, who: string | undefined, last: boolean, flags = DIR_FLAGS): number {
  const here = `${walked}/${name}`;
  try {
    return openSync(`/proc/self/fd/${fd}/${name}`, flags);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      let st: Stats;
      try {
        st = lstatSync(`/proc/self/fd/${fd}/${name}`);
      } catch {
        throw new AgentError('UNSAFE_PATH', `${here} changed while it was examined`);
      }
      if (!st.isSymbolicLink()) {
        // open(O_DIRECTORY|O_NOFOLLOW) failed, so it was not a directory then (a symlink gives
        // ENOTDIR or ELOOP): a directory now means it was swapped in between; name it as such.
        if (st.isDirectory()) throw new AgentError('SYMLINK_REFUSED', `${here} was a symbolic link when opened and changed since; refusing to use it`);
        throw new AgentError('UNSAFE_PATH', `${here} is not a directory`);
      }
      if (last) throw new AgentError('SYMLINK_REFUSED', `${here} is a symbolic link; the ${role} itself must be a real directory`);
      const parent = fstatSync(fd);
      if (st.uid !== 0 || !onlyRootCanChange(parent)) {
        throw new AgentError('SYMLINK_REFUSED', `${here} is a symbolic link that is not controlled by root; refusing to follow it`);
      }
      // Root-controlled indirection (e.g. /home -> /data/home): follow it for this component only.
      return openSync(`/proc/self/fd/${fd}/${name}`, fsc.O_RDONLY | fsc.O_DIRECTORY);
    }
    if (code === 'ENOENT') throw new AgentError('NOT_FOUND', `${role} ${path} does not exist (missing ${here})`, { hint: `Create it: mkdir -m 700 ${path}` });
    if (code === 'EACCES') throw new AgentError('PERMISSION', `${who ?? 'this process'} cannot reach ${here}`);
    throw new AgentError('IO', `cannot open ${here}: ${(e as Error).message}`);
  }
}

/**
 * The walk of walkToParent, then the final directory opened (O_NOFOLLOW) and checked: owner
 * (when given) and the filesystem type. Returns its fd and its parent's; the caller closes both.
 */
export function openDirSafelyAt(path: string, opts: SafeDirOptions = {}): SafeDirAt {
  const role = opts.role ?? 'mount point';
  const owner = opts.owner;
  const { parentFd, name } = walkToParent(path, role, owner?.name);
  let fd = -1;
  try {
    fd = openComponent(parentFd, path.slice(0, path.length - name.length - 1), name, role, path, owner?.name, true);
    const st = fstatSync(fd);
    if (!st.isDirectory()) throw new AgentError('UNSAFE_PATH', `${path} is not a directory`);
    if (owner !== undefined && st.uid !== owner.uid) {
      throw new AgentError('BAD_OWNER', `${owner.name} does not own the ${role} ${path} (owner uid ${st.uid})`, {
        hint: role === 'mount point' ? 'The mount point must be a directory you own, e.g. ~/Private; fix ~/.ecryptfs/Private.mnt' : `The ${role} must be a directory you own (chown it, or fix the entry)`,
      });
    }
    checkFsType(fd, path, role, opts.approved ?? APPROVED_FS_TYPES);
    return { fd, parentFd, name };
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    closeSync(parentFd);
    throw e;
  }
}

/** openDirSafelyAt without the parent: the directory's fd, which the caller closes. */
export function openDirSafely(path: string, opts: SafeDirOptions = {}): number {
  const d = openDirSafelyAt(path, opts);
  closeSync(d.parentFd);
  return d.fd;
}

/** openDirSafely with the owner check; run it as the user. */
export function openDirNoUserSymlinks(path: string, owner: UserRef): number {
  return openDirSafely(path, { owner });
}

export function fsTypeOfFd(fd: number): number {
  return Number(statfsSync(`/proc/self/fd/${fd}`).type) >>> 0;
}

function checkFsType(fd: number, path: string, role: string, approved: ReadonlyMap<number, string>): void {
  const fsType = fsTypeOfFd(fd);
  if (!approved.has(fsType)) {
    const what = role === 'mount point' ? 'to mount over' : `to use ${/^[aeiou]/i.test(role) ? 'an' : 'a'} ${role} on`;
    const hint = role === 'mount point' ? {} : { hint: `Keep the ${role} on a disk, network, FUSE or tmpfs filesystem (not proc, sys, cgroup …)` };
    throw new AgentError('UNSAFE_PATH', `refusing ${what} an unapproved filesystem type: 0x${fsType.toString(16)} at ${path}`, hint);
  }
}

/** An encrypted directory opened for a mount: its fd and what fstat said of it then. */
export interface OpenedLower {
  fd: number;
  stat: Stats;
}

/**
 * Opens the encrypted (lower) directory of a user's private directory with the user's own rights
 * (run it as the user): ~/.Private may be a symlink the user made (the encrypted-home layout links
 * it to /home/.ecryptfs/USER/.Private), and following it as the user reaches only what the user
 * may reach. What it resolves to must be a directory the user owns, on a filesystem of
 * LOWER_FS_TYPES (never procfs, sysfs …). The caller closes the fd.
 */
export function openLowerDir(owner: UserRef, lower: string): OpenedLower {
  let fd: number;
  try {
    fd = openSync(lower, fsc.O_RDONLY | fsc.O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new AgentError('NOT_FOUND', `the encrypted directory ${lower} does not exist`, { hint: 'Restore ~/.Private from a backup, or set up again with ecryptfs-agent setup-private' });
    }
    if (code === 'ENOTDIR') throw new AgentError('NOT_REGULAR_FILE', `${lower} is not a directory`);
    if (code === 'EACCES' || code === 'EPERM') throw new AgentError('PERMISSION', `${owner.name} cannot open the encrypted directory ${lower}`);
    throw new AgentError('IO', `cannot open ${lower}: ${(e as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${lower} is not a directory`);
    if (stat.uid !== owner.uid) throw new AgentError('BAD_OWNER', `${lower} is not owned by ${owner.name} (owner uid ${stat.uid})`);
    checkFsType(fd, lower, 'encrypted directory', LOWER_FS_TYPES);
    return { fd, stat };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The mount id of the mount an open fd is on (the `mnt_id:` line of /proc/self/fdinfo/FD). */
export function mountIdOfFd(fd: number): number {
  const m = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new AgentError('IO', `no mnt_id in /proc/self/fdinfo/${fd}`);
  return Number(m[1]);
}
