/**
 * User lookup, temporary credential switches and process hardening.
 *
 * The agent runs as root. Work on a user's files and keyring is done with that user's
 * ids (asUser), keeping saved uid/gid 0 so root can be restored afterwards. The ids are
 * changed by glibc's set*id wrappers, which apply them to every thread of the process.
 */
import { AgentError } from './errors';
import { call, native } from './native';

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** What asUser needs of a user. */
export type Principal = Pick<UserInfo, 'name' | 'uid' | 'gid'>;

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

export interface AsUserOptions {
  /**
   * Only the REAL uid/gid become the user's; effective (and saved) stay 0. This is what
   * mount.ecryptfs_private does around mount(2): the kernel's ecryptfs_check_dev_ruid and
   * the keyring's @u look at the real uid, while the mount itself needs euid 0.
   * Supplementary groups are left as they are.
   */
  effectiveRoot?: boolean;
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
  // and the uids go back last.
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
 * Runs fn synchronously with the user's credentials and always restores the previous ones
 * (normally root) afterwards. Nesting is allowed (inner calls restore to the outer state).
 * fn must not return a Promise: its asynchronous part would run after the restore.
 */
export function asUser<T>(user: Principal, fn: () => T, opts: AsUserOptions = {}): T {
  const n = native();
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid) || user.uid < 0 || user.gid < 0) {
    throw new AgentError('NO_SUCH_USER', `invalid ids for ${user.name}`);
  }
  if (user.uid === 0 && !opts.allowRoot) throw new AgentError('PERMISSION', 'refusing to switch to uid 0 as a user');
  if (!opts.effectiveRoot && user.uid !== 0) {
    // A process that already is this user entirely (the CLI run by the user) just runs fn, so the
    // same use-cases serve root acting for a user and the user's own unprivileged commands.
    const ids = n.getresuid();
    if (ids.ruid === user.uid && ids.euid === user.uid && ids.suid === user.uid) return notAPromise(fn());
  }
  const saved: SavedCreds = { uid: n.getresuid(), gid: n.getresgid(), groups: n.getgroups() };
  if (saved.uid.suid !== 0 && saved.uid.euid !== 0) {
    throw new AgentError('PERMISSION', 'switching to another user needs root (saved or effective uid 0)');
  }
  const groups = opts.effectiveRoot ? saved.groups : groupListOf(user);

  let result: T;
  try {
    if (!isAllRoot(saved.uid)) call('credentials', 'become root', (x) => x.setresuid(0, 0, 0));
    call('credentials', 'setgroups', (x) => x.setgroups(groups));
    if (opts.effectiveRoot) {
      call('credentials', 'setresgid', (x) => x.setresgid(user.gid, 0, 0));
      call('credentials', 'setresuid', (x) => x.setresuid(user.uid, 0, 0));
    } else {
      call('credentials', 'setresgid', (x) => x.setresgid(user.gid, user.gid, 0));
      call('credentials', 'setresuid', (x) => x.setresuid(user.uid, user.uid, 0));
    }
    result = fn();
  } finally {
    restore(saved);
  }
  return notAPromise(result);
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

/** Call before holding secrets: no core dumps, no ptrace by the user, no /proc/PID/mem. */
export function hardenProcess(): void {
  call('system', 'prctl(PR_SET_DUMPABLE, 0)', (n) => n.prctlSetDumpable(false));
  call('system', 'setrlimit(RLIMIT_CORE, 0)', (n) => n.setrlimitCoreZero());
}

/**
 * Runs fn with buf locked in RAM (best effort: mlock may fail on RLIMIT_MEMLOCK; the
 * errno is handed to fn), then zeroes buf and unlocks it, also when fn throws.
 * Works for async fn too (cleanup after the promise settles).
 */
export function withLockedSecret<T>(buf: Buffer, fn: (buf: Buffer, mlockErrno: number) => T): T {
  const n = native();
  const err = n.mlock(buf);
  const cleanup = (): void => {
    buf.fill(0);
    if (err === 0) n.munlock(buf);
  };
  let result: T;
  try {
    result = fn(buf, err);
  } catch (e) {
    cleanup();
    throw e;
  }
  if (result instanceof Promise) return result.finally(cleanup) as T;
  cleanup();
  return result;
}
