/**
 * User lookup, temporary credential switches and process hardening.
 *
 * The agent runs as root. Work on a user's files and keyring is done with that user's
 * ids (asUser), keeping saved uid/gid 0 so root can be restored afterwards. The ids are
 * changed by glibc's set*id wrappers, which apply them to every thread of the process.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { AgentError } from '../errors';
import { call, native } from './native';
import { setSecretAllocator } from '../formats/secret-memory';

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** What asUser needs of a user. */
export type Principal = Pick<UserInfo, 'name' | 'uid' | 'gid'>;

/** A user the agent acts for: what the use-cases need of a passwd entry. */
export interface UserRef {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/**
 * mount.ecryptfs_private's check_username: [A-Za-z0-9_.@-], '-' not first, '$' only last.
 * Keeps names safe inside paths (/dev/shm/ecryptfs-USER-…) and option strings.
 */
export function isValidUsername(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= 255 && /^[A-Za-z0-9_.@][A-Za-z0-9_.@-]*\$?$/.test(name);
}

function toUserInfo(p: { name: string; uid: number; gid: number; dir: string; shell: string }): UserInfo {
  return { name: p.name, uid: p.uid, gid: p.gid, home: p.dir, shell: p.shell };
}

export function lookupUser(name: string): UserInfo {
  if (!isValidUsername(name as unknown)) {
    if (name === '') throw new AgentError('NO_SUCH_USER', 'user name is empty');
    // `useradd --badname` accepts names like "a+b" or "a b": for a real account, say why it is
    // not served (NO_SUCH_USER is logged only at debug level, so it would fail silently).
    let exists = false;
    try {
      exists = !name.includes('\0') && native().getpwnam(name) !== null;
    } catch {
      /* treated as unknown */
    }
    if (!exists) throw new AgentError('NO_SUCH_USER', 'user name has unsupported characters');
    throw new AgentError('USAGE', `user name ${JSON.stringify(name)} has characters mount.ecryptfs_private refuses; its private directory is not handled`, {
      hint: "Rename the account (usermod -l) to a name of letters, digits, '_', '.', '@' and '-' (a final '$' allowed)",
    });
  }
  const p = call('system', `getpwnam(${name})`, (n) => n.getpwnam(name));
  if (!p) throw new AgentError('NO_SUCH_USER', `no such user: ${name}`);
  return toUserInfo(p);
}

export function lookupUid(uid: number): UserInfo {
  if (!Number.isInteger(uid) || uid < 0 || uid >= 0xffffffff) throw new AgentError('NO_SUCH_USER', `invalid uid ${uid}`);
  const p = call('system', `getpwuid(${uid})`, (n) => n.getpwuid(uid));
  if (!p) throw new AgentError('NO_SUCH_USER', `no user with uid ${uid}`);
  return toUserInfo(p);
}

/**
 * Which ids asUser gives the user (see docs/security.md, "credentials"). In both modes the real
 * and saved uid stay 0: a user can signal a process only when her uid matches its real or saved
 * uid (kill(2)), so she can never kill or stop the root agent at a point of her choosing.
 *  - 'files' (default): effective and fs ids (and groups) are the user's. Files are opened,
 *    created and checked with the user's rights; keys are added, searched and unlinked as hers
 *    (by the serial of her keyring: unlock.possessUserKeyring).
 *  - 'mount': the effective uid stays 0 (mount(2) needs CAP_SYS_ADMIN), the fs ids and groups are
 *    the user's, so the kernel resolves the lower path and searches the auth toks with the user's
 *    rights, never root's. Only around the mount(2) call itself. (ecryptfs_check_dev_ruid, which
 *    compares the lower directory's owner with the REAL uid, is therefore not used: the agent
 *    checks the owner on the opened directory and on the new mount instead, src/actions/private-mount.ts.)
 */
export type AsUserMode = 'files' | 'mount';

export interface AsUserOptions {
  mode?: AsUserMode;
  /** Allow uid 0 as the target (default: refused, acting "as root for root" is a bug). */
  allowRoot?: boolean;
}

interface SavedCreds {
  uid: { ruid: number; euid: number; suid: number };
  gid: { rgid: number; egid: number; sgid: number };
  groups: number[];
}

/** Never continue with the wrong ids: if root cannot be restored, die. */
function fatal(what: string, e: unknown): never {
  try {
    process.stderr.write(`ecryptfs-agent: FATAL: cannot restore credentials (${what}): ${(e as Error)?.message ?? String(e)}\n`);
  } finally {
    process.abort();
  }
}

function restore(saved: SavedCreds): void {
  const n = native();
  // Regain euid 0 first (allowed: saved uid is 0), then groups/gids need that privilege,
  // and the uids go back last. setresuid also resets the fs ids of every thread.
  try {
    n.setresuid(0, 0, 0);
    n.setgroups(saved.groups);
    n.setresgid(saved.gid.rgid, saved.gid.egid, saved.gid.sgid);
    // (each set*id call stops every thread of the process: skip the one that changes nothing)
    if (!isAllRoot(saved.uid)) n.setresuid(saved.uid.ruid, saved.uid.euid, saved.uid.suid);
  } catch (e) {
    fatal('setresuid/setgroups/setresgid', e);
  }
  const u = n.getresuid();
  const g = n.getresgid();
  if (
    u.ruid !== saved.uid.ruid || u.euid !== saved.uid.euid || u.suid !== saved.uid.suid ||
    g.rgid !== saved.gid.rgid || g.egid !== saved.gid.egid || g.sgid !== saved.gid.sgid
  ) {
    fatal('ids differ after restore', new Error(JSON.stringify({ u, g })));
  }
}

/**
 * Runs fn synchronously with the user's credentials (see AsUserMode) and always restores the
 * previous ones (normally root) afterwards. Nesting is allowed (inner calls restore to the outer
 * state). fn must not return a Promise: its asynchronous part would run after the restore.
 */
export function asUser<T>(user: Principal, fn: () => T, opts: AsUserOptions = {}): T {
  const n = native();
  const mode = opts.mode ?? 'files';
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid) || user.uid < 0 || user.gid < 0) {
    throw new AgentError('NO_SUCH_USER', `invalid ids for ${user.name}`);
  }
  if (user.uid === 0 && !opts.allowRoot) throw new AgentError('PERMISSION', 'refusing to switch to uid 0 as a user');
  if (mode === 'files' && user.uid !== 0) {
    // A process that already is this user entirely (the CLI run by the user) just runs fn, so the
    // same use-cases serve root acting for a user and the user's own unprivileged commands.
    const ids = n.getresuid();
    if (ids.ruid === user.uid && ids.euid === user.uid && ids.suid === user.uid) return notAPromise(fn());
  }
  const saved: SavedCreds = { uid: n.getresuid(), gid: n.getresgid(), groups: n.getgroups() };
  if (saved.uid.suid !== 0 && saved.uid.euid !== 0) {
    throw new AgentError('PERMISSION', 'switching to another user needs root (saved or effective uid 0)');
  }
  const groups = groupListOf(user);

  let result: T;
  try {
    if (!isAllRoot(saved.uid)) call('credentials', 'become root', (x) => x.setresuid(0, 0, 0));
    call('credentials', 'setgroups', (x) => x.setgroups(groups));
    if (mode === 'mount') {
      // per thread (mount(2) runs on this one); undone with setfsuid(0) below
      setFsIds(user);
    } else {
      call('credentials', 'setresgid', (x) => x.setresgid(0, user.gid, 0));
      call('credentials', 'setresuid', (x) => x.setresuid(0, user.uid, 0));
    }
    result = fn();
  } finally {
    // setfsuid back to 0 before anything else: it is what raises the fs capabilities
    // (CAP_DAC_OVERRIDE, CAP_FOWNER …) again; setresuid would reset the fs ids but, with the
    // effective uid 0 all along, never give those capabilities back (cap_task_fix_setuid).
    if (mode === 'mount') resetFsIds();
    restore(saved);
  }
  return notAPromise(result);
}

function resetFsIds(): void {
  const n = native();
  try {
    n.setfsuid(0);
    n.setfsgid(0);
  } catch (e) {
    fatal('setfsuid(0)', e);
  }
  if (n.setfsuid(-1) !== 0 || n.setfsgid(-1) !== 0) fatal('fs ids after setfsuid(0)', new Error('not 0'));
}

/** setfsgid/setfsuid to the user's, read back (the kernel reports no error, only the old id). */
function setFsIds(user: Principal): void {
  const n = native();
  n.setfsgid(user.gid);
  n.setfsuid(user.uid);
  const gid = n.setfsgid(-1);
  const uid = n.setfsuid(-1);
  if (gid !== user.gid || uid !== user.uid) {
    throw new AgentError('PERMISSION', `cannot take the file-system ids of ${user.name} (fsuid ${uid}, fsgid ${gid})`);
  }
}

function isAllRoot(ids: { ruid: number; euid: number; suid: number }): boolean {
  return ids.ruid === 0 && ids.euid === 0 && ids.suid === 0;
}

// One agent process lives for one PAM phase and switches to the same user many times: the
// group list (an NSS lookup each time) is read once per user and gid.
const groupLists = new Map<string, number[]>();
function groupListOf(user: Principal): number[] {
  const key = `${user.name}:${user.gid}`;
  let groups = groupLists.get(key);
  if (groups === undefined) {
    groups = call('credentials', `getgrouplist(${user.name})`, (x) => x.getgrouplist(user.name, user.gid));
    groupLists.set(key, groups);
  }
  return [...groups];
}

function notAPromise<T>(result: T): T {
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new AgentError('USAGE', 'asUser: fn returned a Promise; it must be synchronous');
  }
  return result;
}

/** Current ids, for logging and tests. */
export function currentCredentials(): SavedCreds {
  const n = native();
  return { uid: n.getresuid(), gid: n.getresgid(), groups: n.getgroups() };
}

/**
 * Call before holding secrets: no core dumps, no ptrace by the user, no /proc/PID/mem, and every
 * secret buffer from now on in locked pages of its own (formats/secret-memory.ts).
 */
export function hardenProcess(): void {
  call('system', 'prctl(PR_SET_DUMPABLE, 0)', (n) => n.prctlSetDumpable(false));
  call('system', 'setrlimit(RLIMIT_CORE, 0)', (n) => n.setrlimitCoreZero());
  const n = native();
  setSecretAllocator((size) => n.secretBuffer(size));
}

/** Linux resource numbers (asm-generic/resource.h). */
export const RLIMIT = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7, MEMLOCK: 8, AS: 9, LOCKS: 10, SIGPENDING: 11, MSGQUEUE: 12, NICE: 13, RTPRIO: 14, RTTIME: 15 } as const;

const INFINITY = -1;
/**
 * The limits a root agent runs with, whatever its caller set: a user who runs su or passwd with
 * `ulimit -f 0`, `-t 1`, `-v`, `-s`, `-n 16` must not be able to kill or starve the agent at a
 * chosen point (SIGXFSZ in the middle of a re-wrap, SIGXCPU during the KDF, EMFILE before a
 * rename). Only what a caller can turn against a root process: NPROC and MEMLOCK do not bind root
 * (CAP_SYS_RESOURCE/CAP_SYS_ADMIN, CAP_IPC_LOCK), RSS and LOCKS do nothing on Linux. Core dumps
 * stay off (secrets). Mirrored by the PAM module before exec (pam/pam_ecryptfs_agent.c).
 */
export const AGENT_RLIMITS: ReadonlyArray<readonly [keyof typeof RLIMIT, number, number]> = [
  ['CPU', INFINITY, INFINITY],
  ['FSIZE', INFINITY, INFINITY],
  ['DATA', INFINITY, INFINITY],
  ['STACK', 8 << 20, INFINITY],
  ['CORE', 0, 0],
  ['NOFILE', 1024, 4096],
  ['AS', INFINITY, INFINITY],
];

/**
 * The root agent's own process state, reset from whatever the PAM application (a setuid su or
 * passwd started by the user) handed down: full root ids and no supplementary groups, umask 022,
 * the limits above, nice 0 on every thread, oom_score_adj 0. (Secrets are locked in RAM buffer
 * by buffer, see hardenProcess: mlockall would make V8 abort.) The PAM module resets the same
 * before exec (the agent must be able to start at all); this is the second line, and covers any
 * other way it is run.
 * Returns what could not be reset (the caller logs it): nothing fails the agent here.
 */
export function resetInheritedState(): string[] {
  const n = native();
  const problems: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  attempt('setgroups', () => n.setgroups([]));
  attempt('setresgid', () => n.setresgid(0, 0, 0));
  attempt('setresuid', () => n.setresuid(0, 0, 0));
  process.umask(0o022);
  for (const [name, soft, hard] of AGENT_RLIMITS) {
    attempt(`setrlimit(RLIMIT_${name})`, () => {
      if (name === 'CORE') return n.setrlimit(RLIMIT.CORE, 0, 0);
      // only ever raise: a limit someone set higher on purpose stays; nothing to do, no call
      const cur = n.getrlimit(RLIMIT[name]);
      const raise = (want: number, have: number): number => (want === INFINITY || have === INFINITY ? INFINITY : Math.max(want, have));
      const h = raise(hard, cur.hard);
      let sl = raise(soft, cur.soft);
      if (h !== INFINITY && (sl === INFINITY || sl > h)) sl = h;
      if (sl === cur.soft && h === cur.hard) return;
      try {
        n.setrlimit(RLIMIT[name], sl, h);
      } catch (e) {
        // no CAP_SYS_RESOURCE (a container's root): keep the hard limit, raise the soft one to it
        if (h === cur.hard) throw e;
        const capped = cur.hard !== INFINITY && (sl === INFINITY || sl > cur.hard) ? cur.hard : sl;
        if (capped !== cur.soft) n.setrlimit(RLIMIT[name], capped, cur.hard);
        throw e;
      }
    });
  }
  // nice is per thread on Linux: every thread node has started so far (later ones inherit it)
  attempt('setpriority', () => {
    for (const tid of readdirSync('/proc/self/task')) n.setpriority(0 /* PRIO_PROCESS */, Number(tid), 0);
  });
  attempt('oom_score_adj', () => writeFileSync('/proc/self/oom_score_adj', '0\n'));
  return problems;
}

/** Runs /sbin/unix_chkpwd USER nullok with the password on stdin: true when it matches, null when it cannot tell. */
export function checkLoginPassword(user: string, password: Buffer): boolean | null {
  const helper = '/sbin/unix_chkpwd';
  if (!existsSync(helper)) return null;
  try {
    execFileSync(helper, [user, 'nullok'], { input: Buffer.concat([password, Buffer.from([0])]), stdio: ['pipe', 'ignore', 'ignore'] });
    return true;
  } catch (e) {
    const status = (e as { status?: number }).status;
    return status === 7 ? false : null; // PAM_AUTH_ERR; anything else: cannot tell
  }
}
