/**
 * mount(2)/umount2(2) wrappers and the mount table as this process sees it. The options and the
 * mountinfo format are formats/mountinfo.ts. Credentials for the eCryptfs mount are the caller's
 * business: see credentials.asUser (mode 'mount').
 */
import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentError, errnoOf } from '../errors';
import { type EcryptfsOptions, MNT, MS, type MountInfoEntry, parseMountInfo, renderEcryptfsOptions, sigsOfMount } from '../formats/mountinfo';
import { call } from './native';

export function mountRaw(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  const opts = fstype === null ? {} : { fstype };
  call('mount', `mount ${source ?? 'none'} on ${target} (${fstype ?? '-'})`, (n) => n.mount(source, target, fstype, flags, data), opts);
}

/** mount(lower, target, "ecryptfs", MS_NOSUID|MS_NODEV|extraFlags, options). ENODEV → NO_ECRYPTFS. */
export function mountEcryptfs(lower: string, target: string, opts: EcryptfsOptions, extraFlags = 0): void {
  mountRaw(lower, target, 'ecryptfs', MS.NOSUID | MS.NODEV | extraFlags, renderEcryptfsOptions(opts));
}

/**
 * umount2 with UMOUNT_NOFOLLOW always (a user-planted symlink must not redirect the unmount).
 * EBUSY → UNMOUNT_BUSY; a symlink target → SYMLINK_REFUSED.
 */
export function unmount(target: string, opts: { lazy?: boolean; force?: boolean } = {}): void {
  const flags = MNT.UMOUNT_NOFOLLOW | (opts.lazy ? MNT.DETACH : 0) | (opts.force ? MNT.FORCE : 0);
  try {
    call('mount', `unmount ${target}`, (n) => n.umount2(target, flags));
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'EBUSY') throw new AgentError('UNMOUNT_BUSY', `${target} is busy`, { errno, cause: e });
    if (errno === 'EINVAL') {
      let link = false;
      try {
        link = lstatSync(target).isSymbolicLink();
      } catch {
        /* keep the original error */
      }
      if (link) throw new AgentError('SYMLINK_REFUSED', `refusing to unmount through the symbolic link ${target}`, { errno, cause: e });
    }
    throw e;
  }
}

export function readMountInfo(pid: number | 'self' = 'self'): MountInfoEntry[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch (e) {
    throw new AgentError('IO', `cannot read /proc/${pid}/mountinfo: ${(e as Error).message}`, { errno: errnoOf(e) ?? 'EIO', cause: e });
  }
  return parseMountInfo(text);
}

/** Mounts whose mount point is path (canonicalised when it exists), innermost (last) at the end. */
export function findMountsAt(path: string, mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry[] {
  let p = resolve(path);
  try {
    p = realpathSync(p);
  } catch {
    /* compare the resolved path */
  }
  return mounts.filter((m) => m.mountPoint === p);
}

export function ecryptfsMounts(mounts: MountInfoEntry[] = readMountInfo()): MountInfoEntry[] {
  return mounts.filter((m) => m.fsType === 'ecryptfs');
}

/** Of `sigs`, those no eCryptfs mount in `mounts` uses (its keys may be unlinked without breaking a mount). */
export function sigsNotInUse(sigs: readonly string[], mounts: MountInfoEntry[] = readMountInfo()): string[] {
  const inUse = new Set<string>();
  for (const m of ecryptfsMounts(mounts)) for (const s of sigsOfMount(m)) inUse.add(s);
  return sigs.filter((s) => !inUse.has(s));
}
