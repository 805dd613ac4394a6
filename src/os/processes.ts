/**
 * Who uses a mount or a directory tree: the `fuser -vm` / `lsof +D` scan of /proc (read-only).
 * `lock`, `umount`, `recover` and `migrate-home` refuse while something is listed here.
 */
import * as fs from 'node:fs';
import type { MountInfoEntry } from '../formats/mountinfo';

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}


export interface MountHolder {
  pid: number;
  uid: number;
  user: string;
  comm: string;
  /** how: c = cwd, r = root, f = open file, m = mapped file (fuser's letters); u = runs as the user (processesUsingTree) */
  access: string;
}

function devOf(st: fs.BigIntStats): { major: number; minor: number } {
  const dev = st.dev;
  return { major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)), minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)) };
}

function userName(uid: number, cache: Map<number, string>): string {
  let n = cache.get(uid);
  if (n === undefined) {
    n = String(uid);
    const passwd = readText('/etc/passwd');
    for (const l of passwd?.split('\n') ?? []) {
      const f = l.split(':');
      if (f[2] === String(uid) && f[0]) {
        n = f[0];
        break;
      }
    }
    cache.set(uid, n);
  }
  return n;
}

/**
 * What a /proc scan looks for. `onTarget` gets a /proc link (cwd, root, fd/N) and says whether the
 * file behind it is one of ours ('denied': could not be inspected); `mapsTarget` gets the fields of
 * one /proc/PID/maps line; `whole` may add letters for the process as a whole.
 */
interface ProcessProbe {
  onTarget(procLink: string): boolean | 'denied';
  mapsTarget(fields: string[]): boolean;
  whole?(base: string): string;
}

function isDenied(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

/** The /proc walk behind processesUsingMount and processesUsingTree (fuser's letters). */
function scanProcesses(probe: ProcessProbe, excludePid: number): { holders: MountHolder[]; uninspected: number } {
  const holders: MountHolder[] = [];
  let uninspected = 0;
  const names = new Map<number, string>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === excludePid) continue;
    const base = `/proc/${pid}`;
    let access = probe.whole?.(base) ?? '';
    let denied = false;
    for (const [link, letter] of [['cwd', 'c'], ['root', 'r']] as const) {
      const r = probe.onTarget(`${base}/${link}`);
      if (r === 'denied') denied = true;
      else if (r) access += letter;
    }
    try {
      for (const fd of fs.readdirSync(`${base}/fd`)) {
        if (probe.onTarget(`${base}/fd/${fd}`) === true) {
          access += 'f';
          break;
        }
      }
    } catch (e) {
      if (isDenied(e)) denied = true;
    }
    const maps = readText(`${base}/maps`);
    if (maps === null) denied = true;
    else if (maps.split('\n').some((l) => probe.mapsTarget(l.split(/\s+/)))) access += 'm';
    if (access !== '') {
      let uid = -1;
      try {
        uid = fs.statSync(base).uid;
      } catch {
        continue; // gone
      }
      holders.push({ pid, uid, user: userName(uid, names), comm: (readText(`${base}/comm`) ?? '?').trim(), access });
    } else if (denied && fs.existsSync(base)) {
      uninspected++;
    }
  }
  return { holders, uninspected };
}

/**
 * Processes using files on the filesystem mounted as `entry` (same device): their cwd, root,
 * open fds and mapped files, read from /proc like `fuser -vm`. Processes this caller may not
 * inspect (other users', unless root) are counted in `uninspected`. `excludePid`: ourselves.
 */
export function processesUsingMount(entry: Pick<MountInfoEntry, 'major' | 'minor'>, excludePid = process.pid): { holders: MountHolder[]; uninspected: number } {
  const want = `${entry.major.toString(16).padStart(2, '0')}:${entry.minor.toString(16).padStart(2, '0')}`;
  return scanProcesses(
    {
      onTarget: (path) => {
        try {
          const d = devOf(fs.statSync(path, { bigint: true }));
          return d.major === entry.major && d.minor === entry.minor;
        } catch (e) {
          return isDenied(e) ? 'denied' : false;
        }
      },
      mapsTarget: (f) => f[3] === want && Number(f[4]) !== 0,
    },
    excludePid,
  );
}

/**
 * Processes that run as `uid` (real, effective, saved or filesystem uid: letter 'u') or use a path
 * under `dir` (cwd, root, open or mapped file; like `lsof +D dir`). Root sees every process.
 */
export function processesUsingTree(dir: string, uid: number, excludePid = process.pid): { holders: MountHolder[]; uninspected: number } {
  const under = (p: string): boolean => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  return scanProcesses(
    {
      onTarget: (link) => {
        try {
          return under(fs.readlinkSync(link));
        } catch (e) {
          return isDenied(e) ? 'denied' : false;
        }
      },
      mapsTarget: (f) => f.length > 5 && under(f.slice(5).join(' ')),
      whole: (base) => {
        const line = /^Uid:\s+(.*)$/m.exec(readText(`${base}/status`) ?? '');
        return line?.[1]?.split(/\s+/).some((id) => Number(id) === uid) ? 'u' : '';
      },
    },
    excludePid,
  );
}

export function renderHolders(mountPoint: string, holders: MountHolder[]): string {
  const lines = [`${''.padEnd(20)}USER        PID ACCESS COMMAND`];
  holders.forEach((h, i) => {
    lines.push(`${(i === 0 ? mountPoint + ':' : '').padEnd(20)}${h.user.padEnd(8)} ${String(h.pid).padStart(6)} ${h.access.padEnd(6)} ${h.comm}`);
  });
  return lines.join('\n') + '\n';
}
