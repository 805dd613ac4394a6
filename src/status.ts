/**
 * The read-only edge for `status`, `doctor` and `lock`: gathers facts from /proc, /sys,
 * /etc and lstat() of the user's files, and finds the processes that use a mount (the
 * `fuser -vm` scan). Nothing here changes anything; the rules live in src/doctor.ts and the
 * rendering of a status report is a pure function (renderStatus).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { AgentError, isAgentError } from './errors';
import type { DoctorFacts, FileFact, KernelFacts, PamStackFile, SwapFact, UserFacts } from './doctor';
import { ecryptfsModuleInDep, parseProcSwaps } from './doctor';
import { type MountInfoEntry, sigsOfMount } from './mount';
import { gatherExtraMountStatus, type ExtraMountStatus } from './extra-mounts-io';
import { findPrivateMount } from './private-mount';
import { loadPrivateSetup, type PrivateSetup, type UserRef } from './private-setup';
import { type LastLogin, SessionStore } from './session';
import { asUser } from './credentials';
import { keysPresent, possessUserKeyring } from './unlock';

// ------------------------------------------------------------------ small readers

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

export const PAM_STACKS = ['common-auth', 'common-session', 'common-password', 'system-auth', 'password-auth'];

export function gatherPamStacks(dir = '/etc/pam.d'): PamStackFile[] {
  const out: PamStackFile[] = [];
  for (const name of PAM_STACKS) {
    const text = readText(join(dir, name));
    if (text !== null) out.push({ path: join(dir, name), text });
  }
  return out;
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

export function gatherDoctorFacts(user?: UserRef): DoctorFacts {
  const facts: DoctorFacts = {
    kernel: gatherKernelFacts(),
    pam: gatherPamStacks(),
    swaps: gatherSwaps(),
    crypttab: readText('/etc/crypttab'),
  };
  if (user !== undefined) facts.user = userFileFacts(user);
  return facts;
}

// ------------------------------------------------------------------ who uses a mount (fuser -vm)

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

// ------------------------------------------------------------------ status

export interface StatusReport {
  user: string;
  uid: number;
  /** null: no private directory set up */
  setup: Pick<PrivateSetup, 'configDir' | 'lower' | 'upper' | 'fekSig' | 'fnekSig' | 'autoMount' | 'autoUmount' | 'wrappingIndependent' | 'hasWrappedPassphrase'> | null;
  /** why the setup could not be read (bad owner, bad Private.sig ...) */
  setupError?: string;
  files: FileFact[];
  keys: { present: string[]; missing: string[] } | { error: string };
  mounted: { mountPoint: string; source: string; sigs: string[] } | null;
  /** live PAM sessions (root only: null otherwise) */
  sessions: number | null;
  /** how the last login's open_session ended (root only) */
  lastLogin: LastLogin | null;
  /** extra mounts (docs/extra-mounts.md); absent without a setup */
  extraMounts?: { entries: ExtraMountStatus[]; problems: string[] } | { error: string };
}

export function gatherStatus(user: UserRef, opts: { root: boolean; store?: SessionStore }): StatusReport {
  let setup: PrivateSetup | null = null;
  let setupError: string | undefined;
  try {
    setup = asUser(user, () => loadPrivateSetup(user));
  } catch (e) {
    setupError = isAgentError(e) ? `${e.message} (${e.code})` : (e as Error).message;
  }
  const report: StatusReport = {
    user: user.name,
    uid: user.uid,
    setup: null,
    files: userFileFacts(user, setup?.upper).files,
    keys: { error: 'no setup' },
    mounted: null,
    sessions: null,
    lastLogin: null,
  };
  if (setupError !== undefined) report.setupError = setupError;
  if (setup) {
    const s: NonNullable<StatusReport['setup']> = {
      configDir: setup.configDir,
      lower: setup.lower,
      upper: setup.upper,
      fekSig: setup.fekSig,
      autoMount: setup.autoMount,
      autoUmount: setup.autoUmount,
      wrappingIndependent: setup.wrappingIndependent,
      hasWrappedPassphrase: setup.hasWrappedPassphrase,
    };
    if (setup.fnekSig !== undefined) s.fnekSig = setup.fnekSig;
    report.setup = s;
    try {
      report.keys = keysPresent(possessUserKeyring(user), setup);
    } catch (e) {
      report.keys = { error: (e as Error).message };
    }
    const m = findPrivateMount(setup);
    if (m) report.mounted = { mountPoint: m.mountPoint, source: m.source, sigs: sigsOfMount(m) };
    try {
      report.extraMounts = gatherExtraMountStatus(user);
    } catch (e) {
      report.extraMounts = { error: (e as Error).message };
    }
  }
  if (opts.root) {
    const store = opts.store ?? new SessionStore();
    try {
      report.sessions = store.withUserLock(user.uid, () => store.load(user.uid).live.length);
    } catch (e) {
      if (!(e instanceof AgentError)) throw e;
    }
    report.lastLogin = store.lastLogin(user.uid);
  }
  return report;
}

export function renderStatus(r: StatusReport, now = Date.now()): string {
  const L: string[] = [`User ${r.user} (uid ${r.uid})`];
  if (r.setupError !== undefined) L.push(`  setup:        UNUSABLE: ${r.setupError}`);
  else if (r.setup === null) L.push('  setup:        none (no ~/.ecryptfs/Private.sig); create one with: ecryptfs-agent setup-private');
  else {
    const s = r.setup;
    L.push(`  setup:        ${s.lower} -> ${s.upper}`);
    L.push(`  sigs:         ${s.fekSig} (files)${s.fnekSig ? `, ${s.fnekSig} (file names)` : ', no filename encryption'}`);
    L.push(`  wrapped file: ${s.hasWrappedPassphrase ? 'present' : 'MISSING'}; matches Private.sig: not checked (needs the passphrase; "ecryptfs-agent unlock" checks it)`);
    L.push(`  unlocks with: ${s.wrappingIndependent ? 'a separate wrapping passphrase (ecryptfs-agent unlock)' : 'the login password'}`);
    L.push(`  at login:     ${s.autoMount ? 'mounted (auto-mount)' : 'not mounted (no auto-mount)'}; at last logout: ${s.autoUmount ? 'locked (auto-umount)' : 'kept (no auto-umount)'}`);
  }
  for (const f of r.files) {
    const desc = f.kind === 'missing' ? 'missing' : `${f.kind}, mode ${f.mode.toString(8).padStart(4, '0')}, uid ${f.uid}${f.kind === 'file' ? `, ${f.size} bytes` : ''}`;
    L.push(`  file ${f.role.padEnd(19)}${f.path}: ${desc}`);
  }
  if (r.setup !== null) {
    if ('error' in r.keys) L.push(`  keys in @u:   unknown (${r.keys.error})`);
    else L.push(`  keys in @u:   ${r.keys.missing.length === 0 ? 'all present' : r.keys.present.length === 0 ? 'none' : 'some'}${r.keys.present.length ? ` [present: ${r.keys.present.join(', ')}]` : ''}${r.keys.missing.length ? ` [missing: ${r.keys.missing.join(', ')}]` : ''}`);
    L.push(`  mounted:      ${r.mounted ? `yes, ${r.mounted.source} on ${r.mounted.mountPoint} (sigs ${r.mounted.sigs.join(', ')})` : 'no (locked)'}`);
    const x = r.extraMounts;
    if (x !== undefined && 'error' in x) L.push(`  extra mounts: unknown (${x.error})`);
    else if (x !== undefined) {
      L.push(`  extra mounts: ${x.entries.length === 0 && x.problems.length === 0 ? 'none' : `${x.entries.length} (/etc/fstab user,noauto lines and ~/.ecryptfs/extra-mounts)`}`);
      for (const e of x.entries) L.push(`    ${e.lower} -> ${e.upper}: ${e.mounted ? 'mounted' : 'not mounted'} [${e.where}]`);
      for (const p of x.problems) L.push(`    REFUSED ${p}`);
    }
  }
  L.push(`  sessions:     ${r.sessions === null ? 'not shown (root only)' : `${r.sessions} open PAM session(s)`}`);
  if (r.lastLogin) L.push(`  last login:   ${r.lastLogin.outcome}${r.lastLogin.code ? ` (${r.lastLogin.code})` : ''} via ${r.lastLogin.service}, ${Math.round((now - r.lastLogin.time) / 1000)} s ago`);
  else L.push(`  last login:   ${r.sessions === null ? 'not shown (root only)' : 'none recorded'}`);
  return L.join('\n') + '\n';
}

/** Runs /sbin/unix_chkpwd USER nullok with the password on stdin: true when it matches, null when it cannot tell. */
export function checkLoginPassword(user: string, password: Buffer): boolean | null {
  const helper = '/sbin/unix_chkpwd';
  if (!fs.existsSync(helper)) return null;
  try {
    execFileSync(helper, [user, 'nullok'], { input: Buffer.concat([password, Buffer.from([0])]), stdio: ['pipe', 'ignore', 'ignore'] });
    return true;
  } catch (e) {
    const status = (e as { status?: number }).status;
    return status === 7 ? false : null; // PAM_AUTH_ERR; anything else: cannot tell
  }
}
