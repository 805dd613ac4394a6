/**
 * The facts `doctor` and `status` look at: the kernel, the PAM stacks, swap, and lstat() of a
 * user's files (no content is read). Read-only; the rules are the pure formats/doctor.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import type { DoctorFacts, FileFact, KernelFacts, PamFacts, PamStackFile, SwapFact, UserFacts } from '../formats/doctor';
import { ecryptfsModuleInDep, parseProcSwaps } from '../formats/doctor';
import { PAM_SERVICES } from '../formats/pam-doctor';
import { isRule, parsePamFile } from '../formats/pam-stack';
import type { UserRef } from '../os/credentials';


function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export function fileFact(role: FileFact['role'], path: string): FileFact {
  try {
    const st = fs.lstatSync(path);
    const kind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    return { role, path, kind, mode: st.mode & 0o7777, uid: st.uid, size: st.size };
  } catch {
    return { role, path, kind: 'missing', mode: 0, uid: -1, size: 0 };
  }
}

/** lstat of the files of a setup (no content is read: safe as root on a user's home). */
export function userFileFacts(user: UserRef, upper = join(user.home, 'Private')): UserFacts {
  const cfg = join(user.home, '.ecryptfs');
  return {
    name: user.name,
    uid: user.uid,
    files: [
      fileFact('config-dir', cfg),
      fileFact('wrapped-passphrase', join(cfg, 'wrapped-passphrase')),
      fileFact('Private.sig', join(cfg, 'Private.sig')),
      fileFact('Private.mnt', join(cfg, 'Private.mnt')),
      fileFact('lower', join(user.home, '.Private')),
      fileFact('upper', upper),
    ],
  };
}

// ------------------------------------------------------------------ doctor facts

/** What modprobe would find: built in, or listed in modules.dep AND present on disk. */
function moduleAvailability(release: string, modulesDir = '/lib/modules'): Pick<KernelFacts, 'moduleAvailable' | 'moduleFile'> {
  const dir = join(modulesDir, release);
  const builtin = readText(join(dir, 'modules.builtin'));
  const dep = readText(join(dir, 'modules.dep'));
  if (builtin === null && dep === null) return { moduleAvailable: 'unknown' };
  if (builtin !== null && /(^|\/)ecryptfs\.ko/m.test(builtin)) return { moduleAvailable: 'builtin' };
  const file = dep === null ? null : ecryptfsModuleInDep(dep);
  if (file === null) return { moduleAvailable: 'absent' };
  const path = file.startsWith('/') ? file : join(dir, file);
  return { moduleAvailable: fs.existsSync(path) ? 'module' : 'file-missing', moduleFile: path };
}

export function gatherKernelFacts(modulesDir?: string): KernelFacts {
  const release = os.release();
  const v = readText('/sys/fs/ecryptfs/version');
  const n = v === null ? NaN : Number.parseInt(v.trim(), 10);
  return {
    procFilesystems: readText('/proc/filesystems'),
    ecryptfsVersion: Number.isInteger(n) ? n : null,
    ...moduleAvailability(release, modulesDir),
    release,
    procCrypto: readText('/proc/crypto'),
  };
}

/**
 * The PAM files doctor looks at: the services' files and, followed on disk, every file they
 * include (include, substack, @include), each read once. `root` is for tests: a directory
 * holding etc/pam.d and etc/os-release in place of /.
 */
export function gatherPamFacts(root = '/'): PamFacts {
  const dir = join(root, 'etc', 'pam.d');
  const files: PamStackFile[] = [];
  const seen = new Set<string>();
  const queue = PAM_SERVICES.map(([service]) => service);
  // a bound on what a hostile or broken tree can make us read
  while (queue.length > 0 && seen.size < 200) {
    const name = queue.shift() as string;
    const path = name.startsWith('/') ? join(root, name) : join(dir, name);
    if (seen.has(path)) continue;
    seen.add(path);
    const text = readText(path);
    if (text === null) continue;
    // the pure side names files as the PAM lines do: absolute ones relative to the root
    files.push({ path: name.startsWith('/') ? name : join(dir, name), text });
    for (const l of parsePamFile(path, text)) {
      if (!isRule(l)) queue.push(l.atInclude);
      else if (l.control === 'include' || l.control === 'substack') queue.push(l.module);
    }
  }
  return { dir, files, osRelease: readText(join(root, 'etc', 'os-release')) ?? readText(join(root, 'usr', 'lib', 'os-release')) };
}

/** dm uuids of a block device and every device under it (dm slaves, recursively). */
function dmChain(sysBlock: string, seen = new Set<string>()): Array<{ name: string; uuid: string }> {
  if (seen.has(sysBlock)) return [];
  seen.add(sysBlock);
  const out: Array<{ name: string; uuid: string }> = [];
  const uuid = readText(join(sysBlock, 'dm', 'uuid'));
  if (uuid !== null) out.push({ name: (readText(join(sysBlock, 'dm', 'name')) ?? '').trim(), uuid: uuid.trim() });
  let slaves: string[] = [];
  try {
    slaves = fs.readdirSync(join(sysBlock, 'slaves'));
  } catch {
    /* not stacked */
  }
  for (const s of slaves) out.push(...dmChain(`/sys/class/block/${s}`, seen));
  return out;
}

function sysBlockOfDev(dev: bigint): string | null {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const p = `/sys/dev/block/${major}:${minor}`;
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

export function classifySwap(s: { path: string; type: string }): SwapFact {
  let sys: string | null = null;
  try {
    const st = fs.statSync(s.path, { bigint: true });
    sys = s.type === 'partition' || st.isBlockDevice() ? sysBlockOfDev(st.rdev) : sysBlockOfDev(st.dev);
  } catch {
    return { ...s, backing: 'unknown' };
  }
  if (sys === null) return { ...s, backing: 'unknown' };
  // a partition's parent directory is the disk: look at the partition itself first, then its disk
  if (/\/zram\d+$/.test(sys)) return { ...s, backing: 'zram' };
  const crypt = dmChain(sys).find((d) => d.uuid.startsWith('CRYPT-'));
  if (crypt) return { ...s, backing: 'dm-crypt', cryptName: crypt.name, cryptUuid: crypt.uuid };
  return { ...s, backing: 'plain' };
}

export function gatherSwaps(): SwapFact[] | null {
  const text = readText('/proc/swaps');
  return text === null ? null : parseProcSwaps(text).map(classifySwap);
}

export function gatherDoctorFacts(user?: UserRef, pamRoot = '/'): DoctorFacts {
  const facts: DoctorFacts = {
    kernel: gatherKernelFacts(),
    pam: gatherPamFacts(pamRoot),
    swaps: gatherSwaps(),
    crypttab: readText('/etc/crypttab'),
  };
  if (user !== undefined) facts.user = userFileFacts(user);
  return facts;
}
