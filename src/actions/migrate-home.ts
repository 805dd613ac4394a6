/**
 * `migrate-home`: moves an existing, unencrypted home into the encrypted-home layout that
 * ecryptfs-migrate-home / `ecryptfs-setup-private -b` (ecryptfs-utils 111) produce, so that
 * pam_ecryptfs and mount.ecryptfs_private mount it as well as our agent:
 *
 *   /home/.ecryptfs/USER            755 USER
 *   /home/.ecryptfs/USER/.ecryptfs  700: wrapped-passphrase, Private.sig, Private.mnt ("/home/USER\n"),
 *                                   auto-mount, auto-umount [, wrapping-independent]
 *   /home/.ecryptfs/USER/.Private   the ciphertext
 *   /home/USER                      500 USER, the mount point, holding only the links
 *                                   .ecryptfs, .Private -> /home/.ecryptfs/USER/…, README.txt and
 *                                   Access-Your-Private-Data.desktop -> /usr/share/ecryptfs-utils/…
 *   inside the mounted home         the same .ecryptfs and .Private links, and the user's files
 *   /home/USER.XXXXXXXX             the plaintext original (700), kept
 *
 * Unlike the reference script (mv, setup, rsync, umount), every step is journaled
 * (src/actions/migrate-journal.ts) and can be resumed after a kill, every file is verified through a
 * fresh mount before the migration counts as done, and the plaintext original is only renamed
 * (its top directory made 700, as the reference does), never written; it is removed only on
 * request (--remove-original) and only after verification.
 * auto-mount is written last: a login during an unfinished migration finds the (empty, read-only)
 * mount point instead of a half-copied home.
 *
 * Root never acts on a path the user can change (docs/security.md): the account is locked for
 * the whole run and the user's processes are refused at every phase; the new home is mounted on a
 * root-only temp dir, never on HOME, while it is filled and verified; and both trees (the original
 * is the user's, and so is the mounted root) are worked on through directory fds only
 * (src/os/fs-at.ts, src/actions/migrate-tree.ts). See docs/migrate-home.md.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join, normalize } from 'node:path';
import { asUser, type UserInfo } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { type DoneRecord, MigrateState, type MigrateJournal, type MigratePhase, phaseAtLeast } from './migrate-journal';
import { DirCursor, DirHandle, parentAndName } from '../os/fs-at';
import {
  applyDirMetadata,
  closeTreeCopy,
  copyEntry,
  countEntries,
  displayRel,
  doneRecordMatches,
  estimateEncryptedBytes,
  joinRel,
  namesTooLong,
  openTreeCopy,
  removeExisting,
  type TreeCopy,
  type TreeCounts,
  type TreeEntry,
  verifyEntry,
  type VerifyFailure,
  walkTree,
} from './migrate-tree';
import { mountEcryptfs, readMountInfo, unmount } from '../os/mount';
import { sigsNoLongerMounted, unmountPrivate } from './private-mount';
import { openDirSafely } from '../os/safe-path';
import { LOWER_FS_TYPES } from '../formats/paths';
import { loadPrivateSetup, type PrivateSetup, setupSigs } from './private-setup';
import { lstatOrNull, onlyRootCanChange, writeFileAtomic } from '../os/secure-file';
import { FLAG_FILE_MODE, newMountPassphrase, type SetupLayout, setupPrivate } from './setup';
import { type MountHolder, processesUsingTree, renderHolders } from '../os/processes';
import { checkKeysAreUsers, forgetKeys, insertMountKeys, possessUserKeyring, unwrapMountPassphrase, type UserKeyring } from './keys';

export const ECRYPTFS_HOMES = '/home/.ecryptfs';

/** The links ecryptfs-setup-private -b leaves in the mount point (seen while the home is locked). */
export const MOUNT_POINT_README_LINKS: ReadonlyArray<readonly [string, string]> = [
  ['README.txt', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.txt'],
  ['Access-Your-Private-Data.desktop', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.desktop'],
];

export interface HomeLayout extends SetupLayout {
  /** /home/.ecryptfs/USER */
  userDir: string;
}

export function homeLayout(user: Pick<UserInfo, 'name' | 'home'>, ecryptfsRoot = ECRYPTFS_HOMES): HomeLayout {
  const userDir = join(ecryptfsRoot, user.name);
  return { userDir, configDir: join(userDir, '.ecryptfs'), lower: join(userDir, '.Private'), upper: user.home };
}

/** The links in the mount point (and, .ecryptfs/.Private, inside the mounted home), name → target. */
export function homeLinks(layout: HomeLayout, withReadme: boolean): Array<[string, string]> {
  const links: Array<[string, string]> = [
    ['.ecryptfs', layout.configDir],
    ['.Private', layout.lower],
  ];
  return withReadme ? [...links, ...MOUNT_POINT_README_LINKS.map(([n, t]) => [n, t] as [string, string])] : links;
}

export interface FsSpace {
  /** bytes available to unprivileged users */
  available: number;
  /** free inodes; null when the filesystem does not count them (btrfs …) */
  freeInodes: number | null;
}

export interface MigrateOptions {
  /** filename encryption (fresh runs; a resumed run keeps what it started with) */
  fnek: boolean;
  wrappingIndependent: boolean;
  /** delete the plaintext original once every file is verified */
  removeOriginal: boolean;
  /** only continue an interrupted migration; refuse to start one */
  resumeOnly: boolean;
  stateDir?: string;
  ecryptfsRoot?: string;
  /** where the root-only mount point is made (default /run/ecryptfs-agent) */
  workDir?: string;
  /** progress lines for the operator (stderr) */
  progress?: (line: string) => void;
  /** for tests: the free space of the filesystem holding `path` */
  space?: (path: string) => FsSpace;
}

export interface MigrationPlan {
  user: UserInfo;
  layout: HomeLayout;
  /** the journal of the interrupted run being resumed, or the one a fresh run will write */
  journal: MigrateJournal;
  resuming: boolean;
  /** the tree being migrated (at HOME, or at the original after the move) */
  entries: TreeEntry[];
  counts: TreeCounts;
  /** how many entries an interrupted run already copied */
  alreadyDone: number;
  neededBytes: number;
  space: FsSpace;
  spacePath: string;
}

export interface MigrateResult {
  original: string;
  originalRemoved: boolean;
  counts: TreeCounts;
  /** entries copied by this run (the rest were copied by the run that was interrupted) */
  copied: number;
  verified: number;
  fnek: boolean;
  sigs: string[];
  warnings: string[];
}

const MiB = 1024 * 1024;
/** Room kept free beyond the estimate (journal, directory growth, the filesystem's own needs). */
export const SPACE_MARGIN_BYTES = 16 * MiB;

/** Pure: what the copy needs, given the estimate of the encrypted size. */
export function spaceNeeded(estimate: number): number {
  return Math.ceil(estimate * 1.05) + SPACE_MARGIN_BYTES;
}

function mib(n: number): string {
  return `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;
}

function defaultSpace(path: string): FsSpace {
  const s = fs.statfsSync(path);
  return { available: Number(s.bavail) * Number(s.bsize), freeInodes: Number(s.files) > 0 ? Number(s.ffree) : null };
}

/** The nearest existing directory at or above path (where the new files will land). */
function existingAncestor(path: string): string {
  let p = path;
  while (lstatOrNull(p) === null && p !== '/') p = dirname(p);
  return p;
}

/** Pure: the plaintext original's name, next to the home (the reference: mktemp /home/USER.XXXXXXXX). */
export function originalName(home: string, random: Buffer = randomBytes(8)): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return `${home}.${Array.from(random.subarray(0, 8), (b) => alphabet[b % alphabet.length]).join('')}`;
}

/** Pure: a home that can be migrated to the layout under ecryptfsRoot (absolute, normal, not a parent of it). */
export function checkHomePath(home: string, ecryptfsRoot = ECRYPTFS_HOMES): void {
  if (!home.startsWith('/') || normalize(home) !== home || home === '/' || home.endsWith('/') || /[\x00-\x1f\x7f]/.test(home)) {
    throw new AgentError('UNSAFE_PATH', `the home directory "${home}" is not an absolute, normalised path`, { hint: 'Fix the home directory in /etc/passwd (usermod -d)' });
  }
  if (ecryptfsRoot === home || ecryptfsRoot.startsWith(`${home}/`) || home.startsWith(`${ecryptfsRoot}/`)) {
    throw new AgentError('UNSAFE_PATH', `the home directory ${home} overlaps ${ecryptfsRoot}, where encrypted homes are kept`, { hint: 'Give the user a home of its own (usermod -d /home/USER -m)' });
  }
}

function renderHoldersWithLegend(dir: string, holders: MountHolder[]): string {
  return `${renderHolders(dir, holders)}(ACCESS: u = runs as the user, c = current directory, r = root directory, f = open file, m = mapped file)`;
}

/**
 * Refuses while USER has a process (any of its uids is USER's) or any process uses a file under
 * dirs. `stage`: the phase about to start in a run (the message then says the run stopped there).
 */
export function checkNoProcesses(user: UserInfo, dirs: string[], stage?: string, command = 'migrate-home'): void {
  const seen = new Map<number, MountHolder>();
  for (const dir of dirs) {
    for (const h of processesUsingTree(dir, user.uid).holders) {
      const prev = seen.get(h.pid);
      seen.set(h.pid, prev ? { ...prev, access: [...new Set(prev.access + h.access)].join('') } : h);
    }
  }
  if (seen.size > 0) {
    const holders = [...seen.values()].sort((a, b) => a.pid - b.pid);
    const where = stage === undefined ? '' : ` (found before the ${stage}: the migration stopped there, nothing is lost)`;
    throw new AgentError('IN_USE', `${user.name} is logged in or has processes running (${holders.length})${where}; the home must not change while it is migrated:\n${renderHoldersWithLegend(user.home, holders)}`, {
      hint: `Log ${user.name} out and end those processes (loginctl terminate-user ${user.name}, or pkill -KILL -u ${user.name}), then run ${command} again${stage === undefined ? '' : ' to resume'}`,
    });
  }
}

function checkNoMountsInside(home: string, allowEcryptfsAtHome: boolean): void {
  for (const m of readMountInfo()) {
    if (m.mountPoint === home && allowEcryptfsAtHome && m.fsType === 'ecryptfs') continue;
    if (m.mountPoint === home || m.mountPoint.startsWith(`${home}/`)) {
      throw new AgentError('IN_USE', `${m.mountPoint} is a mount point (${m.fsType}); migrate-home moves a home that is one plain directory tree`, {
        hint: `Unmount it first (umount ${m.mountPoint}), then run migrate-home again`,
      });
    }
  }
}

/** A fresh migration: the home must be a plain, unencrypted directory of the user and nothing of the layout may exist yet. */
function checkFreshHome(user: UserInfo, layout: HomeLayout, ecryptfsRoot: string): void {
  const st = lstatOrNull(user.home);
  if (st === null) throw new AgentError('NOT_FOUND', `the home directory ${user.home} of ${user.name} does not exist`, { hint: 'Nothing to migrate' });
  if (st.isSymbolicLink()) {
    throw new AgentError('SYMLINK_REFUSED', `${user.home} is a symbolic link`, { hint: `Point the user at the real directory first (usermod -d $(readlink -f ${user.home}) ${user.name})` });
  }
  if (!st.isDirectory()) throw new AgentError('NOT_REGULAR_FILE', `${user.home} is not a directory`);
  if (st.uid !== user.uid) throw new AgentError('BAD_OWNER', `${user.home} is owned by uid ${st.uid}, not by ${user.name}`, { hint: `chown ${user.name} ${user.home}, then try again` });
  const dotEcryptfs = join(user.home, '.ecryptfs');
  const cst = lstatOrNull(dotEcryptfs);
  if (cst !== null) {
    const already = cst.isSymbolicLink() && fs.readlinkSync(dotEcryptfs) === layout.configDir;
    throw new AgentError(
      'ALREADY_EXISTS',
      already ? `${user.home} is already an encrypted home (${dotEcryptfs} -> ${layout.configDir}); nothing changed` : `${user.home} already has an eCryptfs setup (${dotEcryptfs} exists); nothing changed`,
      { hint: already ? 'Nothing to migrate. Log in as the user to use it' : 'migrate-home encrypts plain homes only; to remove a ~/Private setup first, see: ecryptfs-setup-private --undo' },
    );
  }
  if (lstatOrNull(join(user.home, '.Private')) !== null) {
    throw new AgentError('ALREADY_EXISTS', `${join(user.home, '.Private')} exists; the encrypted home needs that name for its link to the encrypted files`, {
      hint: `Move it away (or rmdir it if it is empty), then try again`,
    });
  }
  const rst = lstatOrNull(ecryptfsRoot);
  if (rst !== null && (!rst.isDirectory() || !onlyRootCanChange(rst))) {
    throw new AgentError('UNSAFE_PATH', `${ecryptfsRoot} must be a directory owned by root and writable only by root`);
  }
  const ust = lstatOrNull(layout.userDir);
  if (ust !== null && (!ust.isDirectory() || fs.readdirSync(layout.userDir).length > 0)) {
    throw new AgentError('ALREADY_EXISTS', `${layout.userDir} already exists and is not empty (an earlier encrypted home of ${user.name}?); nothing changed`, {
      hint: `Move it away if it is no longer needed (mv ${layout.userDir} ${layout.userDir}.old), then try again`,
    });
  }
}

function checkJournalFits(user: UserInfo, j: MigrateJournal, layout: HomeLayout, file: string): void {
  if (j.user !== user.name || j.uid !== user.uid || j.gid !== user.gid || j.home !== user.home || j.userDir !== layout.userDir) {
    throw new AgentError('BAD_CONFIG', `${file} describes another account (${j.user}, uid ${j.uid}, home ${j.home}) than ${user.name} (uid ${user.uid}, home ${user.home})`, {
      hint: `The account changed since the migration started; restore it, or see docs/migrate-home.md ("Starting over")`,
    });
  }
}

/**
 * Everything that can be checked before anything is changed, in this order: the account, an
 * interrupted run (resumed) or an existing setup (refused), mounts inside the home, the user's
 * processes, the tree itself (one filesystem, names eCryptfs can store), and free space.
 * Changes nothing.
 */
export function preflightMigration(user: UserInfo, opts: MigrateOptions): MigrationPlan {
  if (user.uid === 0) throw new AgentError('USAGE', "refusing to migrate root's home", { hint: 'Encrypt homes of ordinary users only' });
  const ecryptfsRoot = opts.ecryptfsRoot ?? ECRYPTFS_HOMES;
  checkHomePath(user.home, ecryptfsRoot);
  const layout = homeLayout(user, ecryptfsRoot);
  const state = new MigrateState(user.name, opts.stateDir);
  const existing = state.readJournal();
  let journal: MigrateJournal;
  if (existing !== null) {
    checkJournalFits(user, existing, layout, state.journalPath);
    journal = existing;
  } else {
    if (opts.resumeOnly) {
      throw new AgentError('NOT_FOUND', `there is no interrupted migration of ${user.name} to resume (no ${state.journalPath})`, { hint: `Start one: ecryptfs-agent migrate-home -u ${user.name}` });
    }
    checkFreshHome(user, layout, ecryptfsRoot);
    let original = originalName(user.home);
    while (lstatOrNull(original) !== null) original = originalName(user.home);
    journal = {
      version: 1,
      user: user.name,
      uid: user.uid,
      gid: user.gid,
      home: user.home,
      original,
      userDir: layout.userDir,
      fnek: opts.fnek,
      wrappingIndependent: opts.wrappingIndependent,
      phase: 'started',
      started: new Date().toISOString(),
    };
  }
  const resuming = existing !== null;
  if (readExpiry(user.name) === null) {
    throw new AgentError('USAGE', `${user.name} has no line in ${SHADOW_FILE} (not a local account?): migrate-home locks the account for the whole run by its expiry date (usermod --expiredate 1), which needs one; nothing changed`, {
      hint: 'Migrate local accounts only (or give the account a shadow entry: pwconv)',
    });
  }
  checkNoMountsInside(user.home, resuming);
  const source = resuming && lstatOrNull(journal.original) !== null ? journal.original : user.home;
  if (source !== user.home) checkNoMountsInside(source, false);
  checkNoProcesses(user, resuming ? [user.home, journal.original] : [user.home]);

  const entries = walkTree(source);
  const tooLong = namesTooLong(entries, journal.fnek);
  if (tooLong.length > 0) {
    const list = tooLong.slice(0, 10).map((e) => `  ${displayRel(joinRel(source, e.rel))}`).join('\n');
    throw new AgentError('NAME_TOO_LONG', `${tooLong.length} name(s) in ${source} are too long for eCryptfs${journal.fnek ? ' with filename encryption (at most 143 bytes)' : ' (at most 255 bytes)'}:\n${list}${tooLong.length > 10 ? '\n  ...' : ''}`);
  }
  const done = resuming ? state.readDone() : new Map<string, DoneRecord>();
  const remaining = entries.filter((e) => !doneRecordMatches(done.get(e.rel.toString('latin1')), e));
  const neededBytes = phaseAtLeast(journal, 'copied') ? 0 : spaceNeeded(estimateEncryptedBytes(remaining));
  const spacePath = existingAncestor(layout.userDir);
  const space = (opts.space ?? defaultSpace)(spacePath);
  const counts = countEntries(entries);
  if (neededBytes > space.available) {
    throw new AgentError(
      'NO_SPACE',
      `not enough free space for the encrypted copy: ${source} (${counts.files} files, ${mib(counts.bytes)}) needs about ${mib(neededBytes)} in ${spacePath}, where ${mib(space.available)} are free; nothing changed`,
      { hint: `The plaintext original is kept until you delete it, so the encrypted copy needs room of its own. Free space on the filesystem of ${spacePath} (or move data out of ${user.home}), then try again` },
    );
  }
  if (space.freeInodes !== null && !phaseAtLeast(journal, 'copied') && space.freeInodes < remaining.length + 64) {
    throw new AgentError('NO_SPACE', `not enough free inodes in ${spacePath}: ${remaining.length} entries to copy, ${space.freeInodes} inodes free; nothing changed`);
  }
  return { user, layout, journal, resuming, entries, counts, alreadyDone: entries.length - remaining.length, neededBytes, space, spacePath };
}

// ------------------------------------------------------------------ the account lock

/**
 * For the whole run the account is locked: its expiry date in /etc/shadow is set to day 1
 * (1970-01-02) with `usermod --expiredate 1`. pam_unix's account check then refuses every new
 * session of the user, whatever the authentication: password or ssh key logins (sshd), su, login,
 * the display manager, cron and at jobs (Debian's cron and atd run the PAM account stack),
 * systemd --user (user@.service goes through PAM too); sshd refuses an expired account even
 * without PAM. Unlike `usermod -L` (password only) or /etc/nologin (everyone), it stops exactly
 * the user, and nothing else. The old value is kept in the journal before the lock is set and
 * put back when the run ends, successfully or not, or by the next run after a kill. Processes the
 * user already has are refused at the start of every phase (checkNoProcesses), so none is left
 * that could change the trees while root works in them. Root remains able to start processes as
 * the user (su from root, a mail delivery agent running a ~/.forward pipe …): those are caught at
 * the next phase, and cannot reach the new home meanwhile (root-only mount point, below).
 */
export const SHADOW_FILE = '/etc/shadow';
/** The expiry date while locked: day 1 (0 is taken as "no expiry" by some tools). */
export const LOCKED_EXPIRY = '1';

/** Pure: USER's account expiry field in shadow(5) text: '' (never) or days since 1970-01-01; null when USER has no line. */
export function shadowExpiry(text: string, user: string): string | null {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] !== user) continue;
    const v = f[7];
    if (f.length < 9 || v === undefined || !/^(-1|\d{1,7})?$/.test(v)) throw new AgentError('BAD_CONFIG', `the line of ${user} in ${SHADOW_FILE} is malformed (expiry field)`);
    return v === '-1' ? '' : v;
  }
  return null;
}

/** Pure: an expiry field for people: "never", or its date. */
export function describeExpiry(v: string): string {
  return v === '' ? 'never' : new Date(Number(v) * 86_400_000).toISOString().slice(0, 10);
}

export function readExpiry(user: string): string | null {
  return shadowExpiry(fs.readFileSync(SHADOW_FILE, 'utf8'), user);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** usermod --expiredate VALUE USER ('' = never), retried while another tool holds /etc/shadow's lock; checked after. */
export function setExpiry(user: string, value: string): void {
  let last = '';
  for (let attempt = 1; attempt <= 10; attempt++) {
    const r = spawnSync('usermod', ['--expiredate', value, '--', user], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    last = r.error ? r.error.message : `${r.stderr?.toString('utf8').trim() ?? ''} (exit ${r.status})`;
    if (!r.error && r.status === 0 && readExpiry(user) === value) return;
    // another tool holding /etc/shadow's lock clears within seconds; any other failure is tried
    // three times (an account left locked is the one outcome to avoid), then reported
    if (r.error || (!/lock|try again/i.test(last) && attempt >= 3)) break;
    sleepMs(500);
  }
  throw new AgentError('IO', `cannot set the account expiry of ${user} to ${describeExpiry(value)} (usermod --expiredate '${value}' ${user}): ${last}`);
}

// ------------------------------------------------------------------ the root-only mount point

/** Where the encrypted home is mounted while it is filled and verified (a root-only temp dir in it). */
export const MIGRATE_WORK_DIR = '/run/ecryptfs-agent';
const ECRYPTFS_SUPER_MAGIC = 0xf15f;
const MOUNT_NAME = 'home';
const TEMP_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Pure: the names of the temp dirs of USER's runs in the work dir: migrate-USER-XXXXXX. */
export function isWorkDirName(name: string, user: string): boolean {
  const prefix = `migrate-${user}-`;
  return name.startsWith(prefix) && /^[A-Za-z0-9]{6}$/.test(name.slice(prefix.length));
}

/** The work dir itself: a directory of root that no one else may write (created 700 if missing). */
function openWorkBase(path: string): DirHandle {
  fs.mkdirSync(path, { recursive: true, mode: 0o700 });
  const base = DirHandle.openPath(path);
  const st = base.statSelf();
  if (!st.isDirectory() || !onlyRootCanChange(st)) {
    base.close();
    throw new AgentError('UNSAFE_PATH', `${path} must be a directory owned by root and writable only by root`, { hint: `Fix it (chown root: ${path}; chmod 700 ${path}), then run migrate-home again` });
  }
  return base;
}

/**
 * A fresh directory of root, mode 700, in the work dir, holding the empty mount point `home`
 * (700, root's). The new encrypted home is mounted there, not on HOME, for the copy and for the
 * verification: its root is the user's (the lower directory is theirs), but no process of the user
 * can reach it, since it sits in a directory only root may enter. Every step goes through fds: the
 * mount targets /proc/self/fd/N of the open mount point, the unmount names `home` through the fd
 * of the root-only directory, never a path the user could change.
 */
class RootOnlyMountPoint {
  private constructor(
    private readonly base: DirHandle,
    readonly name: string,
    readonly dir: DirHandle,
  ) {}

  get path(): string {
    return `${this.base.display.toString()}/${this.name}/${MOUNT_NAME}`;
  }

  static create(workDir: string, user: string): RootOnlyMountPoint {
    const base = openWorkBase(workDir);
    try {
      for (let tries = 0; ; tries++) {
        const name = `migrate-${user}-${Array.from(randomBytes(6), (b) => TEMP_ALPHABET[b % TEMP_ALPHABET.length]).join('')}`;
        try {
          base.mkdir(name, 0o700);
        } catch (e) {
          if (isAgentError(e) && e.errno === 'EEXIST' && tries < 20) continue;
          throw e;
        }
        const dir = base.openDir(name);
        fs.fchmodSync(dir.fd, 0o700); // whatever the umask
        dir.mkdir(MOUNT_NAME, 0o700);
        return new RootOnlyMountPoint(base, name, dir);
      }
    } catch (e) {
      base.close();
      throw e;
    }
  }

  /** Whether something is mounted on `home` (its device differs from the directory holding it). */
  private mountedNow(): boolean {
    const st = this.dir.stat(MOUNT_NAME);
    return st !== null && st.dev !== this.dir.statSelf().dev;
  }

  /**
   * Mounts the lower directory (opened as the user, one component at a time with O_NOFOLLOW, owned
   * by the user, on an allowed filesystem type) on `home`, with the real uid of the user and euid 0
   * (ecryptfs_check_dev_ruid; the key lookup in the user's keyring), with the options a login uses.
   * Returns the root of the mount, opened (the caller closes it before unmount).
   */
  mount(ring: UserKeyring, setup: PrivateSetup, lower: string): DirHandle {
    const user = ring.owner;
    const target = this.dir.openDir(MOUNT_NAME);
    try {
      const lowerFd = asUser(user, () => openDirSafely(lower, { owner: user, role: 'encrypted directory', approved: LOWER_FS_TYPES }));
      try {
        checkKeysAreUsers(ring, setupSigs(setup));
        const opts: Parameters<typeof mountEcryptfs>[2] = { sigs: [setup.fekSig], cipher: 'aes', keyBytes: 16, unlinkSigs: true, checkDevRuid: false };
        if (setup.fnekSig !== undefined) opts.fnekSig = setup.fnekSig;
        asUser(user, () => mountEcryptfs(`/proc/self/fd/${lowerFd}`, `/proc/self/fd/${target.fd}`, opts), { mode: 'mount' });
      } finally {
        fs.closeSync(lowerFd);
      }
    } finally {
      target.close();
    }
    const root = this.dir.openDir(MOUNT_NAME);
    if (Number(fs.statfsSync(root.proc).type) !== ECRYPTFS_SUPER_MAGIC) {
      root.close();
      this.unmount();
      throw new AgentError('MOUNT', `the encrypted home did not appear on ${this.path} after mounting it`);
    }
    return root;
  }

  /** Unmounts `home` through the fd of the root-only directory (busy: detached lazily). */
  unmount(): void {
    if (!this.mountedNow()) return;
    const target = `/proc/self/fd/${this.dir.fd}/${MOUNT_NAME}`;
    try {
      unmount(target, {});
    } catch (e) {
      if (!isAgentError(e, 'UNMOUNT_BUSY')) throw e;
      unmount(target, { lazy: true });
    }
  }

  /** Unmounts if needed and removes the directory. */
  remove(): void {
    try {
      this.unmount();
      this.dir.rmdir(MOUNT_NAME);
      this.dir.close();
      this.base.rmdir(this.name);
    } finally {
      this.dir.close();
      this.base.close();
    }
  }

  /**
   * What runs of USER killed before they could clean up left in the work dir: each temp dir is
   * unmounted (through its fd) and removed. Returns how many were found.
   */
  static removeLeftovers(workDir: string, user: string): number {
    if (!fs.existsSync(workDir)) return 0;
    const base = openWorkBase(workDir);
    let n = 0;
    try {
      for (const nameBuf of base.readdir()) {
        const name = nameBuf.toString('latin1');
        if (!isWorkDirName(name, user)) continue;
        const dir = base.openDir(name);
        new RootOnlyMountPoint(base, name, dir).unmount();
        if (dir.stat(MOUNT_NAME) !== null) dir.rmdir(MOUNT_NAME);
        dir.close();
        base.rmdir(name);
        n++;
      }
    } finally {
      base.close();
    }
    return n;
  }
}

// ------------------------------------------------------------------ the steps

/** The directory holding HOME (and the original next to it): root's, writable by root only. */
function openHomeParent(home: string): DirHandle {
  const parent = DirHandle.openPath(dirname(home));
  const st = parent.statSelf();
  if (!onlyRootCanChange(st)) {
    parent.close();
    throw new AgentError('UNSAFE_PATH', `${dirname(home)} must be owned by root and writable by root only: the home is renamed in it`);
  }
  return parent;
}

class Migration {
  private readonly state: MigrateState;
  private readonly progress: (line: string) => void;
  private journal: MigrateJournal;
  private entries: TreeEntry[];
  private mountPassphrase: Buffer | null = null;
  /** this run's root-only mount point, and the mount on it (the setup whose keys it uses) */
  private mountPoint: RootOnlyMountPoint | null = null;
  private mountedSetup: PrivateSetup | null = null;
  readonly warnings: string[] = [];
  copied = 0;
  verified = 0;

  constructor(
    private readonly plan: MigrationPlan,
    private readonly opts: MigrateOptions,
  ) {
    this.state = new MigrateState(plan.user.name, opts.stateDir);
    this.progress = opts.progress ?? ((): void => undefined);
    this.journal = { ...plan.journal };
    this.entries = plan.entries;
  }

  private get user(): UserInfo {
    return this.plan.user;
  }

  private get layout(): HomeLayout {
    return this.plan.layout;
  }

  private get workDir(): string {
    return this.opts.workDir ?? MIGRATE_WORK_DIR;
  }

  private advance(phase: MigratePhase): void {
    this.journal = { ...this.journal, phase };
    this.state.writeJournal(this.journal);
  }

  /**
   * Before the first change: the old expiry into the journal (kept from a killed run's journal,
   * where shadow already says locked), the journal written, then the account locked.
   */
  private lockAccount(): void {
    const previous = this.journal.previousExpiry ?? readExpiry(this.user.name);
    if (previous === null) throw new AgentError('USAGE', `${this.user.name} has no line in ${SHADOW_FILE}; nothing changed`);
    this.journal = { ...this.journal, previousExpiry: previous };
    this.state.writeJournal(this.journal);
    setExpiry(this.user.name, LOCKED_EXPIRY);
    this.progress(
      `The account ${this.user.name} is LOCKED while the migration runs (expiry date set to ${describeExpiry(LOCKED_EXPIRY)}; it was ${describeExpiry(previous)}): no login, ssh key login, su, cron or at job of ${this.user.name} can start. It is unlocked when the run ends, successfully or not.`,
    );
  }

  /** The expiry back to what it was, and out of the journal (if the journal is still there). */
  private unlockAccount(): void {
    const previous = this.journal.previousExpiry;
    if (previous === undefined) return;
    setExpiry(this.user.name, previous);
    const { previousExpiry: _restored, ...rest } = this.journal;
    this.journal = rest;
    if (this.state.readJournal() !== null) this.state.writeJournal(this.journal);
    this.progress(`The account ${this.user.name} is unlocked again (expiry date ${describeExpiry(previous)}).`);
  }

  /** At the start of every phase: no process of the user, none in the home or the original. */
  private checkProcesses(stage: string): void {
    checkNoProcesses(this.user, [this.user.home, this.journal.original], stage);
  }

  private names(): { home: string; original: string } {
    return { home: basename(this.journal.home), original: basename(this.journal.original) };
  }

  /**
   * started → moved: rename the home to the original's name and make its top directory 700, as
   * ecryptfs-migrate-home does (the plaintext copy must not stay readable by others; nothing inside
   * it changes, and the encrypted home gets the same 700); make the new, empty mount point.
   * All of it relative to the fd of the home's parent (root's).
   */
  move(): void {
    const { home, original } = this.journal;
    const names = this.names();
    const parent = openHomeParent(home);
    try {
      if (parent.stat(names.original) === null) {
        if (parent.stat(names.home) === null) throw new AgentError('NOT_FOUND', `neither ${home} nor ${original} exists: the home was moved by someone else`);
        parent.rename(names.home, parent, names.original);
        this.progress(`Moved ${home} to ${original} (the plaintext original: its files are kept as they are).`);
      }
      const orig = parent.openDir(names.original);
      try {
        fs.fchmodSync(orig.fd, 0o700);
      } finally {
        orig.close();
      }
      const st = parent.stat(names.home);
      if (st === null) {
        parent.mkdir(names.home, 0o700);
        const h = parent.openDir(names.home);
        try {
          fs.fchownSync(h.fd, this.user.uid, this.user.gid);
          fs.fchmodSync(h.fd, 0o700);
        } finally {
          h.close();
        }
      } else {
        const ours = new Set(homeLinks(this.layout, true).map(([n]) => n));
        let foreign = ['(not a directory)'];
        if (st.isDirectory()) {
          const h = parent.openDir(names.home);
          try {
            foreign = h.readdir().map((n) => n.toString('utf8')).filter((n) => !ours.has(n));
          } finally {
            h.close();
          }
        }
        if (foreign.length > 0 || Number(st.uid) !== this.user.uid) {
          throw new AgentError('ALREADY_EXISTS', `${home} was recreated by someone else since the migration started (it holds ${foreign.slice(0, 3).join(', ')})`, {
            hint: `The plaintext original is intact in ${original}. Move ${home} away, then run migrate-home again to resume`,
          });
        }
      }
    } finally {
      parent.close();
    }
    this.makeMountPointLinks();
    this.advance('moved');
  }

  /** The links in the (unmounted) mount point HOME, made as the user so that they are the user's, where missing. */
  private makeMountPointLinks(): void {
    asUser(this.user, () => {
      for (const [name, target] of homeLinks(this.layout, true)) {
        const path = join(this.user.home, name);
        if (lstatOrNull(path) === null) fs.symlinkSync(target, path);
      }
    });
  }

  /** The .ecryptfs and .Private links inside the mounted home (root: the user's, as the user would make them), where missing. */
  private makeLinksInside(root: DirHandle): void {
    for (const [name, target] of homeLinks(this.layout, false)) {
      if (root.stat(name) !== null) continue;
      root.symlink(Buffer.from(target), name);
      root.chown(name, this.user.uid, this.user.gid);
    }
  }

  /** The plaintext original, opened beneath the home's parent: the user's directory, on one filesystem. */
  private openOriginal(): DirHandle {
    const parent = openHomeParent(this.journal.home);
    try {
      const dir = parent.openDir(this.names().original);
      const st = dir.statSelf();
      if (Number(st.uid) !== this.user.uid) {
        dir.close();
        throw new AgentError('BAD_OWNER', `${this.journal.original} is not owned by ${this.user.name} (uid ${st.uid}): it is not the home that was moved`);
      }
      return DirHandle.fromFd(dir.release(), this.journal.original, true);
    } finally {
      parent.close();
    }
  }

  /** /home/.ecryptfs (root's, 755) and /home/.ecryptfs/USER (the user's, 755), made through fds where missing. */
  private makeUserDir(): void {
    const { userDir } = this.layout;
    const root = dirname(userDir);
    const top = DirHandle.openPath(dirname(root));
    try {
      const rootName = basename(root);
      if (top.stat(rootName) === null) {
        top.mkdir(rootName, 0o755);
        const r = top.openDir(rootName);
        try {
          fs.fchmodSync(r.fd, 0o755);
        } finally {
          r.close();
        }
      }
      const r = top.openDir(rootName);
      try {
        const st = r.statSelf();
        if (!onlyRootCanChange(st)) throw new AgentError('UNSAFE_PATH', `${root} must be a directory owned by root and writable only by root`);
        const name = basename(userDir);
        if (r.stat(name) === null) {
          r.mkdir(name, 0o755);
          const u = r.openDir(name);
          try {
            fs.fchmodSync(u.fd, 0o755);
            fs.fchownSync(u.fd, this.user.uid, this.user.gid);
          } finally {
            u.close();
          }
        }
      } finally {
        r.close();
      }
    } finally {
      top.close();
    }
  }

  /** moved → set-up: the eCryptfs setup with a new random mount passphrase, wrapped with the given passphrase. */
  setUp(wrappingPassphrase: Buffer): void {
    const { configDir, lower } = this.layout;
    this.makeUserDir();
    asUser(this.user, () => {
      if (lstatOrNull(join(configDir, 'Private.sig')) !== null) return; // completed before a kill
      // a setup interrupted before Private.sig (its last file): nothing was encrypted with it yet
      fs.rmSync(configDir, { recursive: true, force: true });
      if (lstatOrNull(lower) !== null) fs.rmdirSync(lower);
      this.mountPassphrase = newMountPassphrase();
      setupPrivate(this.user, this.mountPassphrase, wrappingPassphrase, {
        layout: this.layout,
        fnek: this.journal.fnek,
        wrappingIndependent: this.journal.wrappingIndependent,
        autoMount: false, // written when the migration is complete (commit)
        autoUmount: true,
        force: false,
      });
    });
    this.advance('set-up');
  }

  /** The setup, read (as the user) from /home/.ecryptfs/USER directly. */
  private readSetup(): PrivateSetup {
    const setup = asUser(this.user, () => loadPrivateSetup({ ...this.user, home: this.layout.userDir }));
    if (setup === null || setup.upper !== this.user.home) {
      throw new AgentError('BAD_CONFIG', `the encrypted-home setup in ${this.layout.configDir} is incomplete or does not name ${this.user.home} as its mount point`);
    }
    return setup;
  }

  /** The mount passphrase: the one just generated, or unwrapped from the setup with the passphrase given. */
  unlock(wrappingPassphrase: Buffer): void {
    if (this.mountPassphrase !== null) return;
    const setup = this.readSetup();
    this.mountPassphrase = unwrapMountPassphrase(this.user, setup, wrappingPassphrase);
  }

  /**
   * Mounts the encrypted home on this run's root-only mount point (fresh page cache on every
   * mount) and returns its root, open; the caller closes it before unmount().
   */
  private mount(): DirHandle {
    const setup = this.readSetup();
    this.mountPoint ??= RootOnlyMountPoint.create(this.workDir, this.user.name);
    const ring = possessUserKeyring(this.user);
    insertMountKeys(ring, setup, this.mountPassphrase as Buffer);
    try {
      const root = this.mountPoint.mount(ring, setup, this.layout.lower);
      this.mountedSetup = setup;
      return root;
    } catch (e) {
      forgetKeys(ring, sigsNoLongerMounted(setup));
      throw e;
    }
  }

  private unmount(): void {
    this.mountPoint?.unmount();
    if (this.mountedSetup !== null) forgetKeys(possessUserKeyring(this.user), sigsNoLongerMounted(this.mountedSetup));
    this.mountedSetup = null;
  }

  /** The root-only mount point goes at the end of the run (and after a failure), mounted or not. */
  private removeMountPoint(): void {
    const mp = this.mountPoint;
    this.mountPoint = null;
    try {
      mp?.remove();
    } finally {
      if (this.mountedSetup !== null) forgetKeys(possessUserKeyring(this.user), sigsNoLongerMounted(this.mountedSetup));
      this.mountedSetup = null;
    }
  }

  /**
   * An interrupted run may have left the encrypted home mounted: on its root-only mount point (in
   * the work dir), or, for a run of an older version, on HOME itself (in root's /home, unmounted
   * with UMOUNT_NOFOLLOW). Start from the unmounted state, and without the keys.
   */
  unmountLeftover(): void {
    const found = RootOnlyMountPoint.removeLeftovers(this.workDir, this.user.name);
    const atHome = readMountInfo().some((m) => m.mountPoint === this.user.home && m.fsType === 'ecryptfs');
    // (the older version mounted from the link $HOME/.Private: that is the source it shows)
    if (atHome) unmountPrivate(this.user, { ...this.readSetup(), lower: join(this.user.home, '.Private') });
    if (found > 0 || atHome) {
      const setup = this.readSetup();
      forgetKeys(possessUserKeyring(this.user), sigsNoLongerMounted(setup));
    }
  }

  /** set-up → copied: every entry into the mounted home, logged as it completes. */
  copy(): void {
    const root = this.mount();
    try {
      this.makeLinksInside(root);
      const done = this.state.readDone();
      const t = this.openCopy(root);
      const log = this.state.openDoneLog();
      const total = this.entries.length;
      const recopied = new Set<string>();
      let last = Date.now();
      let bytes = 0;
      try {
        for (const [i, e] of this.entries.entries()) {
          if (e.rel.length === 0) continue;
          const key = e.rel.toString('latin1');
          const isData = e.kind === 'file' || e.kind === 'symlink';
          const stale = e.linkOf !== undefined && recopied.has(e.linkOf.toString('latin1'));
          if (isData && !stale && doneRecordMatches(done.get(key), e) && this.destIsKind(t.dst, e)) continue;
          const r = copyEntry(t, e);
          if (r !== null) {
            log.append(r);
            done.set(key, r);
            recopied.add(key);
            this.copied++;
            if (r.kind === 'file') bytes += r.size;
          }
          if (Date.now() - last > 2000) {
            last = Date.now();
            this.progress(`  copied ${i + 1}/${total} entries (${mib(bytes)} this run)`);
          }
        }
        applyDirMetadata(t, this.entries);
      } finally {
        log.close();
        this.closeCopy(t);
      }
      this.warnings.push(...t.notes);
    } finally {
      root.close();
    }
    this.unmount();
    this.advance('copied');
  }

  /** The source (the original) and the destination (the mounted home's root, still owned by the caller), as directory fds. */
  private openCopy(dstRoot: DirHandle): TreeCopy {
    const src = this.openOriginal();
    return openTreeCopy(src, dstRoot, this.entries);
  }

  private closeCopy(t: TreeCopy): void {
    closeTreeCopy(t);
    t.src.root.close();
  }

  /** The copy of a file or symlink is in place (an interrupted run logs an entry only once it is). */
  private destIsKind(dst: DirCursor, e: TreeEntry): boolean {
    try {
      const [p, n] = parentAndName(e.rel);
      const st = dst.dir(p).stat(n);
      return st !== null && (e.kind === 'symlink' ? st.isSymbolicLink() : st.isFile());
    } catch {
      return false;
    }
  }

  private verifyAll(root: DirHandle): VerifyFailure[] {
    const done = this.state.readDone();
    const inodes = new Map<string, bigint>();
    const failures: VerifyFailure[] = [];
    for (const [name, target] of homeLinks(this.layout, false)) {
      let got: string | null = null;
      try {
        got = root.readlink(name).toString('utf8');
      } catch {
        /* missing */
      }
      if (got !== target) failures.push({ rel: Buffer.from(name), why: `must be a link to ${target}` });
    }
    let last = Date.now();
    const dst = new DirCursor(root);
    try {
      for (const [i, e] of this.entries.entries()) {
        const why = verifyEntry(dst, e, done, inodes);
        if (why !== null) failures.push({ rel: e.rel, why });
        else this.verified++;
        if (Date.now() - last > 2000) {
          last = Date.now();
          this.progress(`  verified ${i + 1}/${this.entries.length} entries`);
        }
      }
    } finally {
      dst.reset();
    }
    return failures;
  }

  /** copied → verified: a fresh mount (nothing cached), every entry compared; one repair round for what differs. */
  verify(): void {
    for (let round = 1; ; round++) {
      this.verified = 0;
      const root = this.mount();
      let failures: VerifyFailure[];
      try {
        failures = this.verifyAll(root);
        if (failures.length > 0 && round === 1) {
          this.progress(`  ${failures.length} entries differ; copying them again`);
          this.repair(root, failures);
        }
      } finally {
        root.close();
        this.unmount();
      }
      if (failures.length === 0) break;
      if (round > 1) {
        const list = failures.slice(0, 10).map((f) => `  ${displayRel(joinRel(this.user.home, f.rel))}: ${f.why}`).join('\n');
        throw new AgentError('VERIFY_FAILED', `${failures.length} entries of the encrypted home do not match the original ${this.journal.original}:\n${list}${failures.length > 10 ? '\n  ...' : ''}`);
      }
    }
    this.advance('verified');
  }

  private repair(root: DirHandle, failures: VerifyFailure[]): void {
    const bad = new Set(failures.map((f) => f.rel.toString('latin1')));
    const t = this.openCopy(root);
    const log = this.state.openDoneLog();
    try {
      for (const e of this.entries) {
        const key = e.rel.toString('latin1');
        const linkToBad = e.linkOf !== undefined && bad.has(e.linkOf.toString('latin1'));
        if (e.rel.length === 0 || (!bad.has(key) && !linkToBad)) continue;
        if (e.kind !== 'dir') removeExisting(t.dst, e.rel);
        const r = copyEntry(t, e);
        if (r !== null) log.append(r);
      }
      for (const [name] of homeLinks(this.layout, false)) if (bad.has(name)) root.removeTree(name);
      this.makeLinksInside(root);
      applyDirMetadata(t, this.entries);
    } finally {
      log.close();
      this.closeCopy(t);
    }
    this.warnings.push(...t.notes);
  }

  /** verified → done: auto-mount on, keys gone, the original removed only if asked, the state cleared. */
  commit(): boolean {
    this.checkProcesses('commit');
    asUser(this.user, () => writeFileAtomic(join(this.layout.configDir, 'auto-mount'), Buffer.alloc(0), { mode: FLAG_FILE_MODE }));
    const setup = this.readSetup();
    forgetKeys(possessUserKeyring(this.user), sigsNoLongerMounted(setup));
    let removed = false;
    if (this.opts.removeOriginal) {
      // through fds from root's /home: a directory of the user's tree swapped for a symlink is unlinked, never followed
      const parent = openHomeParent(this.journal.home);
      try {
        parent.removeTree(this.names().original);
      } finally {
        parent.close();
      }
      removed = true;
    }
    this.unlockAccount();
    this.state.clear();
    return removed;
  }

  /** After a failure: the account unlocked (the original error is what gets reported; a failed unlock is said loudly). */
  private unlockAfterFailure(): void {
    const previous = this.journal.previousExpiry;
    try {
      this.unlockAccount();
    } catch (e) {
      this.progress(
        `WARNING: the account ${this.user.name} is still locked: ${(e as Error).message}. Unlock it with: usermod --expiredate '${previous ?? ''}' ${this.user.name} (or run migrate-home again, which unlocks it when it ends)`,
      );
    }
  }

  /** After a failure: never leave the encrypted home mounted with the keys loaded, nor the temp dir. */
  cleanUp(): void {
    try {
      this.removeMountPoint();
    } catch {
      /* the original failure is what gets reported */
    }
  }

  run(wrappingPassphrase: Buffer): MigrateResult {
    try {
      this.state.ensureDir();
      // a wrong passphrase must be refused before anything is touched
      if (this.plan.resuming && phaseAtLeast(this.journal, 'set-up')) this.unlock(wrappingPassphrase);
      this.lockAccount(); // a fresh run: this writes the journal ("started") first
      this.checkProcesses('migration');
      if (this.plan.resuming) this.unmountLeftover();
      if (!phaseAtLeast(this.journal, 'moved')) this.move();
      // the tree now lives under the original's name (same inodes): walk it there
      const orig = this.openOriginal();
      try {
        this.entries = walkTree(orig);
      } finally {
        orig.close();
      }
      if (!phaseAtLeast(this.journal, 'set-up')) {
        this.checkProcesses('setup');
        this.setUp(wrappingPassphrase);
      }
      this.unlock(wrappingPassphrase);
      if (!phaseAtLeast(this.journal, 'copied')) {
        this.checkProcesses('copy');
        this.progress(`Copying ${this.entries.length} entries (${mib(this.plan.counts.bytes)}) into the encrypted home...`);
        this.copy();
      }
      if (!phaseAtLeast(this.journal, 'verified')) {
        this.checkProcesses('verification');
        this.progress('Verifying every entry through a fresh mount of the encrypted home...');
        this.verify();
      }
      this.removeMountPoint();
      const removed = this.commit();
      const setup = this.readSetup();
      return {
        original: this.journal.original,
        originalRemoved: removed,
        counts: countEntries(this.entries),
        copied: this.copied,
        verified: this.verified,
        fnek: setup.fnekSig !== undefined,
        sigs: setup.fnekSig !== undefined ? [setup.fekSig, setup.fnekSig] : [setup.fekSig],
        warnings: this.warnings,
      };
    } catch (e) {
      this.cleanUp();
      this.unlockAfterFailure();
      if (isAgentError(e)) throw e;
      throw new AgentError('IO', `migration stopped: ${(e as Error).message}`, {
        cause: e,
        hint: `Nothing is lost: the plaintext original is intact (${this.journal.original} or ${this.user.home}). Fix the cause, then run migrate-home again to resume`,
      });
    } finally {
      this.mountPassphrase?.fill(0);
    }
  }
}

/**
 * A run that ends before migrateHome (refused by preflight, no passphrase …) still ends the lock a
 * killed run left: if the journal says the account is locked, its expiry goes back to what it was.
 * The caller holds the per-user lock (no other run is active). Returns the value restored, if any.
 */
export function releaseLeftAccountLock(user: Pick<UserInfo, 'name'>, opts: Pick<MigrateOptions, 'stateDir'> = {}): string | null {
  const state = new MigrateState(user.name, opts.stateDir);
  const journal = state.readJournal();
  if (journal?.previousExpiry === undefined) return null;
  setExpiry(user.name, journal.previousExpiry);
  const { previousExpiry, ...rest } = journal;
  state.writeJournal(rest);
  return previousExpiry;
}

/**
 * Runs (or resumes) the migration planned by preflightMigration. `wrappingPassphrase` is the
 * login password (or, for a -w setup, the wrapping passphrase): a fresh run wraps the new mount
 * passphrase with it, a resumed run unwraps it with it. Not zeroed here (the caller owns it).
 */
export function migrateHome(plan: MigrationPlan, wrappingPassphrase: Buffer, opts: MigrateOptions): MigrateResult {
  return new Migration(plan, opts).run(wrappingPassphrase);
}
