/**
 * `migrate-out -u USER --to plain | --finish`: a thin front-end over src/actions/migrate-out.ts
 * (as root, the user logged out). Everything that can be refused is refused before the password
 * is asked for; runs of one user are serialised by a lock next to the journal.
 */
import { join } from 'node:path';
import { blockEncryptionOf, type BlockEncryption } from '../os/block-encryption';
import { hardenProcess, lookupUser } from '../os/credentials';
import { enableOpensslLegacyCiphers } from '../os/ciphers';
import { withFileLock } from '../os/lock';
import { readMountInfo } from '../os/mount';
import { ensureRootDir } from '../os/secure-file';
import { AgentError } from '../errors';
import { finishMigrateOut, MIGRATE_OUT_STATE_DIR, MIGRATE_OUT_TARGETS, migrateOut, planMigrateOut, releaseLeftAccountLock, type MigrateOutPlan, type MigrateOutTarget } from '../actions/migrate-out';
import { type Command, defineCommand } from './command';
import { NO_POSITIONALS, strict, UsageError } from './args';
import { fail } from './private-commands';
import { readSecret } from './recovery-commands';

const MIGRATE_OUT_HELP = `Usage: ecryptfs-agent migrate-out -u USER --to fscrypt|plain [--yes]
       ecryptfs-agent migrate-out -u USER --finish

Takes USER's encrypted private directory off eCryptfs. The plaintext of ~/.Private is read
WITHOUT the eCryptfs kernel module, written into ~/Private.migrate-out, and verified file by file
(every file decrypted again and compared with the copy, SHA-256); only then does the copy take
~/Private's place and ~/.ecryptfs move to ~/.ecryptfs.migrated-out, so this module and
pam_ecryptfs unlock nothing for USER any more.

--to fscrypt: ~/Private.migrate-out is an fscrypt directory (ext4's own encryption, Debian
packages fscrypt and libpam-fscrypt) protected by USER's login password, so pam_fscrypt unlocks
it at login and locks it at the last logout. The command checks first what fscrypt needs (ext4
with the "encrypt" feature: it names the tune2fs command if that is missing) and says which
"fscrypt setup" it will run. The copy is verified after a lock and an unlock with the login
password. fscrypt may write a recovery passphrase into ~/Private/fscrypt_recovery_readme.txt.

--to plain: the files are stored UNENCRYPTED: do this only where the disk is encrypted as a
whole (LUKS); the command says whether the filesystem holding ~/Private is.

Either way it does nothing without --yes.

~/.Private (the ciphertext) and ~/.ecryptfs.migrated-out are kept until
  ecryptfs-agent migrate-out -u USER --finish
removes them, once USER has checked their files.

Run it as root while USER is logged out. USER's login password is asked for: it unwraps the
mount passphrase, which is checked against the directory before anything is written. While it
runs, the account is LOCKED (expiry date 1970-01-02, as migrate-home does) and unlocked when it
ends, successfully or not. A run that is interrupted (killed, power loss, disk full) loses
nothing: running the command again continues from /var/lib/ecryptfs-agent/migrate-out/USER.json.

  -u, --user USER   the user (required)
  --to fscrypt      the target: an fscrypt directory unlocked by the login password
  --to plain        the target: a plain directory (for whole-disk encryption)
  --yes             go ahead (without it: say what would happen and stop)
  --finish          remove the kept ~/.Private and ~/.ecryptfs.migrated-out after a migration
The password is prompted for on a terminal, otherwise read as one line from stdin.

Refused, with nothing changed: not root; USER unknown, logged in or with a process running; no
private directory; a whole encrypted home (use export); ~/Private mounted or holding files of
its own; for fscrypt, what the filesystem or the system lacks; a wrong password. Stopped, with
nothing switched and ~/.Private untouched: a file that cannot be read, or a copy that differs.

Exit status:
  0  migrated (or finished)
  1  refused or stopped (the message says why; run it again to resume)
  2  usage error`;

function describeDisk(b: BlockEncryption | null, upper: string): string {
  if (b === null) return `The filesystem holding ${upper} could not be found in /proc/self/mountinfo.`;
  if (b.encrypted === true) return `The filesystem holding ${upper} (${b.source} on ${b.mountPoint}) is on dm-crypt (${b.cryptDevice}): encrypted at rest.`;
  if (b.encrypted === false) return `The filesystem holding ${upper} (${b.source} on ${b.mountPoint}) is NOT on an encrypted block device: anyone with the disk could read the files.`;
  return `Whether the filesystem holding ${upper} (${b.source} on ${b.mountPoint}) is encrypted could not be told (not a block device).`;
}

/** What --to fscrypt will do to the system first, and what the admin should know. */
function describeFscrypt(plan: MigrateOutPlan): string {
  const f = plan.fscrypt;
  if (f === undefined) return '';
  const lines = [`The new ${plan.journal.upper} is encrypted by fscrypt (ext4 on ${f.device}, mounted on ${f.mount.mountPoint}: "encrypt" feature on), protected by ${plan.user.name}'s login password.`];
  for (const args of f.setup) lines.push(`First: fscrypt ${args.join(' ')} (fscrypt is not set up there yet).`);
  lines.push(...f.notes);
  return `${lines.join('\n')}\n`;
}

export const migrateOutCommand = defineCommand({
  name: 'migrate-out',
  summary: 'take an encrypted private directory off eCryptfs (--to fscrypt|plain), verified file by file',
  help: MIGRATE_OUT_HELP,
  grammar: strict({ user: { type: 'string', short: 'u' }, to: { type: 'string' }, yes: { type: 'boolean' }, finish: { type: 'boolean' } }, NO_POSITIONALS),
  async run({ options: v }, io) {
    if (v.user === undefined) throw new UsageError('-u USER is required');
    if (v.finish === true && (v.to !== undefined || v.yes === true)) throw new UsageError('--finish takes no --to or --yes');
    if (v.finish !== true && v.to === undefined) throw new UsageError('--to fscrypt, --to plain or --finish is required');
    if (v.to !== undefined && !MIGRATE_OUT_TARGETS.includes(v.to as MigrateOutTarget)) throw new UsageError(`--to ${v.to}: the target is fscrypt or plain`);
    const target = (v.to ?? 'plain') as MigrateOutTarget;
    let secret: Buffer | null = null;
    try {
      hardenProcess();
      if (process.getuid?.() !== 0 || process.geteuid?.() !== 0) {
        throw new AgentError('PERMISSION', 'migrate-out must be run by root', { hint: `Run it as root: sudo ecryptfs-agent migrate-out -u ${v.user} ${v.finish === true ? '--finish' : `--to ${target}`}` });
      }
      const user = lookupUser(v.user);
      ensureRootDir(MIGRATE_OUT_STATE_DIR, 0o700, { exactMode: true });
      // one run per user at a time: another one is refused, not waited for
      const underLock = <T>(fn: () => T): T => withFileLock(join(MIGRATE_OUT_STATE_DIR, `${user.name}.lock`), fn, { timeoutMs: 0 });
      // a killed run's account lock ends here, whatever this run does next
      if (underLock(() => releaseLeftAccountLock(user)) !== null) io.err(`The account ${user.name} (locked by an interrupted migration) is unlocked again.\n`);
      if (v.finish === true) {
        const j = underLock(() => finishMigrateOut(user));
        io.out(`Removed ${j.lower} and ${j.keptConfigDir}; ${user.name}'s files are in ${j.upper}.\n`);
        return 0;
      }
      const first = planMigrateOut(user, { target });
      const j0 = first.journal;
      const into = target === 'fscrypt' ? 'an fscrypt directory' : 'unencrypted';
      io.err(`${first.resuming ? `Resuming the migration of ${user.name} (stopped after "${j0.phase}")` : `Migrating ${user.name} out of eCryptfs`}: ${j0.lower} → ${j0.upper}, ${into}.\n`);
      io.err(target === 'fscrypt' ? describeFscrypt(first) : `${describeDisk(blockEncryptionOf(j0.upper, readMountInfo()), j0.upper)}\n`);
      if (v.yes !== true) {
        io.err('Nothing was changed. Run again with --yes to go ahead.\n');
        return 1;
      }
      secret = await readSecret(io, `Login password of ${user.name}`, `login password of ${user.name}`);
      enableOpensslLegacyCiphers();
      const pw = secret;
      // planned again under the lock: the state may have changed while the password was typed
      const { plan, r } = underLock(() => {
        const p = planMigrateOut(user, { target });
        return {
          plan: p,
          r: migrateOut(p, pw, {
            onProblem: (x) => io.err(`ecryptfs-agent migrate-out: ${x.lower}: not readable: ${x.error.message}\n`),
            onPhase: (ph) => io.err(`  done: ${ph}\n`),
            onNote: (line) => io.err(`${line}\n`),
          }),
        };
      });
      const j = plan.journal;
      const e = r.exported;
      io.out(
        `Migrated ${user.name} out of eCryptfs: ${j.upper} holds ${target === 'fscrypt' ? 'the files, encrypted by fscrypt and locked until a login' : 'the plaintext'}` +
          `${e ? ` (${e.files} files, ${e.bytes} bytes, ${e.dirs} directories, ${e.symlinks} symlinks${e.hardlinks > 0 ? `, ${e.hardlinks} hard links` : ''})` : ''}` +
          `${r.verified ? ', every file verified (SHA-256)' : ''}.\n` +
          `${r.recoveryReadme === undefined ? '' : `fscrypt wrote a recovery passphrase into ${r.recoveryReadme}: ${user.name} should record it somewhere safe (a reinstalled system opens the directory only with it).\n`}` +
          `Kept until you remove them: ${j.lower} and ${j.keptConfigDir}. Once ${user.name} has checked their files:\n` +
          `  ecryptfs-agent migrate-out -u ${user.name} --finish\n`,
      );
      return 0;
    } catch (e) {
      return fail(io, 'migrate-out', e);
    } finally {
      (secret as Buffer | null)?.fill(0);
    }
  },
});

export const migrateOutCommands: readonly Command[] = [migrateOutCommand];
