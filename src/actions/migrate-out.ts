/**
 * `migrate-out`: the way off eCryptfs. The plaintext of ~/.Private is read WITHOUT the kernel
 * module (export.ts), written into a new directory beside ~/Private, verified file by file (the
 * plaintext decrypted anew against the copy's bytes, SHA-256), and only then put in ~/Private's
 * place; ~/.ecryptfs moves aside (so pam_ecryptfs_agent and pam_ecryptfs find no setup and do
 * nothing for the user) and ~/.Private stays, until `migrate-out --finish` removes both.
 *
 * Two targets. `plain`: the new directory is an ordinary one (for a disk encrypted as a whole
 * already). `fscrypt`: the new directory is encrypted by the filesystem (ext4 + Debian's
 * fscrypt), protected by the login password through a login protector, so that pam_fscrypt
 * unlocks it at login and locks it at the last logout. The copy is verified after a lock and an
 * unlock with the login password: read anew from the disk through the new side's decryption, and
 * proof that the password opens it before anything is switched.
 *
 * Journaled and resumable: a root-only journal (/var/lib/ecryptfs-agent/migrate-out/USER.json)
 * names the phase that completed; each step either is redone from scratch (the export into the
 * staging directory, the verification) or recognises its own half-done state (the switch), so a
 * run killed anywhere and run again ends where an unkilled run would have, and the ciphertext is
 * never touched before --finish.
 *
 * Root acts with the user's rights on everything under the home (asUser): the user's own
 * processes could change those trees, and then they change only what they could change anyway.
 * The user must be logged out with no process left (like migrate-home).
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AgentError } from '../errors';
import { asUser, type UserInfo } from '../os/credentials';
import { readMountInfo } from '../os/mount';
import { ensureRootDir, lstatOrNull, writeFileAtomic } from '../os/secure-file';
import { FSCRYPT_RECOVERY_README } from '../formats/fscrypt-facts';
import {
  checkFscryptReady,
  checkPassphraseForFscrypt,
  checkPathOnlyOwnerCanChange,
  fscryptEncrypt,
  fscryptLock,
  fscryptSetup,
  fscryptStatus,
  fscryptUnlock,
  type FscryptReadiness,
} from '../os/fscrypt';
import { exportKeysFor, exportTree, verifyTree, type ExportKeys, type ExportProblem, type ExportSummary, type VerifySummary } from './export';
import { checkNoProcesses, describeExpiry, LOCKED_EXPIRY, MOUNT_POINT_README_LINKS, readExpiry, setExpiry } from './migrate-home';
import { loadPrivateSetup, type PrivateSetup } from './private-setup';
import { locateRecoverySource } from './recovery';

export const MIGRATE_OUT_STATE_DIR = '/var/lib/ecryptfs-agent/migrate-out';

/** Completed phases, in order. */
export const MIGRATE_OUT_PHASES = ['started', 'exported', 'verified', 'switched'] as const;
export type MigrateOutPhase = (typeof MIGRATE_OUT_PHASES)[number];
export const MIGRATE_OUT_TARGETS = ['plain', 'fscrypt'] as const;
export type MigrateOutTarget = (typeof MIGRATE_OUT_TARGETS)[number];

export interface MigrateOutJournal {
  version: 1;
  target: MigrateOutTarget;
  user: string;
  uid: number;
  /** the encrypted directory (~/.Private) */
  lower: string;
  /** where it was mounted (~/Private): where the plaintext goes */
  upper: string;
  /** ~/.ecryptfs, and where it moves at the switch */
  configDir: string;
  keptConfigDir: string;
  /** the new directory the plaintext is written into, beside upper */
  staging: string;
  phase: MigrateOutPhase;
  /** ISO time of the first run */
  started: string;
  /** --to fscrypt: the staging directory's fscrypt policy, once it has one */
  fscryptPolicy?: string;
  /** while a run has the account locked (migrate-home's lock: expiry day 1), the expiry field
   * from before ('' = never), put back when the run ends or by the next run after a kill */
  previousExpiry?: string;
}

const phaseIndex = (p: MigrateOutPhase): number => MIGRATE_OUT_PHASES.indexOf(p);

/** Where a user's journal is. */
export function journalPath(user: string, stateDir = MIGRATE_OUT_STATE_DIR): string {
  return join(stateDir, `${user}.json`);
}

/** The journal's fields checked one by one: a damaged journal is refused, never guessed at. */
export function parseMigrateOutJournal(text: string, file: string): MigrateOutJournal {
  const bad = (why: string): AgentError =>
    new AgentError('BAD_CONFIG', `${file}: ${why}`, { hint: `The migration state is damaged. ~/.Private is untouched until --finish; remove ${file} and run migrate-out again` });
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof j !== 'object' || j === null) throw bad('not an object');
  const o = j as Record<string, unknown>;
  if (o.version !== 1) throw bad(`version ${String(o.version)}`);
  if (!MIGRATE_OUT_TARGETS.includes(o.target as MigrateOutTarget)) throw bad(`target ${String(o.target)}`);
  for (const k of ['user', 'lower', 'upper', 'configDir', 'keptConfigDir', 'staging', 'started'] as const) {
    if (typeof o[k] !== 'string' || (o[k] as string).length === 0) throw bad(`${k} missing`);
  }
  for (const k of ['lower', 'upper', 'configDir', 'keptConfigDir', 'staging'] as const) {
    if (!(o[k] as string).startsWith('/')) throw bad(`${k} is not absolute`);
  }
  if (!Number.isInteger(o.uid) || (o.uid as number) < 0) throw bad('uid missing');
  if (o.fscryptPolicy !== undefined && (typeof o.fscryptPolicy !== 'string' || !/^[0-9a-f]{16,64}$/.test(o.fscryptPolicy))) throw bad('fscryptPolicy malformed');
  if (o.previousExpiry !== undefined && (typeof o.previousExpiry !== 'string' || !/^\d{0,7}$/.test(o.previousExpiry))) throw bad('previousExpiry malformed');
  if (!MIGRATE_OUT_PHASES.includes(o.phase as MigrateOutPhase)) throw bad(`phase ${String(o.phase)}`);
  return o as unknown as MigrateOutJournal;
}

export function readJournal(user: string, stateDir = MIGRATE_OUT_STATE_DIR): MigrateOutJournal | null {
  const file = journalPath(user, stateDir);
  const st = lstatOrNull(file);
  if (st === null) return null;
  if (!st.isFile() || st.uid !== 0 || (st.mode & 0o077) !== 0) {
    throw new AgentError('BAD_OWNER', `${file} must be a root-only regular file`, { hint: `Remove ${file} if you did not make it, and run migrate-out again` });
  }
  return parseMigrateOutJournal(fs.readFileSync(file, 'utf8'), file);
}

function writeJournal(j: MigrateOutJournal, stateDir: string): void {
  ensureRootDir(stateDir, 0o700, { exactMode: true });
  writeFileAtomic(journalPath(j.user, stateDir), Buffer.from(`${JSON.stringify(j, null, 2)}\n`), { mode: 0o600 });
}

/** The names a migration uses for a setup (both targets). */
export function migrateOutLayout(setup: Pick<PrivateSetup, 'lower' | 'upper' | 'configDir'>): Pick<MigrateOutJournal, 'lower' | 'upper' | 'configDir' | 'keptConfigDir' | 'staging'> {
  return {
    lower: setup.lower,
    upper: setup.upper,
    configDir: setup.configDir,
    keptConfigDir: `${setup.configDir}.migrated-out`,
    staging: join(dirname(setup.upper), `${basename(setup.upper)}.migrate-out`),
  };
}

/**
 * The mount point as a locked setup leaves it: empty, or holding only the links
 * ecryptfs-setup-private puts there (README.txt, Access-Your-Private-Data.desktop, telling how
 * to unlock). Returns those links' names; null when it holds anything else (files the user wrote
 * while it was locked: not ours to remove).
 */
function lockedMountPointLinks(dir: string): string[] | null {
  const links: string[] = [];
  for (const n of fs.readdirSync(dir)) {
    const want = MOUNT_POINT_README_LINKS.find(([name]) => name === n)?.[1];
    if (want === undefined || !fs.lstatSync(join(dir, n)).isSymbolicLink() || fs.readlinkSync(join(dir, n)) !== want) return null;
    links.push(n);
  }
  return links;
}

export interface MigrateOutPlan {
  user: UserInfo;
  setup: PrivateSetup;
  journal: MigrateOutJournal;
  /** a journal was there: this run resumes it */
  resuming: boolean;
  /** --to fscrypt: what fscrypt needs and what is still to be set up */
  fscrypt?: FscryptReadiness;
}

export interface MigrateOutOptions {
  stateDir?: string;
}

export interface PlanOptions extends MigrateOutOptions {
  /** default plain */
  target?: MigrateOutTarget;
}

/**
 * Everything checked before a run changes anything: root, a complete setup (or a journal to
 * resume), the user logged out with no process, ~/Private not mounted and holding nothing of
 * its own, an encrypted directory rather than an encrypted home.
 */
export function planMigrateOut(user: UserInfo, opts: PlanOptions = {}): MigrateOutPlan {
  const target = opts.target ?? 'plain';
  if (process.geteuid?.() !== 0) throw new AgentError('PERMISSION', 'migrate-out needs root', { hint: `Run it as root: sudo ecryptfs-agent migrate-out -u ${user.name} --to ${target}` });
  const stateDir = opts.stateDir ?? MIGRATE_OUT_STATE_DIR;
  const previous = readJournal(user.name, stateDir);
  if (previous !== null && previous.target !== target) {
    throw new AgentError('ALREADY_EXISTS', `a migration of ${user.name} to ${previous.target} is recorded (stopped after "${previous.phase}")`, { hint: `Resume it: ecryptfs-agent migrate-out -u ${user.name} --to ${previous.target}` });
  }
  if (previous !== null && previous.uid !== user.uid) {
    throw new AgentError('BAD_CONFIG', `${journalPath(user.name, stateDir)} belongs to uid ${previous.uid}, not ${user.name} (${user.uid})`, { hint: 'Remove that journal: it is from another account of the same name' });
  }
  if (previous?.phase === 'switched') {
    throw new AgentError('ALREADY_EXISTS', `${user.name} was migrated out already: ${previous.upper} holds the plaintext; ${previous.lower} and ${previous.keptConfigDir} are kept`, {
      hint: `Once ${user.name} has checked their files: ecryptfs-agent migrate-out -u ${user.name} --finish`,
    });
  }
  // the setup as the user sees it; on resume after the switch began, ~/.ecryptfs may be aside already
  const setup = asUser(user, () => loadPrivateSetup(user) ?? (previous ? loadPrivateSetup(user, previous.keptConfigDir) : null));
  if (setup === null) throw new AgentError('NOT_FOUND', `${user.name} has no eCryptfs private directory (${user.home}/.ecryptfs/Private.sig)`, { hint: 'Nothing to migrate' });
  if (setup.upper === user.home) {
    throw new AgentError('SETUP_INCOMPLETE', `${user.name}'s whole home is encrypted (made by migrate-home): migrate-out moves a private directory only`, {
      hint: `Export the home instead: ecryptfs-agent export -u ${user.name} ${setup.lower} NEW-DIR, then make NEW-DIR the home`,
    });
  }
  if (!setup.hasWrappedPassphrase) {
    throw new AgentError('NOT_FOUND', `${setup.wrappedPassphrasePath} does not exist: the login password cannot open this directory`, {
      hint: `Use the mount passphrase: ecryptfs-agent export -u ${user.name} -m ${setup.lower} NEW-DIR`,
    });
  }
  const layout = migrateOutLayout({ ...setup, configDir: previous?.configDir ?? setup.configDir });
  checkNoProcesses(user, [user.home, layout.lower, dirname(layout.upper)], undefined, 'migrate-out');
  const mounted = readMountInfo().find((m) => m.mountPoint === layout.upper || m.mountPoint === layout.staging);
  if (mounted !== undefined) {
    throw new AgentError('IN_USE', `${mounted.mountPoint} is mounted (${mounted.fsType})`, { hint: `Lock it first: ecryptfs-agent lock -u ${user.name}` });
  }
  asUser(user, () => {
    const lowerSt = lstatOrNull(layout.lower);
    if (lowerSt === null || !lowerSt.isDirectory()) throw new AgentError('NOT_ECRYPTFS_DIR', `${layout.lower} is not a directory`, { hint: 'Nothing to migrate' });
    const up = lstatOrNull(layout.upper);
    if (up !== null && (!up.isDirectory() || lockedMountPointLinks(layout.upper) === null)) {
      // before the switch ~/Private is the empty mount point; after it, it holds the plaintext
      if (previous === null || phaseIndex(previous.phase) < phaseIndex('verified') || lstatOrNull(layout.staging) !== null) {
        throw new AgentError('ALREADY_EXISTS', `${layout.upper} is not the empty directory eCryptfs mounts on (files written while it was locked?)`, {
          hint: `Move what is in ${layout.upper} elsewhere, then run migrate-out again`,
        });
      }
    }
    if (previous === null && lstatOrNull(layout.staging) !== null) {
      throw new AgentError('ALREADY_EXISTS', `${layout.staging} exists and no migration of ${user.name} is recorded`, { hint: `Move ${layout.staging} away, then run migrate-out again` });
    }
  });
  const journal: MigrateOutJournal = previous ?? { version: 1, target, user: user.name, uid: user.uid, ...layout, phase: 'started', started: new Date().toISOString() };
  const plan: MigrateOutPlan = { user, setup, journal, resuming: previous !== null };
  if (target === 'fscrypt') {
    plan.fscrypt = checkFscryptReady(dirname(layout.upper), readMountInfo());
    // fscrypt acts on paths as root: none of them may be changeable by anyone but root and the user (who is locked out)
    checkPathOnlyOwnerCanChange(layout.staging, user.uid);
  }
  return plan;
}

export interface MigrateOutResult {
  exported?: ExportSummary;
  verified?: VerifySummary;
  /** --to fscrypt: the file where fscrypt wrote the directory's recovery passphrase, if it did */
  recoveryReadme?: string;
  journal: MigrateOutJournal;
}

export interface MigrateOutHooks {
  /** each entry the export could not read, as it happens */
  onProblem?: (p: ExportProblem) => void;
  /** each phase as it completes */
  onPhase?: (phase: MigrateOutPhase) => void;
  /** what the user should know as it happens (the account lock) */
  onNote?: (line: string) => void;
}

/**
 * Runs (or resumes) the migration planned by planMigrateOut with the login password (which
 * unwraps ~/.ecryptfs/wrapped-passphrase; checked against the directory before anything is
 * written). Stops with a typed error, nothing switched, when an entry cannot be exported or the
 * copy differs from the plaintext.
 */
export function migrateOut(plan: MigrateOutPlan, loginPassword: Buffer, opts: MigrateOutOptions & MigrateOutHooks = {}): MigrateOutResult {
  const stateDir = opts.stateDir ?? MIGRATE_OUT_STATE_DIR;
  const { user } = plan;
  if (plan.fscrypt !== undefined) checkPassphraseForFscrypt(loginPassword);
  const j: MigrateOutJournal = { ...plan.journal };
  const result: MigrateOutResult = { journal: j };
  const done = (phase: MigrateOutPhase, announce = true): void => {
    j.phase = phase;
    writeJournal(j, stateDir);
    if (announce) opts.onPhase?.(phase);
  };
  // the key first: a wrong password changes nothing, not even the journal
  const source = asUser(user, () => locateRecoverySource(j.lower));
  source.wrappedPath = plan.setup.wrappedPassphrasePath;
  source.salt = plan.setup.salt;
  const { keys } = asUser(user, () => exportKeysFor(source, { kind: 'wrapped', secret: loginPassword }));
  try {
    // No login of the user's may mount or change ~/.Private while it is copied, verified and
    // switched: the account is locked as migrate-home locks it (and unlocked however the run ends)
    j.previousExpiry = j.previousExpiry ?? readExpiry(user.name) ?? '';
    writeJournal(j, stateDir);
    setExpiry(user.name, LOCKED_EXPIRY);
    opts.onNote?.(`The account ${user.name} is LOCKED while the migration runs (expiry date ${describeExpiry(LOCKED_EXPIRY)}; it was ${describeExpiry(j.previousExpiry)}); it is unlocked when the run ends, successfully or not.`);
    try {
      const steps = plan.fscrypt === undefined ? plainSteps(user, j) : fscryptSteps(plan, plan.fscrypt, j, loginPassword, result);
      runPhases(plan, j, result, keys, steps, done, opts);
    } finally {
      const previous = endAccountLock(user, j, stateDir);
      opts.onNote?.(`The account ${user.name} is unlocked again (expiry date ${describeExpiry(previous)}).`);
    }
  } finally {
    keys.wipe();
  }
  return result;
}

/** What a target adds to the phases both share. */
interface TargetSteps {
  /** names in the staging directory that are not the copy's and stay (fscrypt's recovery readme) */
  keep: readonly string[];
  /** Makes the staging directory ready for a whole new copy (a copy a killed run left is redone
   * whole: cheaper to reason about than a partial one). */
  prepareStaging(): void;
  /** Before the verification: the copy is to be read anew, from the disk. */
  beforeVerify(): void;
  /** After the switch (repeated by a run resuming there). */
  afterSwitch(): void;
}

function plainSteps(user: UserInfo, j: MigrateOutJournal): TargetSteps {
  return {
    keep: [],
    prepareStaging: () => {
      asUser(user, () => fs.rmSync(j.staging, { recursive: true, force: true }));
    },
    beforeVerify: () => undefined,
    afterSwitch: () => undefined,
  };
}

/**
 * --to fscrypt: the staging directory is an fscrypt directory of the user's, protected by their
 * login passphrase. fscrypt runs as root (its login protectors live in /.fscrypt, root's); the
 * user's files are written and read with the user's rights, as for plain.
 */
function fscryptSteps(plan: MigrateOutPlan, ready: FscryptReadiness, j: MigrateOutJournal, password: Buffer, result: MigrateOutResult): TargetSteps {
  const { user } = plan;
  // fscrypt follows paths as root: it is run only on a real directory of the user's (between two
  // runs, while the account was not locked, the user could have put a symlink in its place)
  const ownDirectory = (dir: string): void => {
    const st = asUser(user, () => lstatOrNull(dir));
    if (st === null || !st.isDirectory() || st.uid !== user.uid) {
      throw new AgentError('UNSAFE_PATH', `${dir} is not a directory of ${user.name}'s${st?.isSymbolicLink() ? ' (a symbolic link)' : ''}: fscrypt is not run on it`, { hint: `Move ${dir} away, then run migrate-out again` });
    }
  };
  const status = (dir: string): ReturnType<typeof fscryptStatus> => {
    ownDirectory(dir);
    const s = fscryptStatus(ready.bin, dir, user.name, ready.mount.mountPoint);
    if (s !== null && j.fscryptPolicy !== undefined && s.policy !== j.fscryptPolicy) {
      throw new AgentError('FSCRYPT', `${dir} has fscrypt policy ${s.policy}, not ${j.fscryptPolicy}: not the directory this migration encrypted`, { hint: `Move ${dir} away, then run migrate-out again` });
    }
    return s;
  };
  const loginProtector = (dir: string, s: NonNullable<ReturnType<typeof fscryptStatus>>): string => {
    if (s.loginProtector === null) {
      throw new AgentError('FSCRYPT', `${dir} (fscrypt policy ${s.policy}) has no login protector of ${user.name}`, { hint: `Move ${dir} away (it is not this migration's), then run migrate-out again` });
    }
    return s.loginProtector;
  };
  /** locked (the kernel forgets its plaintext), then unlocked with the login password */
  const relock = (dir: string): void => {
    const s = status(dir);
    if (s === null) throw new AgentError('FSCRYPT', `${dir} is not encrypted by fscrypt any more`, { hint: `Move ${dir} away, then run migrate-out again: it copies anew` });
    if (s.unlocked !== 'No') fscryptLock(ready.bin, dir, user.name);
    fscryptUnlock(ready.bin, dir, user.name, loginProtector(dir, s), password);
  };
  return {
    // it holds the one copy of the recovery passphrase fscrypt made
    keep: [FSCRYPT_RECOVERY_README],
    prepareStaging: () => {
      fscryptSetup(ready.bin, ready.setup);
      let s = asUser(user, () => lstatOrNull(j.staging)) === null ? null : status(j.staging);
      if (s === null) {
        // none yet, or a killed run's plain directory from before `fscrypt encrypt` ended
        asUser(user, () => {
          fs.rmSync(j.staging, { recursive: true, force: true });
          fs.mkdirSync(j.staging, { mode: 0o700 });
        });
        ownDirectory(j.staging);
        delete j.fscryptPolicy; // a new directory, a new policy (the old one moved away, or never written down)
        fscryptEncrypt(ready.bin, j.staging, user.name, password);
        s = status(j.staging);
        if (s === null) throw new AgentError('FSCRYPT', `fscrypt encrypt ${j.staging} left it unencrypted`);
      } else if (s.unlocked !== 'Yes') {
        fscryptUnlock(ready.bin, j.staging, user.name, loginProtector(j.staging, s), password);
      }
      loginProtector(j.staging, s);
      j.fscryptPolicy = s.policy;
      asUser(user, () => {
        for (const n of fs.readdirSync(j.staging)) if (n !== FSCRYPT_RECOVERY_README) fs.rmSync(join(j.staging, n), { recursive: true, force: true });
      });
    },
    beforeVerify: () => relock(j.staging),
    afterSwitch: () => {
      const s = status(j.upper);
      if (s === null) throw new AgentError('FSCRYPT', `${j.upper} is not encrypted by fscrypt: not the directory this migration verified`, { hint: `Check ${j.upper}; ${j.lower} is untouched` });
      if (s.unlocked === 'No') return; // locked by a run killed after this
      // its name can be read while it is unlocked only
      const readme = join(j.upper, FSCRYPT_RECOVERY_README);
      if (asUser(user, () => lstatOrNull(readme)?.isFile() === true)) result.recoveryReadme = readme;
      fscryptLock(ready.bin, j.upper, user.name);
    },
  };
}

function runPhases(plan: MigrateOutPlan, j: MigrateOutJournal, result: MigrateOutResult, keys: ExportKeys, steps: TargetSteps, done: (p: MigrateOutPhase, announce?: boolean) => void, opts: MigrateOutHooks): void {
  const { user } = plan;
  const { keep } = steps;
  if (phaseIndex(j.phase) < phaseIndex('exported')) {
    steps.prepareStaging();
    asUser(user, () => {
      result.exported = exportTree(j.lower, j.staging, keys, opts.onProblem, { keep });
    });
    const problems = result.exported?.problems.length ?? 0;
    if (problems > 0) {
      throw new AgentError('VERIFY_FAILED', `${problems} entr${problems === 1 ? 'y' : 'ies'} of ${j.lower} could not be read (listed above); nothing was switched`, {
        hint: `${j.staging} holds what could be read; ${j.lower} is untouched. Restore those files from a backup (or move them out of ${j.upper} while it is unlocked), then run migrate-out again`,
      });
    }
    done('exported');
  }
  if (phaseIndex(j.phase) < phaseIndex('verified')) {
    steps.beforeVerify();
    result.verified = asUser(user, () => verifyTree(j.lower, j.staging, keys, { keep }));
    const diffs = result.verified.differences;
    if (diffs.length > 0) {
      done('started', false); // the next run copies anew
      throw new AgentError('VERIFY_FAILED', `the copy differs from the encrypted directory in ${diffs.length} place${diffs.length === 1 ? '' : 's'}: ${diffs.slice(0, 5).join('; ')}${diffs.length > 5 ? '; …' : ''}`, {
        hint: `Nothing was switched and ${j.lower} is untouched. Run migrate-out again (it copies anew); if it differs again, the disk may be failing`,
      });
    }
    done('verified');
  }
  // a process root started as the user meanwhile (su from root, cron started before the lock)
  checkNoProcesses(user, [user.home, j.lower, dirname(j.upper)], 'switch', 'migrate-out');
  switchDirectories(user, j);
  steps.afterSwitch();
  done('switched');
}

/**
 * A run that ends before migrateOut (refused, no password) still ends the lock a killed
 * run left. Returns the expiry restored, if any.
 */
export function releaseLeftAccountLock(user: Pick<UserInfo, 'name'>, opts: MigrateOutOptions = {}): string | null {
  const stateDir = opts.stateDir ?? MIGRATE_OUT_STATE_DIR;
  const j = readJournal(user.name, stateDir);
  return j?.previousExpiry === undefined ? null : endAccountLock(user, j, stateDir);
}

/** The expiry from before the lock put back, and taken out of the journal; returns it. */
function endAccountLock(user: Pick<UserInfo, 'name'>, j: MigrateOutJournal, stateDir: string): string {
  const previous = j.previousExpiry ?? '';
  setExpiry(user.name, previous);
  delete j.previousExpiry;
  writeJournal(j, stateDir);
  return previous;
}

/**
 * ~/.ecryptfs aside, the empty mount point out, the verified copy in its place. Each step
 * recognises that it was done already, so a run killed between two of them resumes here.
 */
function switchDirectories(user: UserInfo, j: MigrateOutJournal): void {
  asUser(user, () => {
    if (lstatOrNull(j.configDir) !== null) {
      if (lstatOrNull(j.keptConfigDir) !== null) throw new AgentError('ALREADY_EXISTS', `${j.keptConfigDir} exists: ${j.configDir} cannot move there`, { hint: `Move ${j.keptConfigDir} away, then run migrate-out again` });
      fs.renameSync(j.configDir, j.keptConfigDir);
    }
    if (lstatOrNull(j.staging) !== null) {
      if (lstatOrNull(j.upper) !== null) {
        // the mount point, empty but for ecryptfs-setup-private's links (checked at planning);
        // it is 0500 while locked: made writable to take them out
        const links = lockedMountPointLinks(j.upper);
        if (links === null) throw new AgentError('ALREADY_EXISTS', `${j.upper} is not the empty directory eCryptfs mounts on`, { hint: `Move what is in ${j.upper} elsewhere, then run migrate-out again` });
        if (links.length > 0) fs.chmodSync(j.upper, 0o700);
        for (const n of links) fs.unlinkSync(join(j.upper, n));
        fs.rmdirSync(j.upper);
      }
      fs.renameSync(j.staging, j.upper);
    }
  });
}

/**
 * `migrate-out --finish`: after a completed migration, removes the kept ciphertext (~/.Private)
 * and ~/.ecryptfs (moved aside), then the journal. Refuses unless the journal says switched.
 */
export function finishMigrateOut(user: UserInfo, opts: MigrateOutOptions = {}): MigrateOutJournal {
  if (process.geteuid?.() !== 0) throw new AgentError('PERMISSION', 'migrate-out needs root', { hint: `Run it as root: sudo ecryptfs-agent migrate-out -u ${user.name} --finish` });
  const stateDir = opts.stateDir ?? MIGRATE_OUT_STATE_DIR;
  const j = readJournal(user.name, stateDir);
  if (j === null) throw new AgentError('NOT_FOUND', `no migration of ${user.name} is recorded (${journalPath(user.name, stateDir)})`, { hint: `Migrate first: ecryptfs-agent migrate-out -u ${user.name} --to fscrypt|plain` });
  if (j.uid !== user.uid) throw new AgentError('BAD_CONFIG', `${journalPath(user.name, stateDir)} belongs to uid ${j.uid}, not ${user.name} (${user.uid})`, { hint: 'Remove that journal: it is from another account of the same name' });
  if (j.phase !== 'switched') {
    throw new AgentError('SETUP_INCOMPLETE', `the migration of ${user.name} stopped after "${j.phase}": nothing may be removed yet`, { hint: `Finish it first: ecryptfs-agent migrate-out -u ${user.name} --to ${j.target}` });
  }
  asUser(user, () => {
    fs.rmSync(j.lower, { recursive: true, force: true });
    fs.rmSync(j.keptConfigDir, { recursive: true, force: true });
  });
  fs.rmSync(journalPath(user.name, stateDir), { force: true });
  return j;
}
