/**
 * Loader and typed surface of the native addon (src/os/native/addon.cc), plus the one
 * place where native errors become AgentErrors. The addon is loaded lazily so the
 * pure parts of the library (option rendering, mountinfo parsing) work without it.
 *
 * The path is fixed relative to the compiled tree, never taken from the environment (the agent
 * runs as root): build/Release/ next to dist/. This file is dist/src/os/native.js in the tree
 * tsc writes and part of dist/agent/main.js in the agent's bundle, one level less deep: the
 * first of the two places that holds the addon is the one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError, type ErrorCode } from '../errors';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  dir: string;
  shell: string;
}

/** The raw functions. Failures throw an Error with errno (number), code (errno name), syscall. */
export interface NativeAddon {
  addKey(type: string, description: string, payload: Buffer, keyring: number): number;
  keyctlSearch(keyring: number, type: string, description: string, destKeyring?: number): number;
  keyctlRead(id: number): Buffer;
  keyctlLink(id: number, keyring: number): void;
  keyctlUnlink(id: number, keyring: number): void;
  keyctlDescribe(id: number): string;
  keyctlGetKeyringId(spec: number, create: boolean): number;
  keyctlJoinSessionKeyring(name: string | null): number;
  keyctlSetTimeout(id: number, seconds: number): void;
  keyctlRevoke(id: number): void;
  keyctlInvalidate(id: number): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  setresuid(ruid: number, euid: number, suid: number): void;
  setresgid(rgid: number, egid: number, sgid: number): void;
  getresuid(): { ruid: number; euid: number; suid: number };
  getresgid(): { rgid: number; egid: number; sgid: number };
  setgroups(groups: number[]): void;
  getgroups(): number[];
  getgrouplist(user: string, gid: number): number[];
  getpwnam(name: string): PasswdEntry | null;
  getpwuid(uid: number): PasswdEntry | null;
  prctlSetDumpable(dumpable: boolean): void;
  prctlGetDumpable(): number;
  setrlimitCoreZero(): void;
  flock(fd: number, op: number): void;
  syslog(ident: string, priority: number, message: string): void;
  sha512Iterate(first: Buffer, rounds: number): Buffer;
  /** OSSL_PROVIDER_load(NULL, name) in Node's OpenSSL (only "legacy"); false when it is not installed. */
  loadOpensslProvider(name: 'legacy'): boolean;
  /** A zeroed Buffer in pages of its own, locked in RAM (best effort: `mlockErrno` is 0 or the
   * errno), not in core dumps, wiped and unmapped when collected. */
  secretBuffer(size: number): Buffer & { mlockErrno?: number };
  /** -1 = RLIM_INFINITY */
  setrlimit(resource: number, soft: number, hard: number): void;
  getrlimit(resource: number): { soft: number; hard: number };
  setpriority(which: number, who: number, prio: number): void;
  /** per thread; returns the previous fsuid (the kernel reports no error: read it back) */
  setfsuid(fsuid: number): number;
  setfsgid(fsgid: number): number;
  /** Serial of the user keyring of uid (created when missing), asked by a CLONE_VM|CLONE_VFORK
   * child with the user's ids: this process never takes the user's real uid. */
  userKeyringId(uid: number, gid: number): number;
  // ---- BEGIN fd-relative file operations (migrate-home; used through src/os/fs-at.ts)
  // Paths and names: Buffer (raw bytes) or string, no NUL. dirfd: an fd or AT_FDCWD (-100).
  // Failures throw like every call here (errno, code, syscall); none retries or falls back.
  /** openat2(2) with {flags | O_CLOEXEC, mode (only with O_CREAT), resolve}; ENOSYS before Linux 5.6. */
  openat2(dirfd: number, path: Buffer | string, flags: number, mode: number, resolve: number): number;
  /** openat(2), flags | O_CLOEXEC. */
  openat(dirfd: number, path: Buffer | string, flags: number, mode: number): number;
  mkdirat(dirfd: number, path: Buffer | string, mode: number): void;
  symlinkat(target: Buffer | string, dirfd: number, path: Buffer | string): void;
  /** flags 0: a symlink at oldpath is linked itself, never followed. */
  linkat(olddirfd: number, oldpath: Buffer | string, newdirfd: number, newpath: Buffer | string, flags: number): void;
  /** mode includes the S_IF* type; dev is st_rdev (number or BigInt). */
  mknodat(dirfd: number, path: Buffer | string, mode: number, dev: number | bigint): void;
  /** flags: AT_REMOVEDIR for an empty directory. */
  unlinkat(dirfd: number, path: Buffer | string, flags: number): void;
  /** uid/gid -1: unchanged; flags AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH. */
  fchownat(dirfd: number, path: Buffer | string, uid: number, gid: number, flags: number): void;
  /** Exact times (seconds + nanoseconds); path null: futimens(dirfd). */
  utimensat(dirfd: number, path: Buffer | string | null, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number, flags: number): void;
  flistxattr(fd: number): Buffer[];
  fgetxattr(fd: number, name: Buffer | string): Buffer;
  fsetxattr(fd: number, name: Buffer | string, value: Buffer, flags: number): void;
  /** nofollow: l*xattr (a symlink itself); else *xattr (follows, e.g. the /proc/self/fd/N link of an O_PATH fd). */
  pathListxattr(path: Buffer | string, nofollow: boolean): Buffer[];
  pathGetxattr(path: Buffer | string, name: Buffer | string, nofollow: boolean): Buffer;
  pathSetxattr(path: Buffer | string, name: Buffer | string, value: Buffer, flags: number, nofollow: boolean): void;
  // ---- END fd-relative file operations
  // ---- service socket and session watch (the resident agent; used through src/os/service.ts)
  /** A listening AF_UNIX stream socket at path, created with exactly `mode`. */
  listenUnix(path: string, mode: number, backlog: number): number;
  /** poll + accept4 on the listening fds; null on timeout (-1: none). */
  acceptPeer(fds: number[], timeoutMs: number): { fd: number; index: number; pid: number; uid: number; gid: number } | null;
  /** SO_PEERCRED of a connected unix socket. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** SIGKILL this process once the peer of fd has closed its end (a thread of its own waits). */
  killOnHangup(fd: number): void;
  /** the reply is out: a hang-up from now on kills nothing */
  disarmHangupKill(): void;
  /** prctl(PR_SET_PDEATHSIG); 0 clears it. */
  setPdeathsig(signal: number): void;
  pidfdOpen(pid: number): number;
  /** callback once, on the event loop, when fd is readable; returns an id for unwatch. */
  watchReadable(fd: number, callback: () => void): number;
  unwatch(id: number): void;
}

/** Shape of the errors the addon throws. */
export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

const ADDON = join('build', 'Release', 'ecryptfs_native.node');
export const ADDON_PATH = [join(__dirname, '..', '..', '..', ADDON), join(__dirname, '..', '..', ADDON)].find((p) => existsSync(p)) ?? join(__dirname, '..', '..', '..', ADDON);

let cached: NativeAddon | undefined;

/** The addon; AgentError NATIVE when it is missing or does not load. */
export function native(): NativeAddon {
  if (cached) return cached;
  try {
    cached = require(ADDON_PATH) as NativeAddon;
  } catch (e) {
    throw new AgentError('NATIVE', `cannot load the native addon ${ADDON_PATH}: ${(e as Error).message}`, { cause: e });
  }
  return cached;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number' && typeof (e as Partial<NativeError>).code === 'string';
}

export type Concern = 'keyring' | 'mount' | 'credentials' | 'system';

const DEFAULT_CODE: Record<Concern, ErrorCode> = {
  keyring: 'KEYRING',
  mount: 'MOUNT',
  credentials: 'PERMISSION',
  system: 'IO',
};

/**
 * Maps a native error to an AgentError whose code depends on the concern:
 * ENOKEY → KEY_NOT_FOUND, EDQUOT → KEY_QUOTA, EPERM/EACCES → PERMISSION,
 * ENODEV on an eCryptfs mount → NO_ECRYPTFS, else the concern's default.
 * Argument type errors (a bug in the caller) become NATIVE.
 */
export function toAgentError(e: unknown, concern: Concern, what: string, opts: { fstype?: string } = {}): AgentError {
  if (e instanceof AgentError) return e;
  if (!isNativeError(e)) {
    return new AgentError('NATIVE', `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  const name = e.code;
  let code: ErrorCode = DEFAULT_CODE[concern];
  if (name === 'EPERM' || name === 'EACCES') code = 'PERMISSION';
  else if (concern === 'keyring' && name === 'ENOKEY') code = 'KEY_NOT_FOUND';
  else if (name === 'EDQUOT') code = concern === 'keyring' ? 'KEY_QUOTA' : 'IO';
  else if (concern === 'mount' && name === 'ENODEV' && opts.fstype === 'ecryptfs') code = 'NO_ECRYPTFS';
  return new AgentError(code, `${what}: ${e.message}`, { errno: name, cause: e });
}

/** Runs one native call and converts its failure. */
export function call<T>(concern: Concern, what: string, fn: (n: NativeAddon) => T, opts: { fstype?: string } = {}): T {
  const n = native();
  try {
    return fn(n);
  } catch (e) {
    throw toAgentError(e, concern, what, opts);
  }
}
