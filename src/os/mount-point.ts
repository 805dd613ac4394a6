/**
 * What is mounted on a directory, seen through file descriptors, and unmounting exactly that.
 *
 * A probe walks to the directory's parent without following any symlink a user could plant
 * (safe-path.walkToParent, run with the credentials whose reach counts), opens the name with
 * O_PATH (crossing into whatever is mounted there) and reads the mount id of that fd. The mount
 * it names is the one the caller checks; unmountProbe then unmounts `/proc/self/fd/PARENT/NAME`:
 * the parent is pinned by its fd and a mount point cannot be renamed or removed while mounted,
 * so the unmount reaches the mount that was checked, not whatever a path names a moment later.
 */
import { closeSync, constants as fsc, fstatSync, openSync, type Stats } from 'node:fs';
import { AgentError, isAgentError } from '../errors';
import { readMountInfo, unmount } from './mount';
import { type MountInfoEntry } from '../formats/mountinfo';
import { fsTypeOfFd, mountIdOfFd, O_PATH, walkToParent } from './safe-path';

export interface MountProbe {
  /** the path probed (for messages) */
  path: string;
  parentFd: number;
  name: string;
  /** O_PATH fd on what `name` leads to now (the root of the topmost mount there, if any); -1 once released */
  fd: number;
  stat: Stats;
  fsType: number;
  /** the mount whose root `name` is, or null when nothing is mounted there */
  entry: MountInfoEntry | null;
}

/** Closes what a probe holds (not needed after unmountProbe, which closes them). */
export function closeProbe(p: MountProbe, opts: { keepParentFd?: boolean } = {}): void {
  if (p.fd >= 0) closeSync(p.fd);
  p.fd = -1;
  if (!opts.keepParentFd) closeSync(p.parentFd);
}

/**
 * The probe of `name` in an already open parent directory (e.g. right after a mount onto it):
 * null when `name` is not a directory (a symlink, a file: nothing can be mounted there).
 */
export function probeAt(parentFd: number, name: string, path: string, mounts?: MountInfoEntry[]): MountProbe | null {
  let fd: number;
  try {
    fd = openSync(`/proc/self/fd/${parentFd}/${name}`, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return null;
    throw new AgentError(code === 'EACCES' ? 'PERMISSION' : 'IO', `cannot examine ${path}: ${(e as Error).message}`);
  }
  try {
    const mid = mountIdOfFd(fd);
    const entry = mid === mountIdOfFd(parentFd) ? null : ((mounts ?? readMountInfo()).find((m) => m.mountId === mid) ?? null);
    return { path, parentFd, name, fd, stat: fstatSync(fd), fsType: fsTypeOfFd(fd), entry };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * Probes the directory at `path`. Run it with the credentials whose reach counts: as the user for
 * a user's mount point (a directory the user cannot reach is not theirs to have unmounted).
 * Returns null when nothing that could be a mount point is there (missing, a symlink, a file).
 */
export function probeMountPoint(path: string, opts: { role?: string; who?: string } = {}): MountProbe | null {
  let parent: { parentFd: number; name: string };
  try {
    parent = walkToParent(path, opts.role ?? 'mount point', opts.who);
  } catch (e) {
    if (isAgentError(e, 'NOT_FOUND')) return null;
    throw e;
  }
  try {
    const p = probeAt(parent.parentFd, parent.name, path);
    if (p === null) closeSync(parent.parentFd);
    return p;
  } catch (e) {
    closeSync(parent.parentFd);
    throw e;
  }
}

export interface ProbeUnmount {
  /** busy: detached lazily (MNT_DETACH), like umount -l */
  lazy: boolean;
}

/**
 * Unmounts the mount the probe found (lazy: detach at once; busy → lazy detach when lazyWhenBusy, else UNMOUNT_BUSY),
 * through the pinned parent, then checks that exactly that mount is gone. Closes the probe (its
 * parent fd too, unless keepParentFd: the caller's own).
 */
export function unmountProbe(p: MountProbe, opts: { lazyWhenBusy: boolean; keepParentFd?: boolean; lazy?: boolean }): ProbeUnmount {
  const entry = p.entry;
  const done = (): void => closeProbe(p, { keepParentFd: opts.keepParentFd === true });
  if (entry === null) {
    done();
    throw new AgentError('NOT_MOUNTED', `${p.path} is not a mount point`);
  }
  // our own O_PATH fd inside the mount would make it busy
  closeSync(p.fd);
  p.fd = -1;
  const target = `/proc/self/fd/${p.parentFd}/${p.name}`;
  let lazy = opts.lazy === true;
  try {
    try {
      unmount(target, { lazy });
    } catch (e) {
      if (lazy || !(opts.lazyWhenBusy && isAgentError(e, 'UNMOUNT_BUSY'))) throw renamed(e, target, p.path);
      lazy = true;
      unmount(target, { lazy: true });
    }
  } catch (e) {
    done();
    throw renamed(e, target, p.path);
  }
  done();
  if (readMountInfo().some((m) => m.mountId === entry.mountId)) {
    throw new AgentError('MOUNT', `${p.path} is still mounted after the unmount (mount ${entry.mountId})`);
  }
  return { lazy };
}

/** Errors name the path the caller knows, not /proc/self/fd/N/NAME. */
function renamed(e: unknown, target: string, path: string): unknown {
  if (!isAgentError(e) || !e.message.includes(target)) return e;
  return new AgentError(e.code, e.message.split(target).join(path), { hint: e.hint, ...(e.errno ? { errno: e.errno } : {}), cause: e });
}
