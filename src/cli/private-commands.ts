/**
 * `setup-private`, `unlock`, `lock`: the manual path, a second thin front-end over the same
 * use-cases the PAM agent uses (src/actions/login.ts for unlock and lock, src/actions/setup.ts).
 *
 * Privilege model (no new setuid binary):
 *  - as root with `-u USER`: the use-cases a login runs (keys as the user, the mount through
 *    fds opened without following links, docs/security.md), serialised with the PAM agent by
 *    the per-user lock in /run/ecryptfs-agent;
 *  - as the user: the keys are loaded as the user (works unprivileged); mount(2) needs root, so
 *    the mount is done by the installed setuid `mount.ecryptfs_private` of ecryptfs-utils
 *    (interop: it reads the same Private.sig/Private.mnt and finds the keys we put in @u) and
 *    `lock` by `umount.ecryptfs_private -f`. Without that helper the keys stay loaded and we say
 *    exactly what to run (`sudo ecryptfs-agent unlock -u USER`).
 *
 * Sessions: a manual unlock is NOT recorded as a PAM session (docs/sessions.md counts login
 * sessions by their live opener process; this CLI process exits right away, so such a record
 * would be pruned as dead at the next open/close anyway). Consequence, by design: with
 * ~/.ecryptfs/auto-umount, the end of the user's last PAM login session locks the directory,
 * also when it was unlocked by hand (e.g. `ecryptfs-agent unlock` after an ssh key login, whose
 * session is counted: its logout locks, as for a password login). Without any login session
 * it stays unlocked until `ecryptfs-agent lock`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { asUser, hardenProcess, lookupUid, lookupUser, type UserInfo } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { joinSessionKeyring, KEY_SPEC, linkKey } from '../os/keyring';
import { sigsNotInUse } from '../os/mount';
import { loadExtraMounts, type ExtraMountResult, type ExtraUnmountResult } from '../actions/extra-mounts';
import type { ExtraMountProblem } from '../formats/extra-mount-entries';
import { lockPrivate, type LoginScope, type PreparedKeys, prepareKeys, releaseKeys, takeBackKeys, unlockExtras, unlockPrivate } from '../actions/login';
import { examinePrivateMount } from '../actions/private-mount';
import { loadPrivateSetup, setupSigs, type PrivateSetup } from '../actions/private-setup';
import { SessionStore } from '../actions/session';
import { checkSetupPossible, decideFnek, newMountPassphrase, setupPrivate } from '../actions/setup';
import { checkLoginPassword } from '../os/credentials';
import { processesUsingMount, renderHolders } from '../os/processes';
import { forgetKeys, insertDerivedKeys, keysPresent, possessUserKeyring } from '../actions/keys';
import { askResidentAgent, residentAgentListens } from './resident-client';
import { NO_POSITIONALS, strict } from './args';
import { type CliIO, type Command, defineCommand } from './command';

export const MOUNT_HELPER = '/sbin/mount.ecryptfs_private';
export const UMOUNT_HELPER = '/sbin/umount.ecryptfs_private';

export function fail(io: CliIO, cmd: string, e: unknown): number {
  if (isAgentError(e)) io.err(`ecryptfs-agent ${cmd}: ${e.message}\nhint: ${e.hint}\n`);
  else io.err(`ecryptfs-agent ${cmd}: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

interface Target {
  me: UserInfo;
  user: UserInfo;
  /** we act with root's privileges (root with -u USER, or the resident agent for its peer) */
  root: boolean;
  /** who reads the messages: the user (paths as ~/…, commands without -u) or root */
  speaksTo: 'user' | 'root';
}

/**
 * The name given with -u when a user (not root) names someone else and the resident agent
 * listens: it refuses and logs who asked; without it resolveTarget refuses here.
 */
function askedForAnother(name: string | undefined): string | null {
  if (name === undefined || process.geteuid?.() === 0 || !residentAgentListens()) return null;
  return lookupUid(process.getuid?.() ?? -1).name === name ? null : name;
}

/** Who runs us, and for whom: the user themself, or root with -u USER. */
export function resolveTarget(name: string | undefined): Target {
  const me = lookupUid(process.getuid?.() ?? -1);
  const root = me.uid === 0 && process.geteuid?.() === 0;
  const user = name === undefined ? me : lookupUser(name);
  if (user.uid === 0) {
    throw new AgentError('USAGE', root ? 'root has no private directory here: run as the user, or as root with -u USER' : 'refusing to act for uid 0', {
      hint: 'Run it as the user, or as root with -u USER',
    });
  }
  if (!root && user.uid !== me.uid) throw new AgentError('PERMISSION', `only root can act for ${user.name}`, { hint: 'Run it as that user, or as root: sudo ecryptfs-agent ... -u USER' });
  return { me, user, root, speaksTo: root ? 'root' : 'user' };
}

function loadSetupOf(t: Target): PrivateSetup {
  const setup = asUser(t.user, () => loadPrivateSetup(t.user));
  if (setup === null) {
    throw new AgentError('NOT_FOUND', `${t.user.name} has no private directory set up (no ${t.user.home}/.ecryptfs/Private.sig)`, {
      hint: `Set one up: ecryptfs-agent setup-private${asRoot(t)}`,
    });
  }
  return setup;
}

function tilde(t: Target, path: string): string {
  return t.speaksTo === 'user' && path.startsWith(t.user.home + '/') ? '~' + path.slice(t.user.home.length) : path;
}

/** " -u USER" in a command suggested to root; nothing for the user. */
function asRoot(t: Target): string {
  return t.speaksTo === 'root' ? ` -u ${t.user.name}` : '';
}

/** Interactive: prompt (echo off); from a pipe: one line per passphrase, no prompt (like "-" of the C tools). */
export async function readSecret(io: CliIO, prompt: string, interactive: boolean): Promise<Buffer | null> {
  return io.passphrases.read(interactive ? prompt : undefined);
}

export function isInteractive(): boolean {
  return process.stdin.isTTY === true;
}

/** mount.ecryptfs_private installed setuid root and executable by us. */
export function helperUsable(path: string): boolean {
  try {
    const st = fs.statSync(path);
    if (st.uid !== 0 || (st.mode & 0o4000) === 0) return false;
    fs.accessSync(path, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function runHelper(path: string, args: string[], home: string): { ok: boolean; output: string } {
  const r = spawnSync(path, args, {
    cwd: '/',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  const output = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.trim();
  return { ok: r.status === 0, output: r.error ? `${r.error.message} ${output}` : output };
}

// ------------------------------------------------------------------ extra mounts (docs/extra-mounts.md)

/**
 * One line per extra mount that did something or could not (mounted earlier / by others: quiet).
 * False when a mount or unmount failed (a refused line is reported but is not a failure of this run).
 */
function reportExtras(io: CliIO, t: Target, r: { results: Array<ExtraMountResult | ExtraUnmountResult>; problems?: ExtraMountProblem[] }): boolean {
  let ok = true;
  for (const p of r.problems ?? []) io.err(`extra mount refused: ${p.error.message}\nhint: ${p.error.hint}\n`);
  for (const x of r.results) {
    const upper = tilde(t, 'entry' in x ? x.entry.upper : x.record.upper);
    if (x.outcome === 'mounted') io.out(`${upper} is unlocked (extra mount, ${x.entry.where}).\n`);
    else if (x.outcome === 'unmounted') io.out(`${upper} is locked (extra mount)${x.lazy ? ', detached lazily' : ''}.\n`);
    else if (x.outcome === 'foreign') io.err(`${upper} (extra mount) left alone: ${x.why}.\n`);
    else if (x.outcome === 'skipped' && (x.reason === 'keys-missing' || x.reason === 'lower-missing' || x.reason === 'duplicate')) io.out(`${upper} is not mounted: ${x.detail}.\n`);
    else if (x.outcome === 'failed') {
      io.err(`${upper} (extra mount) failed: ${x.error.message}\nhint: ${x.error.hint}\n`);
      ok = false;
    }
  }
  return ok;
}

/** As the user (no root): the setuid helpers know only ~/Private; say how the extra mounts are done. */
function noteExtrasNeedRoot(io: CliIO, t: Target, verb: 'unlock' | 'lock'): void {
  let n = 0;
  try {
    n = loadExtraMounts(t.user).entries.length;
  } catch {
    return;
  }
  if (n > 0) io.out(`note: ${n} extra mount(s) are configured; they need root: sudo ecryptfs-agent ${verb} -u ${t.user.name} (a login does them too).\n`);
}

// ------------------------------------------------------------------ setup-private

const SETUP_HELP = `Usage: ecryptfs-agent setup-private [-u USER] [-n|--no-fnek] [-w|--wrapping]
                                    [--noautomount] [--noautoumount] [--nopwcheck] [-f|--force]

Sets up an encrypted private directory exactly as ecryptfs-setup-private (ecryptfs-utils 111)
does, so its tools and pam_ecryptfs work with it as well as ecryptfs-agent:
  ~/.ecryptfs (700): wrapped-passphrase (v2, 0600), Private.sig, Private.mnt, auto-mount,
  auto-umount; ~/.Private (700, the encrypted files); ~/Private (500, the mount point).
A random mount passphrase (32 hex characters from the kernel RNG) is wrapped with your login
password, or with a separate wrapping passphrase (-w; creates wrapping-independent). It is
shown ONCE: record it offline; it is the only way back to your data if the wrapped file is lost.
Nothing is mounted: afterwards log in again, or run "ecryptfs-agent unlock".

  -u, --username USER  as root: set up for USER (every file is created as, and owned by, USER);
                       the passphrase is read from stdin unless stdin is a terminal
  -n, --no-fnek        no filename encryption (default: on when the kernel supports it)
  -w, --wrapping       wrap with a separate passphrase instead of the login password
  --noautomount        do not mount at login (no auto-mount file)
  --noautoumount       do not lock at the last logout (no auto-umount file)
  --nopwcheck          do not check the login password with unix_chkpwd (asked twice instead)
  -f, --force          move an existing wrapped-passphrase / Private.sig aside (NAME.<timestamp>)
Refuses (nothing changed) when a setup exists, ~/Private or ~/.Private is not empty or mounted,
or the eCryptfs kernel module is not loaded.

Exit status:
  0  set up
  1  refused or failed (nothing changed)
  2  usage error`;

const SETUP_OPTS = {
  username: { type: 'string', short: 'u' },
  'no-fnek': { type: 'boolean', short: 'n' },
  wrapping: { type: 'boolean', short: 'w' },
  noautomount: { type: 'boolean' },
  noautoumount: { type: 'boolean' },
  nopwcheck: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
} as const;

export const setupPrivateCommand = defineCommand({
  name: 'setup-private',
  summary: 'set up an encrypted ~/Private (ecryptfs-setup-private compatible)',
  help: SETUP_HELP,
  grammar: strict(SETUP_OPTS, NO_POSITIONALS),
  async run({ options: v }, io) {
    let wrapping: Buffer | null = null;
    let again: Buffer | null = null;
    let mountPass: Buffer | null = null;
    try {
      hardenProcess();
      const t = resolveTarget(v.username);
      const fnek = decideFnek(v['no-fnek'] === true);
      const opts = { fnek, wrappingIndependent: v.wrapping === true, autoMount: v.noautomount !== true, autoUmount: v.noautoumount !== true, force: v.force === true };
      checkSetupPossible(t.user, opts); // before asking for anything
      const interactive = isInteractive();
      const what = opts.wrappingIndependent ? 'wrapping passphrase' : 'login passphrase';
      wrapping = await readSecret(io, `Enter your ${what} [${t.user.name}]`, interactive);
      if (wrapping === null || wrapping.length === 0) throw new AgentError('USAGE', `no ${what} given`, { hint: `Type the ${what} (stdin: one line)` });
      const check = opts.wrappingIndependent || v.nopwcheck === true ? null : checkLoginPassword(t.user.name, wrapping);
      if (check === false) throw new AgentError('WRONG_PASSWORD', `that is not the login password of ${t.user.name}`, { hint: 'Type the password you log in with (or use -w for a separate wrapping passphrase)' });
      if (check === null && interactive) {
        again = await readSecret(io, `Enter your ${what} (again)`, true);
        if (again === null || !again.equals(wrapping)) throw new AgentError('USAGE', `the ${what}s do not match`, { hint: 'Run it again and type the same passphrase twice' });
      }
      mountPass = newMountPassphrase();
      const r = setupPrivate(t.user, mountPass, wrapping, opts);
      const bar = '*'.repeat(76);
      io.out(`${bar}\nYOUR MOUNT PASSPHRASE (shown only this once):\n\n    `);
      io.out(mountPass);
      io.out(
        `\n\nRECORD IT AND STORE IT OFFLINE, IN A SAFE PLACE (paper, a password manager).\n` +
          `It is the only way to recover your data if ${tilde(t, r.configDir)}/wrapped-passphrase is lost or\n` +
          `your login password is reset by root. (Later: ecryptfs-agent unwrap-passphrase)\n${bar}\n\n`,
      );
      for (const b of r.backups) io.out(`Moved the old file aside: ${b}\n`);
      io.out(
        `Done configuring: ${tilde(t, r.lower)} (encrypted) will be mounted on ${tilde(t, r.upper)}.\n` +
          `  file name encryption: ${r.fnekSig ? 'on' : 'off'}; sigs ${r.fekSig}${r.fnekSig ? ` ${r.fnekSig}` : ''}\n` +
          `  unlocked with: ${opts.wrappingIndependent ? 'the wrapping passphrase (ecryptfs-agent unlock)' : 'the login password'}` +
          `${opts.autoMount ? '' : '; not mounted at login (--noautomount)'}${opts.autoUmount ? '' : '; not locked at logout (--noautoumount)'}\n` +
          `Not mounted now. Unlock it with: ecryptfs-agent unlock${asRoot(t)} (or log in again).\n`,
      );
      return 0;
    } catch (e) {
      return fail(io, 'setup-private', e);
    } finally {
      wrapping?.fill(0);
      again?.fill(0);
      mountPass?.fill(0);
    }
  },
});

// ------------------------------------------------------------------ unlock

const UNLOCK_HELP = `Usage: ecryptfs-agent unlock [-u USER]

Unwraps ~/.ecryptfs/wrapped-passphrase with your login passphrase (or the wrapping passphrase
of a setup made with -w), checks it against Private.sig, adds the keys to your user keyring
(@u, no expiry) and mounts ~/.Private on ~/Private. Use it after a login that had no password
(ssh key, autologin) or for a setup with a separate wrapping passphrase. Keys already present
are used without asking. Nothing is changed when the passphrase is wrong.

  as the user   the resident agent (ecryptfs-agent.socket) mounts it for you, with the same
                checks as at login; where it does not run, keys are added as you and the
                mount is done by the setuid ${MOUNT_HELPER} of ecryptfs-utils.
                Without either, the keys stay loaded and the command says what to run:
                sudo ecryptfs-agent unlock -u USER
  -u USER       as root: unlock USER's directory, mounting with ecryptfs-agent's own checks,
                then the extra mounts a login does (docs/extra-mounts.md: user,noauto lines of
                /etc/fstab in the home, ~/.ecryptfs/extra-mounts) whose keys are loaded

The passphrase is prompted for on a terminal, otherwise read as one line from stdin.
A manual unlock is not a login session: with auto-umount, the end of your last login
session locks the directory again (see docs/sessions.md); "ecryptfs-agent lock" locks it now.

Exit status:
  0  unlocked (or already unlocked)
  1  not unlocked (wrong passphrase, no setup, no way to mount: the message says why)
  2  usage error`;

export const unlockCommand = defineCommand({
  name: 'unlock',
  summary: 'load the keys and mount ~/Private (after an ssh key login, or with -u USER as root)',
  help: UNLOCK_HELP,
  grammar: strict({ username: { type: 'string', short: 'u' } }, NO_POSITIONALS),
  async run({ options }, io) {
    let prepared: PreparedKeys | null = null;
    try {
      hardenProcess();
      // another user's directory: only root may; the resident agent refuses and logs the attempt
      const other = askedForAnother(options.username);
      if (other) return await askResidentAgent(io, { op: 'unlock', force: false, user: other });
      const t = resolveTarget(options.username);
      const setup = loadSetupOf(t);
      const scope: LoginScope = { user: t.user, setup, ring: possessUserKeyring(t.user), store: new SessionStore() };
      const there = examinePrivateMount(t.user, setup);
      if (there.state === 'foreign') {
        throw new AgentError('NOT_YOURS', `${tilde(t, setup.upper)} already has a mount that is not ${t.user.name}'s private directory (${there.why}); nothing changed`);
      }
      // Asked only when a key is missing.
      const needKeys = there.state === 'none' && keysPresent(scope.ring, setup).missing.length > 0;
      if (!t.root && residentAgentListens()) {
        // the resident agent mounts for us (docs/resident-agent.md): no setuid helper needed
        const pw = needKeys ? await askPassphrase(io, t, setup) : undefined;
        try {
          return await askResidentAgent(io, { op: 'unlock', force: false, ...(pw ? { passphrase: pw } : {}) });
        } finally {
          pw?.fill(0);
        }
      }
      // derived here, before the user's lock is taken
      if (needKeys) {
        const pw = await askPassphrase(io, t, setup);
        try {
          prepared = keysFromPassphrase(t, setup, pw);
        } finally {
          pw.fill(0);
        }
      }
      return t.root ? unlockAsRoot(io, t, scope, prepared) : unlockAsUser(io, t, scope, prepared);
    } catch (e) {
      return fail(io, 'unlock', e);
    } finally {
      releaseKeys(prepared);
    }
  },
});

function passphraseName(setup: PrivateSetup): string {
  return setup.wrappingIndependent ? 'wrapping passphrase' : 'login passphrase';
}

/** The passphrase that wraps the mount passphrase, asked for (prompt on a terminal, else one line of stdin). */
async function askPassphrase(io: CliIO, t: Target, setup: PrivateSetup): Promise<Buffer> {
  const what = passphraseName(setup);
  const pw = await readSecret(io, `Enter your ${what} [${t.user.name}]`, isInteractive());
  if (pw === null || pw.length === 0) throw new AgentError('USAGE', `no ${what} given; nothing changed`, { hint: `Type the ${what} (stdin: one line)` });
  return pw;
}

/** The keys from the wrapping passphrase (the caller wipes it); a wrong one says what to try. */
function keysFromPassphrase(t: Target, setup: PrivateSetup, pw: Buffer): PreparedKeys {
  const what = passphraseName(setup);
  const prepared = prepareKeys(t.user, setup, pw, 'wrapping-passphrase');
  if ('absent' in prepared) throw new AgentError('USAGE', `no ${what} given; nothing changed`, { hint: `Type the ${what} (stdin: one line)` });
  if ('error' in prepared && prepared.error.code === 'WRONG_PASSWORD') {
    throw new AgentError('WRONG_PASSWORD', `wrong ${what}: it does not unwrap ${tilde(t, setup.wrappedPassphrasePath)}; nothing changed`, {
      hint: setup.wrappingIndependent ? 'Type the wrapping passphrase you chose at setup-private -w' : 'If your password was changed by root or another tool, rewrap with the old one: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase',
    });
  }
  if ('error' in prepared) throw prepared.error;
  return prepared;
}

function saidUnlocked(io: CliIO, t: Target, setup: PrivateSetup): void {
  io.out(
    `${tilde(t, setup.upper)} is unlocked (${tilde(t, setup.lower)} mounted).\nLock it with: ecryptfs-agent lock${asRoot(t)}` +
      `${setup.autoUmount ? ' (the end of the last login session also locks it)' : ''}\n`,
  );
}

/** As root: the same use-cases as a login (actions/login), under the user's lock. */
function unlockAsRoot(io: CliIO, t: Target, scope: LoginScope, prepared: PreparedKeys | null): number {
  const { setup } = scope;
  const r = scope.store.withUserLock(t.user.uid, () => {
    const priv = unlockPrivate(scope, () => prepared ?? { absent: 'no-password' });
    if (priv.kind !== 'mounted' && priv.kind !== 'already-mounted') {
      if (priv.kind === 'mount-failed') takeBackKeys(scope, priv.keysAdded);
      return { priv };
    }
    const extras = unlockExtras(scope);
    return { priv, extras };
  });
  const { priv } = r;
  switch (priv.kind) {
    case 'locked':
      // the keys were there when we looked, and a logout took them before the lock was ours
      throw priv.error ?? new AgentError('KEY_NOT_FOUND', `the keys of ${tilde(t, setup.upper)} left the keyring meanwhile (a logout locked it?); nothing changed`, { hint: 'Run the unlock again' });
    case 'not-yours':
    case 'mount-failed':
      throw priv.error;
    case 'already-mounted':
      io.out(`${tilde(t, setup.upper)} is already unlocked (mounted).\n`);
      break;
    case 'mounted':
      saidUnlocked(io, t, setup);
      break;
  }
  // ~/Private is unlocked: a failing extra mount is said, not the exit status
  if (r.extras) reportExtras(io, t, r.extras);
  return 0;
}

/** As the user: the keys go in here, the mount is made by the setuid helper of ecryptfs-utils. */
function unlockAsUser(io: CliIO, t: Target, scope: LoginScope, prepared: PreparedKeys | null): number {
  const { setup, ring } = scope;
  const where = tilde(t, setup.upper);
  if (examinePrivateMount(t.user, setup).state === 'ours') {
    io.out(`${where} is already unlocked (mounted).\n`);
    return 0;
  }
  const added = prepared !== null && 'keys' in prepared ? insertDerivedKeys(ring, prepared.keys).added : [];
  if (!helperUsable(MOUNT_HELPER)) {
    io.err(
      `ecryptfs-agent unlock: the keys are in your keyring, but mounting needs privileges: the resident agent (ecryptfs-agent.socket) is not running and ${MOUNT_HELPER} (setuid, from ecryptfs-utils) is not usable here.\n` +
        `Mount it with:  sudo ecryptfs-agent unlock -u ${t.user.name}   (or log in again with your password; or have root start ecryptfs-agent.socket)\n`,
    );
    return 1;
  }
  // The helper's mount(2) finds the keys by request_key from ITS keyrings: give it (our
  // child) a session keyring that links @u, without touching the caller's own session.
  joinSessionKeyring();
  linkKey(KEY_SPEC.USER, KEY_SPEC.SESSION);
  const r = runHelper(MOUNT_HELPER, [], t.user.home);
  if (!r.ok || examinePrivateMount(t.user, setup).state !== 'ours') {
    takeBackKeys(scope, added);
    throw new AgentError('MOUNT', `${MOUNT_HELPER} did not mount ${where}${r.output ? `: ${r.output}` : ''}`);
  }
  saidUnlocked(io, t, setup);
  noteExtrasNeedRoot(io, t, 'unlock');
  return 0;
}

// ------------------------------------------------------------------ lock

const LOCK_HELP = `Usage: ecryptfs-agent lock [-u USER] [--force]

Unmounts ~/Private and removes its keys from the user keyring. Refuses while processes use
files under it (open files, current directory, mapped files; listed like fuser -vm) unless
--force is given: then the mount is detached lazily (hidden at once; the open files stay
usable until closed, as umount.ecryptfs_private does).

  as the user   the resident agent (ecryptfs-agent.socket) locks it for you; where it does
                not run, the unmount is done by ${UMOUNT_HELPER} -f (ecryptfs-utils);
                only your own processes can be inspected
  -u USER       as root: lock USER's directory with ecryptfs-agent's own unmount, after the
                extra mounts a login or unlock made (in reverse order; busy ones only with --force)

Exit status:
  0  locked (or was not mounted; its keys are removed)
  1  refused (in use) or failed (also when an extra mount could not be unmounted)
  2  usage error`;

export const lockCommand = defineCommand({
  name: 'lock',
  summary: 'unmount ~/Private and forget its keys (refuses while in use, unless --force)',
  help: LOCK_HELP,
  grammar: strict({ username: { type: 'string', short: 'u' }, force: { type: 'boolean', short: 'f' } }, NO_POSITIONALS),
  async run({ options }, io) {
    const force = options.force === true;
    try {
      const other = askedForAnother(options.username);
      if (other) return await askResidentAgent(io, { op: 'lock', force, user: other });
      const t = resolveTarget(options.username);
      // the resident agent unmounts for us (docs/resident-agent.md): no setuid helper needed
      if (!t.root && residentAgentListens()) return await askResidentAgent(io, { op: 'lock', force });
      return lockHere(io, t, force);
    } catch (e) {
      return fail(io, 'lock', e);
    }
  },
});

/** lock, done by this process: as root, or as the user through the setuid helper. */
function lockHere(io: CliIO, t: Target, force: boolean): number {
  const setup = loadSetupOf(t);
  const where = tilde(t, setup.upper);
  const scope: LoginScope = { user: t.user, setup, ring: possessUserKeyring(t.user), store: new SessionStore() };
  const there = examinePrivateMount(t.user, setup);
  if (there.state === 'foreign') {
    throw new AgentError('NOT_YOURS', `refusing to lock ${where}: the mount there is not ${t.user.name}'s private directory (${there.why}); nothing changed`);
  }
  // Who uses it, before anything is unmounted: a refusal changes nothing.
  const users = there.state === 'ours' ? processesUsingMount(there.entry) : { holders: [], uninspected: 0 };
  if (users.holders.length > 0 && !force) {
    // the user asking the resident agent sees their own processes only; others are counted
    const shown = t.speaksTo === 'user' ? users.holders.filter((h) => h.user === t.user.name) : users.holders;
    const others = users.holders.length - shown.length;
    io.err(
      `ecryptfs-agent lock: refusing to lock ${where}: ${users.holders.length} process(es) use files under it:\n` +
        (shown.length > 0 ? renderHolders(setup.upper, shown) : '') +
        (others > 0 ? `(and ${others} process(es) of other users)\n` : '') +
        `Close them (or leave the directory), then try again; or use --force to detach it lazily.\n`,
    );
    return 1;
  }
  if (t.root) return lockAsRoot(io, t, scope, force);
  return lockAsUser(io, t, scope, { mounted: there.state === 'ours', holders: users.holders.length, uninspected: users.uninspected });
}

function saidLocked(io: CliIO, t: Target, setup: PrivateSetup, r: { unmounted: boolean; lazy: boolean; keysRemoved: string[] }): void {
  const where = tilde(t, setup.upper);
  const keys = r.keysRemoved.join(', ');
  if (!r.unmounted) io.out(`${where} is not mounted${keys ? `; removed its keys ${keys}` : ''}.\n`);
  else io.out(`${where} is locked${r.lazy ? ' (detached lazily: processes that still hold files keep them until they close them)' : ''}${keys ? `; removed keys ${keys}` : ''}.\n`);
}

/** As root: the same use-case as the last logout (actions/login lockPrivate), busy mounts lazily only with --force. */
function lockAsRoot(io: CliIO, t: Target, scope: LoginScope, force: boolean): number {
  const r = scope.store.withUserLock(t.user.uid, () => lockPrivate(scope, { lazyWhenBusy: force }));
  let ok = reportExtras(io, t, { results: r.extras });
  if (r.extrasError) {
    io.err(`extra mounts: ${r.extrasError.message}\nhint: ${r.extrasError.hint}\n`);
    ok = false;
  }
  if ('error' in r.private) {
    const e = r.private.error;
    if (e.code === 'UNMOUNT_BUSY') throw new AgentError('UNMOUNT_BUSY', `${e.message}: something started using it; nothing changed`, { hint: 'Close the programs using it, or use --force' });
    throw e;
  }
  saidLocked(io, t, scope.setup, { ...r.private, keysRemoved: r.keysRemoved });
  return ok ? 0 : 1;
}

/** As the user: the unmount is made by the setuid helper of ecryptfs-utils, the keys are taken out here. */
function lockAsUser(io: CliIO, t: Target, scope: LoginScope, seen: { mounted: boolean; holders: number; uninspected: number }): number {
  const { setup, ring } = scope;
  const where = tilde(t, setup.upper);
  noteExtrasNeedRoot(io, t, 'lock');
  if (seen.mounted) {
    if (!helperUsable(UMOUNT_HELPER)) {
      io.err(`ecryptfs-agent lock: unmounting needs privileges and ${UMOUNT_HELPER} (setuid, from ecryptfs-utils) is not usable here.\nLock it with:  sudo ecryptfs-agent lock -u ${t.user.name}\n`);
      return 1;
    }
    const r = runHelper(UMOUNT_HELPER, ['-f'], t.user.home);
    if (examinePrivateMount(t.user, setup).state !== 'none') throw new AgentError('MOUNT', `${UMOUNT_HELPER} did not unmount ${where}${r.output ? `: ${r.output}` : ''}`);
  }
  const keysRemoved = forgetKeys(ring, sigsNotInUse(setupSigs(setup)));
  saidLocked(io, t, setup, { unmounted: seen.mounted, lazy: seen.mounted && seen.holders > 0, keysRemoved });
  if (seen.uninspected > 0) io.out(`note: ${seen.uninspected} process(es) of other users could not be inspected.\n`);
  return 0;
}

// ------------------------------------------------------------------ for the resident agent

/**
 * What the resident agent does for a user who asked on its user socket (agent/user-request.ts):
 * the root path of unlock and lock, for exactly the asking user, with messages written for them.
 * Failures are thrown (the agent counts wrong passphrases); the exit status is returned.
 */
export function unlockForUser(io: CliIO, user: UserInfo, passphrase: Buffer | undefined): number {
  const t: Target = { me: user, user, root: true, speaksTo: 'user' };
  const setup = loadSetupOf(t);
  const scope: LoginScope = { user, setup, ring: possessUserKeyring(user), store: new SessionStore() };
  const there = examinePrivateMount(user, setup);
  if (there.state === 'foreign') {
    throw new AgentError('NOT_YOURS', `${tilde(t, setup.upper)} already has a mount that is not ${user.name}'s private directory (${there.why}); nothing changed`);
  }
  let prepared: PreparedKeys | null = null;
  try {
    if (there.state === 'none' && keysPresent(scope.ring, setup).missing.length > 0) {
      if (!passphrase) throw new AgentError('USAGE', `no ${passphraseName(setup)} given; nothing changed`, { hint: `Type the ${passphraseName(setup)}` });
      prepared = keysFromPassphrase(t, setup, passphrase);
    }
    return unlockAsRoot(io, t, scope, prepared);
  } finally {
    releaseKeys(prepared);
  }
}

export function lockForUser(io: CliIO, user: UserInfo, force: boolean): number {
  return lockHere(io, { me: user, user, root: true, speaksTo: 'user' }, force);
}

export const privateCommands: readonly Command[] = [setupPrivateCommand, unlockCommand, lockCommand];
