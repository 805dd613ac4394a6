/**
 * Whether a directory's filesystem is encrypted at rest below it: the block device it is
 * mounted from, and the devices under that one (LVM or RAID on LUKS), looked up in /sys. A
 * dm-crypt device's dm/uuid starts with "CRYPT-" (cryptsetup names it so for LUKS and plain
 * dm-crypt alike). Read-only; used to tell an admin what `migrate-out --to plain` leaves.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { MountInfoEntry } from '../formats/mountinfo';

export interface BlockEncryption {
  /** the mount holding the path */
  mountPoint: string;
  /** its source as mountinfo names it (e.g. /dev/mapper/vg-home) */
  source: string;
  /** true: a dm-crypt device at or below it; false: a block device chain without one; null:
   * not a block device (tmpfs, network, overlay) or /sys says nothing */
  encrypted: boolean | null;
  /** the dm-crypt device found (its /sys name, e.g. dm-0) */
  cryptDevice?: string;
}

/** The mount holding `path` (the longest mount point above it; the last one mounted wins). */
export function mountOf(path: string, mounts: readonly MountInfoEntry[]): MountInfoEntry | undefined {
  let best: MountInfoEntry | undefined;
  for (const m of mounts) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(`${m.mountPoint}/`);
    if (inside && (best === undefined || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** A dm-crypt device at /sys/dev/block/MAJ:MIN or anywhere below it (slaves), or null. */
function cryptBelow(sysBlockDir: string, depth = 0): string | null {
  if (depth > 8) return null; // device stacks are a few levels deep; never loop
  try {
    if (fs.readFileSync(join(sysBlockDir, 'dm', 'uuid'), 'utf8').startsWith('CRYPT-')) return fs.realpathSync(sysBlockDir).split('/').pop() ?? null;
  } catch {
    // not a device-mapper device
  }
  let slaves: string[] = [];
  try {
    slaves = fs.readdirSync(join(sysBlockDir, 'slaves'));
  } catch {
    return null; // a disk or a partition: the bottom of the stack
  }
  for (const s of slaves) {
    const found = cryptBelow(join(sysBlockDir, 'slaves', s), depth + 1);
    if (found !== null) return found;
  }
  return null;
}

export function blockEncryptionOf(path: string, mounts: readonly MountInfoEntry[], sysRoot = '/sys'): BlockEncryption | null {
  const m = mountOf(path, mounts);
  if (m === undefined) return null;
  const dir = join(sysRoot, 'dev', 'block', `${m.major}:${m.minor}`);
  const base = { mountPoint: m.mountPoint, source: m.source };
  if (m.major === 0 || !fs.existsSync(dir)) return { ...base, encrypted: null };
  const crypt = cryptBelow(dir);
  return crypt === null ? { ...base, encrypted: false } : { ...base, encrypted: true, cryptDevice: crypt };
}
