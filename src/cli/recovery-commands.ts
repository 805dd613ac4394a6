/**
 * `recovery` (show the mount passphrase to record it offline) and `recover` (mount a .Private
 * copied from another disk; `recover --unmount` cleans up): thin front-end over src/actions/recovery.ts.
 * Secrets come only from the terminal (echo off) or one stdin line each, never from argv.
 */
import { hardenProcess, asUser } from '../os/credentials';
import { AgentError, isAgentError } from '../errors';
import { loadPrivateSetup } from '../actions/private-setup';
import {
  findRecoveredMount,
  locateRecoverySource,
  recoverPrivate,
  type RecoveryKeyInput,
  type RecoveryResult,
  revealMountPassphrase,
  unmountRecovered,
} from '../actions/recovery';
import { processesUsingMount, renderHolders } from '../os/processes';
import { type CliIO, type Command, defineCommand } from './command';
import { type Arity, checkArity, NO_POSITIONALS, strict, UsageError } from './args';
import { fail, resolveTarget } from './private-commands';

/** On a terminal: prompt with echo off. From a pipe: one line, no prompt (the "-" mode of the C tools). */
export async function readSecret(io: CliIO, prompt: string, what: string): Promise<Buffer> {
  const secret = await io.passphrases.read(process.stdin.isTTY === true ? prompt : undefined);
  if (secret === null || secret.length === 0) {
    secret?.fill(0);
    throw new AgentError('USAGE', `no ${what} given; nothing changed`, { hint: `Type the ${what} (stdin: one line)` });
  }
  return secret;
}

// ------------------------------------------------------------------ recovery

const RECOVERY_HELP = `Usage: ecryptfs-agent recovery [-u USER]

Shows the MOUNT PASSPHRASE of your encrypted private directory so that you can record it
offline while your login password still works. It is unwrapped from
~/.ecryptfs/wrapped-passphrase with your login passphrase (or the wrapping passphrase of a
setup made with -w), checked against ~/.ecryptfs/Private.sig, and printed alone on stdout
(one line, exactly as ecryptfs-unwrap-passphrase prints it); the advice goes to stderr.
With it, "ecryptfs-agent recover" (or ecryptfs-recover-private) opens a copy of ~/.Private
even when the wrapped file is lost or the password is forgotten or reset by root.

  -u USER   as root: USER's mount passphrase (USER's login passphrase is still needed)

The passphrase is prompted for on a terminal, otherwise read as one line from stdin.

Exit status:
  0  shown
  1  not shown (wrong passphrase, no setup, damaged file: the message says why)
  2  usage error`;

export const recoveryCommand = defineCommand({
  name: 'recovery',
  summary: 'show the mount passphrase (checked against Private.sig) to record it offline',
  help: RECOVERY_HELP,
  grammar: strict({ username: { type: 'string', short: 'u' } }, NO_POSITIONALS),
  async run({ options }, io) {
    let pw: Buffer | null = null;
    let passphrase: Buffer | null = null;
    try {
      hardenProcess();
      const t = resolveTarget(options.username);
      const setup = asUser(t.user, () => loadPrivateSetup(t.user));
      if (setup === null) {
        throw new AgentError('NOT_FOUND', `${t.user.name} has no private directory set up here (no ${t.user.home}/.ecryptfs/Private.sig to check the passphrase against)`, {
          hint: 'If only Private.sig is lost, "ecryptfs-agent unwrap-passphrase ~/.ecryptfs/wrapped-passphrase" prints the passphrase unchecked',
        });
      }
      if (!setup.hasWrappedPassphrase) {
        throw new AgentError('NOT_FOUND', `${setup.wrappedPassphrasePath} does not exist: the mount passphrase is not stored on this system`, {
          hint: 'Only the copy recorded at setup can open the directory now (ecryptfs-agent recover DIR --mount-passphrase)',
        });
      }
      const what = setup.wrappingIndependent ? 'wrapping passphrase' : 'login passphrase';
      pw = await readSecret(io, `Enter your ${what} [${t.user.name}]`, what);
      try {
        passphrase = revealMountPassphrase(t.user, setup, pw);
      } catch (e) {
        if (isAgentError(e, 'WRONG_PASSWORD')) {
          throw new AgentError('WRONG_PASSWORD', `wrong ${what}: it does not unwrap ${setup.wrappedPassphrasePath}`, {
            hint: setup.wrappingIndependent
              ? 'Type the wrapping passphrase chosen at setup-private -w'
              : 'Type your current login password; if it was changed by root or another tool, the file may still be wrapped with the old one',
          });
        }
        throw e;
      }
      io.out(Buffer.concat([passphrase, Buffer.from('\n')]));
      io.err(
        `^ That is the MOUNT PASSPHRASE of ${setup.lower} (checked against Private.sig).\n` +
          `  WRITE IT DOWN and keep it OFFLINE, in a safe place (on paper, or in a password manager on\n` +
          `  another device), never in your home directory or anywhere on this disk: with it, anyone\n` +
          `  who has a copy of ${setup.lower} can read your files.\n` +
          `  It gets your files back even if ${setup.wrappedPassphrasePath} is lost or your\n` +
          `  password is forgotten or reset: as root, on a copy of the directory,\n` +
          `    ecryptfs-agent recover --mount-passphrase /path/to/copy/of/.Private\n`,
      );
      return 0;
    } catch (e) {
      return fail(io, 'recovery', e);
    } finally {
      pw?.fill(0);
      passphrase?.fill(0);
    }
  },
});

// ------------------------------------------------------------------ recover

const RECOVER_HELP = `Usage: ecryptfs-agent recover [OPTIONS] DIR
       ecryptfs-agent recover --unmount MOUNTPOINT

As root, mounts an encrypted private directory copied from another disk, like
ecryptfs-recover-private. DIR is the encrypted .Private directory, or a directory holding it
(a home, or /home/.ecryptfs/USER of an encrypted home). The key is
  - the wrapped-passphrase file in the .ecryptfs directory next to it (or --wrapped FILE),
    unwrapped with the login password the user had there (or the wrapping passphrase of a
    setup made with -w);
  - the mount passphrase itself when there is no such file, or with --mount-passphrase.
Before anything is changed the key is checked against the copy: the key sigs in the headers
of its files and in its encrypted file names, and Private.sig when it was copied along.
A wrong passphrase mounts nothing and leaves no key behind.
The directory is mounted read-only (and nosuid, nodev, noexec) on a new directory
/tmp/ecryptfs-recover-XXXXXX/Private that only root can enter; the keys go to root's user
keyring. Copy the files out, then unmount it and forget its keys in one step:
  ecryptfs-agent recover --unmount /tmp/ecryptfs-recover-XXXXXX/Private

  -m, --mount-passphrase  type the mount passphrase, even when a wrapped-passphrase file is found
  --wrapped FILE          unwrap FILE instead of the wrapped-passphrase file next to DIR
  --fnek, --no-fnek       file names are (not) encrypted; default: Private.sig when copied along,
                          else what the names in DIR look like (as ecryptfs-recover-private does)
  --rw                    mount read-write
  --mount-point DIR       mount on DIR (an empty directory owned by root) instead
  --unmount MOUNTPOINT    unmount a recovered directory, unlink its keys from root's keyring and
                          remove the directory recover made for it

Passphrases are prompted for on a terminal, otherwise read as one line from stdin; never taken
from the command line.

Exit status:
  0  mounted (or already mounted: the message says where); --unmount: unmounted
  1  not done, nothing changed (wrong passphrase, not an eCryptfs directory, no eCryptfs in the
     kernel, still in use: the message says why)
  2  usage error`;

const RECOVER_OPTS = {
  'mount-passphrase': { type: 'boolean', short: 'm' },
  wrapped: { type: 'string' },
  fnek: { type: 'boolean' },
  'no-fnek': { type: 'boolean' },
  rw: { type: 'boolean' },
  'mount-point': { type: 'string' },
  unmount: { type: 'string' },
} as const;

const FNEK_FROM: Record<RecoveryResult['fnekFrom'], string> = {
  option: 'as the option says',
  'Private.sig': 'as Private.sig says',
  'file names': 'judged by the names in the directory',
};

function requireRoot(): void {
  if (process.geteuid?.() !== 0) {
    throw new AgentError('PERMISSION', 'recover mounts and unmounts, which needs root', { hint: 'Run it with sudo: sudo ecryptfs-agent recover ...' });
  }
}

async function unmountCommand(io: CliIO, path: string): Promise<number> {
  try {
    requireRoot();
    const r = unmountRecovered(path);
    const parts = [`Unmounted ${r.mountPoint}`];
    if (r.removedKeys.length > 0) parts.push(`removed key${r.removedKeys.length > 1 ? 's' : ''} ${r.removedKeys.join(', ')} from root's keyring`);
    if (r.removedDir !== undefined) parts.push(`removed ${r.removedDir}`);
    io.out(`${parts.join('; ')}.\n`);
    if (r.keptKeys.length > 0) io.out(`Kept key ${r.keptKeys.join(', ')}: another eCryptfs mount still uses it.\n`);
    return 0;
  } catch (e) {
    if (isAgentError(e, 'UNMOUNT_BUSY')) {
      const entry = findRecoveredMount(path);
      const { holders } = processesUsingMount(entry);
      io.err(`ecryptfs-agent recover: ${entry.mountPoint} is in use; nothing changed.\n${holders.length > 0 ? renderHolders(entry.mountPoint, holders) : ''}hint: ${e.hint}\n`);
      return 1;
    }
    return fail(io, 'recover', e);
  }
}

/** The mount takes one DIR; --unmount MOUNTPOINT takes no positional: run() checks the count once it knows which. */
const MOUNT_FORM_ARITY: Arity = { min: 1, max: 1, missing: 'missing DIR' };

export const recoverCommand = defineCommand({
  name: 'recover',
  summary: 'as root: mount a .Private copied from another disk (ecryptfs-recover-private); --unmount cleans up',
  help: RECOVER_HELP,
  grammar: strict(RECOVER_OPTS),
  async run({ positionals, options: v }, io) {
    if (v.unmount !== undefined) {
      const others = Object.entries(v).filter(([k, value]) => k !== 'unmount' && value !== undefined);
      if (others.length > 0 || positionals.length > 0) throw new UsageError('--unmount takes only the mount point');
      return unmountCommand(io, v.unmount);
    }
    checkArity(positionals, MOUNT_FORM_ARITY);
    if (v.fnek === true && v['no-fnek'] === true) throw new UsageError('--fnek and --no-fnek exclude each other');
    if (v['mount-passphrase'] === true && v.wrapped !== undefined) throw new UsageError('--mount-passphrase and --wrapped exclude each other');
    let secret: Buffer | null = null;
    try {
      hardenProcess();
      requireRoot();
      const source = locateRecoverySource(positionals[0] as string, v.wrapped === undefined ? {} : { wrapped: v.wrapped });
      for (const note of source.notes) io.err(`note: ${note}\n`);
      if (source.mountedAt !== undefined) {
        io.out(`${source.lower} is already mounted on ${source.mountedAt}; nothing changed.\nUnmount it with: ecryptfs-agent recover --unmount ${source.mountedAt}\n`);
        return 0;
      }
      const kind: RecoveryKeyInput['kind'] = v['mount-passphrase'] === true || source.wrappedPath === undefined ? 'mount-passphrase' : 'wrapped';
      let prompt: string;
      if (kind === 'wrapped') {
        io.err(`Using ${source.wrappedPath}: it is unwrapped with the login password the user had there (or use --mount-passphrase).\n`);
        prompt = `Enter the login (wrapping) passphrase for ${source.wrappedPath}`;
      } else {
        if (v['mount-passphrase'] !== true) io.err(`No wrapped-passphrase file next to ${source.lower}: the MOUNT passphrase recorded at setup is needed.\n`);
        prompt = `Enter the MOUNT passphrase of ${source.lower}`;
      }
      secret = await readSecret(io, prompt, kind === 'wrapped' ? 'login (wrapping) passphrase' : 'mount passphrase');
      const opts: Parameters<typeof recoverPrivate>[2] = { readOnly: v.rw !== true };
      if (v.fnek === true) opts.fnek = true;
      if (v['no-fnek'] === true) opts.fnek = false;
      if (v['mount-point'] !== undefined) opts.mountPoint = v['mount-point'];
      const r = recoverPrivate(source, { kind, secret }, opts);
      io.out(
        `Recovered ${r.lower}: mounted ${r.readOnly ? 'read-only' : 'READ-WRITE'} on ${r.mountPoint}\n` +
          `  key sig ${r.fekSig}; file names ${r.fnekSig ? `encrypted, filename key sig ${r.fnekSig}` : 'not encrypted'} (${FNEK_FROM[r.fnekFrom]})\n` +
          `  checked against: ${r.checkedAgainst.join('; ')}\n` +
          `Copy your files out, then unmount it and forget its keys with:\n` +
          `  ecryptfs-agent recover --unmount ${r.mountPoint}\n`,
      );
      return 0;
    } catch (e) {
      return fail(io, 'recover', e);
    } finally {
      secret?.fill(0);
    }
  },
});

export const recoveryCommands: readonly Command[] = [recoveryCommand, recoverCommand];
