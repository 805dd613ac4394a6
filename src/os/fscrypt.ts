/**
 * The edge to Debian's fscrypt (package `fscrypt`; `libpam-fscrypt` unlocks at login) for
 * `migrate-out --to fscrypt`: what a filesystem lacks before anything is changed, and the fscrypt
 * commands a migration runs (setup, encrypt, status, lock, unlock), each as root with the login
 * password on a pipe (never argv or env), a fixed PATH and a time limit.
 *
 * fscrypt acts on paths. Root runs it on a directory in the user's home only while the user has
 * no process and cannot log in (migrate-out's account lock), and only when no one else could
 * change the path: every directory above the home is root's and writable by root only.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { AgentError } from '../errors';
import { EXT4_SUPERBLOCK_BYTES, EXT4_SUPERBLOCK_OFFSET, pamFscryptNote, parseExt4Superblock, parseFscryptStatus, parseLoginProtector, type FscryptDirStatus } from '../formats/fscrypt-facts';
import type { MountInfoEntry } from '../formats/mountinfo';
import { mountOf } from './block-encryption';
import { lstatOrNull, onlyRootCanChange } from './secure-file';

const FSCRYPT_BINS = ['/usr/bin/fscrypt', '/usr/local/bin/fscrypt', '/bin/fscrypt'];
const PAM_DIRS = ['/lib/security', '/lib64/security', '/usr/lib/security', '/usr/lib64/security'];
const FSCRYPT_CONF = '/etc/fscrypt.conf';
const PAM_CONF_DIR = '/etc/pam.d';
/** fscrypt keeps login protectors on the root filesystem (actions.LoginProtectorMountpoint) */
const LOGIN_PROTECTOR_MOUNT = '/';
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
/** a run hashes the passphrase (Argon2id, ~1 s by fscrypt's own calibration) a few times */
const FSCRYPT_TIMEOUT_MS = 300_000;

export interface FscryptReadiness {
  /** the fscrypt binary */
  bin: string;
  /** the mount holding the directory */
  mount: MountInfoEntry;
  /** the block device it is mounted from (/dev/NAME) */
  device: string;
  /** fscrypt setup runs still needed (argument lists), in order; empty when set up */
  setup: string[][];
  /** what the admin should know that does not stop the migration (the PAM stacks) */
  notes: string[];
}

/** A root-owned, root-only file of one of `dirs`, or null. */
function trustedFile(candidates: string[]): string | null {
  for (const p of candidates) {
    const st = lstatOrNull(p);
    if (st !== null && st.isFile() && onlyRootCanChange(st) && onlyRootCanChange(fs.lstatSync(dirname(p)))) return p;
  }
  return null;
}

/** pam_fscrypt.so in one of libpam's module directories (multiarch ones included). */
function pamModuleDirs(): string[] {
  const multiarch: string[] = [];
  for (const lib of ['/lib', '/usr/lib']) {
    try {
      for (const n of fs.readdirSync(lib)) if (/-linux-gnu/.test(n)) multiarch.push(join(lib, n, 'security'));
    } catch {
      // no such directory
    }
  }
  return [...multiarch, ...PAM_DIRS];
}

/** The device a mount comes from, by its major:minor (/sys names it: udev's /dev/block links may be missing). */
function deviceOf(m: MountInfoEntry): string | null {
  try {
    const name = /^DEVNAME=(.+)$/m.exec(fs.readFileSync(`/sys/dev/block/${m.major}:${m.minor}/uevent`, 'utf8'))?.[1];
    return name === undefined ? null : `/dev/${name}`;
  } catch {
    return null;
  }
}

function readSuperblock(device: string): Buffer {
  const fd = fs.openSync(device, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const sb = Buffer.alloc(EXT4_SUPERBLOCK_BYTES);
    const n = fs.readSync(fd, sb, 0, sb.length, EXT4_SUPERBLOCK_OFFSET);
    return sb.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Lines of a PAM file that call `module` (comments out). */
function pamFileCalls(file: string, module: string): boolean | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  return text.split('\n').some((l) => !/^\s*#/.test(l) && l.includes(module));
}

/**
 * Everything fscrypt needs for an encrypted directory in `dir`, checked without changing
 * anything; a typed error names what is missing and how to add it.
 */
export function checkFscryptReady(dir: string, mounts: readonly MountInfoEntry[]): FscryptReadiness {
  const bin = trustedFile(FSCRYPT_BINS);
  if (bin === null) {
    throw new AgentError('NOT_FOUND', 'fscrypt is not installed (or not root-owned)', { hint: 'Install it: apt install fscrypt libpam-fscrypt (the login unlock comes with libpam-fscrypt)' });
  }
  if (trustedFile(pamModuleDirs().map((d) => join(d, 'pam_fscrypt.so'))) === null) {
    throw new AgentError('NOT_FOUND', 'pam_fscrypt.so is not installed: no login would unlock the migrated directory', { hint: 'Install it: apt install libpam-fscrypt' });
  }
  const mount = mountOf(dir, mounts);
  if (mount === undefined) throw new AgentError('NOT_FOUND', `no filesystem holding ${dir} in /proc/self/mountinfo`);
  const where = `${mount.source} (${mount.fsType}, mounted on ${mount.mountPoint})`;
  if (mount.fsType !== 'ext4') {
    throw new AgentError('NO_FS_ENCRYPTION', `${dir} is on ${where}: migrate-out --to fscrypt moves into ext4 only`, {
      hint: 'Keep eCryptfs, or where the disk is LUKS-encrypted use --to plain',
    });
  }
  if (!fs.existsSync('/sys/fs/ext4/features/encryption')) {
    throw new AgentError('NO_FS_ENCRYPTION', 'this kernel\'s ext4 cannot encrypt (no /sys/fs/ext4/features/encryption: CONFIG_FS_ENCRYPTION is off)', { hint: 'Boot a kernel built with CONFIG_FS_ENCRYPTION (Debian\'s is)' });
  }
  const device = deviceOf(mount);
  const sb = device === null ? null : parseExt4Superblock(readSuperblock(device));
  if (device === null || sb === null) throw new AgentError('NO_FS_ENCRYPTION', `the ext4 superblock of ${where} could not be read`);
  if (!sb.encrypt) {
    throw new AgentError('NO_FS_ENCRYPTION', `${where} lacks the ext4 "encrypt" feature`, {
      hint: `Turn it on (the filesystem may stay mounted): tune2fs -O encrypt ${device}. It cannot be turned off again, and GRUB before 2.04 cannot read a /boot on such a filesystem`,
    });
  }
  const setup: string[][] = [];
  if (!fs.existsSync(FSCRYPT_CONF)) setup.push(['setup', '--quiet']); // also sets up / for login protectors
  else if (!fs.existsSync(join(LOGIN_PROTECTOR_MOUNT, '.fscrypt'))) setup.push(['setup', LOGIN_PROTECTOR_MOUNT, '--quiet']);
  if (mount.mountPoint !== LOGIN_PROTECTOR_MOUNT && !fs.existsSync(join(mount.mountPoint, '.fscrypt'))) setup.push(['setup', mount.mountPoint, '--quiet']);
  const note = pamFscryptNote(pamFileCalls(join(PAM_CONF_DIR, 'common-auth'), 'pam_fscrypt.so'), pamFileCalls(join(PAM_CONF_DIR, 'common-session'), 'pam_fscrypt.so'));
  return { bin, mount, device, setup, notes: note === null ? [] : [note] };
}

/**
 * No one but root and `owner` can change the path to `dir`: every directory above it is root's
 * and writable by root only; `dir`'s parent may be the owner's (the home).
 */
export function checkPathOnlyOwnerCanChange(dir: string, owner: number): void {
  let p = dirname(dir);
  const ownerMayWrite = p;
  for (;;) {
    const st = lstatOrNull(p);
    const ok = st !== null && st.isDirectory() && (onlyRootCanChange(st) || (p === ownerMayWrite && st.uid === owner && (st.mode & 0o022) === 0));
    if (!ok) throw new AgentError('UNSAFE_PATH', `${p} can be changed by someone other than root${p === ownerMayWrite ? ' and its owner' : ''}: fscrypt would run as root on a path under it`, { hint: `Fix it (chown root: ${p}; chmod go-w ${p}), then run migrate-out again` });
    if (p === '/') return;
    p = dirname(p);
  }
}

/** A login password fscrypt can read from a pipe: one line, none of the bytes its reader edits. */
export function checkPassphraseForFscrypt(pw: Buffer): void {
  for (const b of pw) {
    if (b === 0x0a || b === 0x0d || b === 0x03 || b === 0x04 || b === 0x08 || b === 0x7f) {
      throw new AgentError('USAGE', 'the login password holds a control character fscrypt reads as an edit or the end of the line (CR, LF, ^C, ^D, backspace, DEL)', {
        hint: 'Change the login password to one without control characters, then run migrate-out again',
      });
    }
  }
}

export interface FscryptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** fscrypt ARGS as root; with `password`, it is the one line on fscrypt's stdin (wiped after). */
function runFscrypt(bin: string, args: string[], password?: Buffer): FscryptRun {
  const input = password === undefined ? undefined : Buffer.concat([password, Buffer.from('\n')]);
  try {
    const r = spawnSync(bin, args, { input: input ?? Buffer.alloc(0), env: ENV, stdio: ['pipe', 'pipe', 'pipe'], timeout: FSCRYPT_TIMEOUT_MS, killSignal: 'SIGKILL' });
    if (r.error !== undefined) throw new AgentError('FSCRYPT', `fscrypt ${args[0]}: ${r.error.message}`);
    return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } finally {
    input?.fill(0);
  }
}

function mustSucceed(r: FscryptRun, what: string): FscryptRun {
  if (r.status !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim() || `exit status ${String(r.status)}`).replace(/^\[ERROR\] /, '').split('\n')[0];
    throw new AgentError('FSCRYPT', `${what}: ${why}`);
  }
  return r;
}

/** `fscrypt setup ...` for each step checkFscryptReady listed. */
export function fscryptSetup(bin: string, steps: readonly string[][]): void {
  for (const args of steps) mustSucceed(runFscrypt(bin, args), `fscrypt ${args.join(' ')}`);
}

/**
 * The fscrypt state of `dir`: null when it is not encrypted (fscrypt says so), else its policy,
 * whether it is unlocked, and `user`'s login protector.
 */
export function fscryptStatus(bin: string, dir: string, user: string, mountPoint: string): FscryptDirStatus | null {
  const r = runFscrypt(bin, ['status', dir]);
  if (r.status !== 0 && /is not encrypted/.test(r.stderr)) return null;
  mustSucceed(r, `fscrypt status ${dir}`);
  const s = parseFscryptStatus(r.stdout, user, mountPoint);
  if (s === null) throw new AgentError('FSCRYPT', `fscrypt status ${dir}: output not understood (a newer fscrypt?): ${r.stdout.split('\n').slice(0, 4).join(' | ')}`);
  return s;
}

/** `user`'s login protector (on /, as /:ID), or null when they have none yet. */
export function fscryptLoginProtector(bin: string, user: string): string | null {
  const r = mustSucceed(runFscrypt(bin, ['status', LOGIN_PROTECTOR_MOUNT]), `fscrypt status ${LOGIN_PROTECTOR_MOUNT}`);
  return parseLoginProtector(r.stdout, user, LOGIN_PROTECTOR_MOUNT);
}

/**
 * A new policy on the empty `dir`, protected by `user`'s login passphrase, left unlocked: with
 * their login protector when they have one (fscrypt allows one per user), else a new one on /.
 */
export function fscryptEncrypt(bin: string, dir: string, user: string, password: Buffer): void {
  const existing = fscryptLoginProtector(bin, user);
  const protector = existing === null ? '--source=pam_passphrase' : `--protector=${existing}`;
  mustSucceed(runFscrypt(bin, ['encrypt', dir, protector, `--user=${user}`, '--quiet'], password), `fscrypt encrypt ${dir}`);
}

/** Unlocked with `user`'s login protector (MOUNT:ID): the password is checked by fscrypt. */
export function fscryptUnlock(bin: string, dir: string, user: string, protector: string, password: Buffer): void {
  mustSucceed(runFscrypt(bin, ['unlock', dir, `--unlock-with=${protector}`, `--user=${user}`, '--quiet'], password), `fscrypt unlock ${dir}`);
}

/** Locked for `user` (the key removed; the kernel drops the directory's cached plaintext). */
export function fscryptLock(bin: string, dir: string, user: string): void {
  mustSucceed(runFscrypt(bin, ['lock', dir, `--user=${user}`]), `fscrypt lock ${dir}`);
}
