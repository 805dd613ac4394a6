/**
 * Paths and filesystem types a mount may use: pure rules (no I/O), applied by os/safe-path.ts to
 * what it opened.
 */
import { normalize } from 'node:path';
import { AgentError } from '../errors';

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

export const ECRYPTFS_SUPER_MAGIC = 0xf15f;

/**
 * Filesystems an encrypted (lower) directory may be on: the mount-point whitelist of
 * mount.ecryptfs_private 111 (disk, network, FUSE, tmpfs, overlay ...), without eCryptfs itself
 * (the kernel refuses to stack eCryptfs on eCryptfs). What it keeps out are the pseudo
 * filesystems a user can own directories on (procfs, sysfs, cgroup delegations, debugfs ...):
 * eCryptfs stacked on procfs was CVE-2016-1583. FUSE stays in because a user's own sshfs
 * mount is the point of extra mounts; such a mount must allow root in (`-o allow_root`).
 */
export const LOWER_FS_TYPES: ReadonlyMap<number, string> = new Map([...APPROVED_FS_TYPES].filter(([type]) => type !== ECRYPTFS_SUPER_MAGIC));

/** Pure: the path must be absolute and already normal (no "..", ".", "//" or trailing "/"). */
export function checkMountPointSyntax(path: string, role = 'mount point'): void {
  if (!path.startsWith('/') || path.includes('\0') || normalize(path) !== path || path === '/' || path.endsWith('/')) {
    throw new AgentError('UNSAFE_PATH', `${role} "${path}" must be an absolute, normalised path`);
  }
  if (path.split('/').some((c) => c === '..' || c === '.')) {
    throw new AgentError('UNSAFE_PATH', `${role} "${path}" contains "." or ".." components`);
  }
}
