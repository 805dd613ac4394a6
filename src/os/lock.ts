/**
 * Exclusive advisory file lock (flock(2); Node has none) for serialising one user's
 * logins/unlocks. Synchronous: waiting polls LOCK_NB, sleeping 5 ms at first and twice as long
 * after each miss up to 100 ms (with jitter). A burst of logins of one user (dozens of agents on
 * an emulated 2-CPU guest in the stress suite) would otherwise spend the CPU its lock holder
 * needs on polling: each miss is a failed syscall turned into an exception.
 */
import { closeSync, constants as fsc, fstatSync, openSync } from 'node:fs';
import { AgentError, errnoOf } from '../errors';
import { call } from './native';
import { onlyRootCanChange } from './secure-file';

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export interface FileLockOptions {
  /** give up after this long (default 5000 ms) with LOCK_TIMEOUT */
  timeoutMs?: number;
}

/**
 * Opens path O_RDWR|O_CREAT|O_NOFOLLOW (0600), refuses anything but a regular file owned by
 * root and not writable by group/others, takes LOCK_EX, runs fn(fd) and always unlocks and
 * closes. The fd may be used to read/write state kept in the lock file.
 */
export function withFileLock<T>(path: string, fn: (fd: number) => T, opts: FileLockOptions = {}): T {
  const timeoutMs = opts.timeoutMs ?? 5000;
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600); // libuv adds O_CLOEXEC itself
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ELOOP') throw new AgentError('SYMLINK_REFUSED', `lock file ${path} is a symbolic link`, { errno, cause: e });
    throw new AgentError(errno === 'EACCES' || errno === 'EPERM' ? 'PERMISSION' : 'IO', `cannot open lock file ${path}: ${(e as Error).message}`, { ...(errno ? { errno } : {}), cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new AgentError('NOT_REGULAR_FILE', `lock file ${path} is not a regular file`);
    if (!onlyRootCanChange(st)) throw new AgentError('BAD_OWNER', `lock file ${path} must be owned by root and writable only by root`, { hint: `Remove ${path}; it is recreated` });
    const deadline = Date.now() + timeoutMs;
    let pause = 5;
    for (;;) {
      try {
        call('system', `flock(${path})`, (n) => n.flock(fd, LOCK.EX | LOCK.NB));
        break;
      } catch (e) {
        if (errnoOf(e) !== 'EWOULDBLOCK' && errnoOf(e) !== 'EAGAIN') throw e;
        const left = deadline - Date.now();
        if (left <= 0) throw new AgentError('LOCK_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${path}`, { errno: 'EWOULDBLOCK' });
        sleepMs(Math.min(pause * (0.8 + 0.4 * Math.random()), left));
        pause = Math.min(pause * 2, 100);
      }
    }
    try {
      return fn(fd);
    } finally {
      try {
        call('system', `unlock ${path}`, (n) => n.flock(fd, LOCK.UN));
      } catch {
        /* close below releases the lock anyway */
      }
    }
  } finally {
    closeSync(fd);
  }
}
