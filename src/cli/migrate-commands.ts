/**
 * `migrate-home -u USER`: a thin front-end over src/actions/migrate-home.ts (as root, the user logged out).
 * Everything that can be refused is refused before the passphrase is asked for and before
 * anything changes; the run itself is serialised per user (a lock next to its journal).
 */
import { hardenProcess, isValidUsername, lookupUser } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { withFileLock } from '../os/lock';
import { describeExpiry, LOCKED_EXPIRY, preflightMigration, migrateHome, releaseLeftAccountLock, type MigrateOptions, type MigrateResult, type MigrationPlan } from '../actions/migrate-home';
import { MigrateState, phaseAtLeast } from '../actions/migrate-journal';
import { decideFnek } from '../actions/setup';
import { checkLoginPassword } from '../os/credentials';
import { type CliIO, type Command, defineCommand } from './command';
import { NO_POSITIONALS, strict, UsageError } from './args';
import { fail, isInteractive, readSecret } from './private-commands';

const MIGRATE_HELP = `Usage: ecryptfs-agent migrate-home -u USER [--resume] [-w|--wrapping] [-n|--no-fnek]
                                   [--nopwcheck] [--remove-original]

Encrypts USER's existing home directory, as ecryptfs-migrate-home (ecryptfs-utils 111) does and
in the same layout, so pam_ecryptfs and mount.ecryptfs_private work with it as well as
ecryptfs-agent: the home is renamed to HOME.XXXXXXXX (the plaintext original: made 700 as the
reference does, its files never modified),
an encrypted home is set up in /home/.ecryptfs/USER (random mount passphrase, file name
encryption on when the kernel supports it) and mounted on HOME at each login; every file is
copied into it with its owner, mode, times, extended attributes, symlinks, hard links and
special files, then read back through a fresh mount and compared (SHA-256) with the original.
Run it as root while USER is logged out. USER's login password is asked for (checked with
unix_chkpwd): it wraps the mount passphrase, so it must be the password USER logs in with.

While it runs, the account is LOCKED: its expiry date is set to 1970-01-02 (usermod
--expiredate 1), so no login, ssh key login, su, cron or at job of USER can start; the old
date is kept in the state file and put back when the run ends, successfully or not (after a
kill: by the next run). A process of USER found at the start of any phase stops the run.
The new encrypted home is mounted on a root-only directory (/run/ecryptfs-agent/migrate-*),
never on HOME, while it is filled and verified.

A run that is interrupted (killed, power loss, disk full) loses nothing: its state is kept in
/var/lib/ecryptfs-agent/migrate/USER.json, and running the command again (or with --resume)
continues where it stopped, copying only what is not done.

  -u, --user USER     the user whose home is migrated (required)
  --resume            only continue an interrupted migration (refuse to start a new one)
  -w, --wrapping      wrap with a separate passphrase instead of the login password
                      (then USER unlocks with "ecryptfs-agent unlock", not at login)
  -n, --no-fnek       no file name encryption
  --nopwcheck         do not check the login password with unix_chkpwd (asked twice instead)
  --remove-original   delete the plaintext original once every file is verified
                      (default: keep it; delete it yourself after USER has logged in and checked)
The passphrase is prompted for on a terminal, otherwise read as one line from stdin.

Refused, with nothing changed: USER unknown or root; not a local account (no /etc/shadow line);
USER logged in or any process of USER running or using the home (listed); the home already encrypted or set up with ~/Private;
something mounted inside the home; names too long for eCryptfs; not enough free space for
the encrypted copy; the eCryptfs kernel module not loaded; a wrong login password.

Exit status:
  0  migrated (or resumed and finished)
  1  refused or stopped (the message says why; an interrupted run can be resumed)
  2  usage error`;

const MIGRATE_OPTS = {
  user: { type: 'string', short: 'u' },
  resume: { type: 'boolean' },
  wrapping: { type: 'boolean', short: 'w' },
  'no-fnek': { type: 'boolean', short: 'n' },
  nopwcheck: { type: 'boolean' },
  'remove-original': { type: 'boolean' },
} as const;

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

function describePlan(plan: MigrationPlan): string {
  const c = plan.counts;
  const what = `${c.files} files (${mib(c.bytes)}), ${c.dirs} directories, ${c.symlinks} symlinks${c.hardlinks ? `, ${c.hardlinks} hard links` : ''}${c.specials ? `, ${c.specials} special files` : ''}`;
  const room = plan.neededBytes > 0 ? `; needs about ${mib(plan.neededBytes)} in ${plan.spacePath} (${mib(plan.space.available)} free)` : '';
  const lock = `The account ${plan.user.name} will be locked while the migration runs (expiry date ${describeExpiry(LOCKED_EXPIRY)}: no login, ssh key login, cron or at job), and unlocked when it ends.\n`;
  return plan.resuming
    ? `Resuming the migration of ${plan.user.home} (${plan.user.name}), interrupted at "${plan.journal.phase}": ${what}, ${plan.alreadyDone} entries already copied${room}.\n${lock}`
    : `Migrating ${plan.user.home} (${plan.user.name}): ${what}${room}.\n${lock}`;
}

function describeResult(plan: MigrationPlan, r: MigrateResult): string {
  const { user, layout } = plan;
  const c = r.counts;
  const unlocks = plan.journal.wrappingIndependent
    ? `with the separate wrapping passphrase: ${user.name} runs "ecryptfs-agent unlock" after logging in`
    : `at login, with ${user.name}'s login password (pam_ecryptfs_agent or pam_ecryptfs)`;
  const lines = [
    `Done: ${user.home} is now an encrypted home.`,
    `  ${c.files} files (${mib(c.bytes)}), ${c.dirs} directories, ${c.symlinks} symlinks, ${c.hardlinks} hard links, ${c.specials} special files;`,
    `  ${r.copied} entries copied by this run; all ${r.verified} read back through a fresh mount and matched (files by SHA-256).`,
    `  Encrypted files in ${layout.lower} (file name encryption ${r.fnek ? 'on' : 'off'}; sigs ${r.sigs.join(' ')}).`,
    `  Unlocked ${unlocks}.`,
    `  The account ${user.name} was locked during the migration and is unlocked again.`,
    '',
  ];
  if (r.originalRemoved) {
    lines.push(`The plaintext original ${r.original} was removed after verification (--remove-original).`);
  } else {
    lines.push(
      `The plaintext original is kept in ${r.original} (its files unchanged; readable by root only).`,
      'Next:',
      ` 1. ${user.name} logs in and checks that the files are there and can be read and written.`,
      ` 2. Then delete the plaintext copy:   rm -rf ${r.original}`,
      `    If something is wrong instead, go back (as root, ${user.name} logged out):`,
      `      umount ${user.home}; rm -rf ${user.home} ${layout.userDir}; mv ${r.original} ${user.home}`,
    );
  }
  lines.push(
    `${r.originalRemoved ? 'Next:\n 1.' : ' 3.'} ${user.name} records the mount passphrase offline (the only way in if the wrapped file or the password is lost):`,
    '      ecryptfs-agent unwrap-passphrase',
    `${r.originalRemoved ? ' 2.' : ' 4.'} Encrypt swap as well, or plaintext can end up there (ecryptfs-agent doctor checks it).`,
    '',
  );
  return lines.join('\n');
}

export const migrateHomeCommand = defineCommand({
  name: 'migrate-home',
  summary: "encrypt an existing home directory (ecryptfs-migrate-home compatible; root, user logged out)",
  help: MIGRATE_HELP,
  grammar: strict(MIGRATE_OPTS, NO_POSITIONALS),
  async run({ options: v }, io) {
    if (v.user === undefined) throw new UsageError('missing -u USER');
    let pw: Buffer | null = null;
    let again: Buffer | null = null;
    try {
      hardenProcess();
      if (process.getuid?.() !== 0 || process.geteuid?.() !== 0) {
        throw new AgentError('PERMISSION', 'migrate-home must be run by root', { hint: `Run it as root: sudo ecryptfs-agent migrate-home -u ${v.user}` });
      }
      const user = lookupUser(v.user);
      const opts: MigrateOptions = {
        fnek: decideFnek(v['no-fnek'] === true), // also: no module, no migration
        wrappingIndependent: v.wrapping === true,
        removeOriginal: v['remove-original'] === true,
        resumeOnly: v.resume === true,
        progress: (line) => io.err(`${line}\n`),
      };
      const plan = preflightMigration(user, opts);
      io.err(describePlan(plan));
      const wrapping = plan.journal.wrappingIndependent;
      const what = wrapping ? 'wrapping passphrase' : 'login password';
      const interactive = isInteractive();
      pw = await readSecret(io, `Enter the ${what} of ${user.name}`, interactive);
      if (pw === null || pw.length === 0) throw new AgentError('USAGE', `no ${what} given; nothing changed`, { hint: `Type the ${what} (stdin: one line)` });
      if (!phaseAtLeast(plan.journal, 'set-up')) {
        // it is about to wrap the new mount passphrase: make sure it is the one that unlocks it later
        const check = wrapping || v.nopwcheck === true ? null : checkLoginPassword(user.name, pw);
        if (check === false) {
          throw new AgentError('WRONG_PASSWORD', `that is not the login password of ${user.name}; nothing changed`, {
            hint: `Type the password ${user.name} logs in with (or use -w for a separate wrapping passphrase)`,
          });
        }
        if (check === null && interactive) {
          again = await readSecret(io, `Enter the ${what} of ${user.name} (again)`, true);
          if (again === null || !again.equals(pw)) throw new AgentError('USAGE', `the ${what}s do not match; nothing changed`, { hint: 'Run it again and type the same passphrase twice' });
        }
      }
      const state = new MigrateState(user.name);
      state.ensureDir();
      const secret = pw;
      const { result, final } = withFileLock(
        state.lockPath,
        () => {
          // again under the lock: another run may have moved things meanwhile
          const final = preflightMigration(user, opts);
          if (final.resuming !== plan.resuming) throw new AgentError('LOCK_TIMEOUT', `another migrate-home for ${user.name} changed its state meanwhile; nothing changed by this run`, { hint: 'Run it again' });
          return { result: migrateHome(final, secret, opts), final };
        },
        { timeoutMs: 0 },
      );
      for (const w of result.warnings.slice(0, 20)) io.err(`note: ${w}\n`);
      if (result.warnings.length > 20) io.err(`note: ... ${result.warnings.length - 20} more\n`);
      io.out(describeResult(final, result));
      return 0;
    } catch (e) {
      if (!(isAgentError(e, 'LOCK_TIMEOUT') && e.errno === 'EWOULDBLOCK')) releaseLockOfKilledRun(io, v.user);
      if (isAgentError(e, 'LOCK_TIMEOUT') && e.errno === 'EWOULDBLOCK') {
        return fail(io, 'migrate-home', new AgentError('LOCK_TIMEOUT', `another migrate-home for ${v.user} is running; nothing changed by this one`, { hint: 'Wait for it to finish' }));
      }
      if (isAgentError(e, 'WRONG_PASSWORD') && !e.message.includes('nothing changed')) {
        return fail(io, 'migrate-home', new AgentError('WRONG_PASSWORD', `wrong passphrase: it does not unwrap the encrypted home's wrapped-passphrase; nothing changed`, {
          hint: 'Type the passphrase given when the migration started (the login password at that time, or the -w wrapping passphrase)',
        }));
      }
      return fail(io, 'migrate-home', e);
    } finally {
      pw?.fill(0);
      again?.fill(0);
    }
  },
});

/**
 * A run refused before migrateHome started (preflight, no passphrase …) still ends the account
 * lock a killed run left, under the per-user lock (skipped while another run holds it).
 */
function releaseLockOfKilledRun(io: CliIO, name: string): void {
  if (process.getuid?.() !== 0 || !isValidUsername(name)) return;
  try {
    const state = new MigrateState(name);
    if (state.readJournal()?.previousExpiry === undefined) return;
    const restored = withFileLock(state.lockPath, () => releaseLeftAccountLock({ name }), { timeoutMs: 0 });
    if (restored !== null) io.err(`The account ${name} (locked by an interrupted migration) is unlocked again (expiry date ${describeExpiry(restored)}).\n`);
  } catch (e) {
    io.err(`warning: the account ${name} may still be locked by an interrupted migration: ${(e as Error).message}\n`);
  }
}

export const migrateCommands: readonly Command[] = [migrateHomeCommand];
