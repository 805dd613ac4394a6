/**
 * `mount LOWER UPPER` and `umount UPPER` (root): mount.ecryptfs's dialog and umount.ecryptfs's
 * key cleanup over src/actions/manual-mount.ts; the sig cache is src/actions/sig-cache.ts, the ciphers
 * src/os/ciphers.ts. The terminal, the kernel's ciphers and "am I root" come in as dependencies so
 * tests can drive the command with scripted answers.
 */
import { hardenProcess } from '../os/credentials';
import { type KernelCiphers, CIPHERS, describeCipher, systemKernelCiphers } from '../os/ciphers';
import { AgentError, type ErrorCode, isAgentError } from '../errors';
import {
  checkFnekKeyPresent,
  checkGivenChoices,
  closeMountTarget,
  decideAboutNewSig,
  findEcryptfsMount,
  type GivenChoices,
  manualMountOptions,
  missingChoiceFlags,
  mountManually,
  openMountTarget,
  type Prompter,
  renderOptionsAnnouncement,
  runMountDialog,
  unmountManually,
} from '../actions/manual-mount';
import { renderEcryptfsOptions } from '../formats/mountinfo';
import { readEcryptfsrcSalt } from '../actions/private-setup';
import { appendToSigCache, isSigCached, sigCachePath } from '../actions/sig-cache';
import { processesUsingMount, renderHolders } from '../os/processes';
import { type CliIO, type Command, defineCommand, invokingUser } from './command';
import { type OptionValues, strict, UsageError } from './args';

export interface MountCommandDeps {
  kernel: KernelCiphers;
  /** stdin is a terminal: missing choices are asked for */
  interactive(): boolean;
  isRoot(): boolean;
}

const systemDeps: MountCommandDeps = {
  kernel: systemKernelCiphers(),
  interactive: () => process.stdin.isTTY === true,
  isRoot: () => process.getuid?.() === 0 && process.geteuid?.() === 0,
};

/** Exit 2 for what is wrong on the command line itself. */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['USAGE', 'BAD_CIPHER', 'BAD_SIG']);

function fail(io: CliIO, cmd: string, e: unknown): number {
  if (isAgentError(e)) {
    io.err(`ecryptfs-agent ${cmd}: ${e.message}\nhint: ${e.hint}\n`);
    return USAGE_CODES.has(e.code) ? 2 : 1;
  }
  io.err(`ecryptfs-agent ${cmd}: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

function requireRoot(deps: MountCommandDeps, what: string): void {
  if (!deps.isRoot()) {
    throw new AgentError('PERMISSION', `${what} needs root, as mount -t ecryptfs does`, {
      hint: 'Run it with sudo. To unlock your own ~/Private without root: ecryptfs-agent unlock',
    });
  }
}

/** The dialog's terminal: prompts on stdout (as mount.ecryptfs printf()s them), answers from stdin. */
export function cliPrompter(io: CliIO): Prompter {
  return {
    say: (text) => io.out(text),
    async ask(prompt) {
      io.out(`${prompt}: `);
      let line: Buffer | null;
      try {
        line = await io.passphrases.read();
      } catch (e) {
        if (isAgentError(e, 'PASSPHRASE_TOO_LONG')) return '<too long>'; // no answer is that long: asked again
        throw e;
      }
      if (line === null) return null;
      const text = line.toString('utf8').replace(/\r$/, '');
      line.fill(0);
      return text;
    },
    askSecret: (prompt) => io.passphrases.read(prompt),
  };
}

// ------------------------------------------------------------------ mount

const MOUNT_HELP = `Usage: ecryptfs-agent mount LOWER UPPER [--cipher NAME] [--key-bytes N]
                            [--passthrough|--no-passthrough] [--fnek|--no-fnek|--fnek-sig SIG]
                            [--passphrase-stdin] [--yes] [--no-sig-cache]

Mounts the encrypted directory LOWER on UPPER with a passphrase, as root, asking what
"mount -t ecryptfs LOWER UPPER" (ecryptfs-utils 111) asks, in its order: key type (passphrase),
the passphrase, the cipher (those of ${CIPHERS.map((c) => c.name).join(', ')} that this kernel has
or can load, see /proc/crypto), the key bytes (those valid for that cipher), plaintext passthrough,
filename encryption and the filename key's signature (default: the file key itself). The same
answers mount the same directory with either tool: the key is the passphrase with the salt of
~/.ecryptfsrc (else ecryptfs-utils' default), added to root's user keyring.

Ciphers and key bytes offered (when the kernel has them):
${CIPHERS.map((c) => `  ${describeCipher(c)}; key bytes ${c.keyBytes.join(', ')}`).join('\n')}

  --cipher NAME          the cipher (no question)
  --key-bytes N          the key size in bytes (no question)
  --passthrough          let files in LOWER that are not encrypted be read as they are
  --no-passthrough       (default answer) every file is encrypted
  --fnek                 encrypt file names with the file key
  --fnek-sig SIG         encrypt file names with the key of that signature (already in root's keyring)
  --no-fnek              (default answer) file names stay readable in LOWER
  --passphrase-stdin     read the passphrase as one line from stdin (scripts)
  --yes                  a signature not in ~/.ecryptfs/sig-cache.txt is recorded there without asking
  --no-sig-cache         do not check ~/.ecryptfs/sig-cache.txt

On a terminal, what the flags leave open is asked. Without one (a script) nothing is asked: give
--cipher, --key-bytes, --[no-]passthrough, --[no-]fnek and --passphrase-stdin.
Sig cache: a passphrase whose signature is not in ~/.ecryptfs/sig-cache.txt (the file of
mount.ecryptfs) gets mount.ecryptfs's warning that it was probably mistyped, and the offer to
record it (after the mount worked). Without a terminal that refuses the mount unless --yes.
Nothing changes until every answer is in: a refused or failed mount leaves no key behind.
LOWER and UPPER must be directories, UPPER not a symbolic link, not the same directory, and both
on a usual disk filesystem (as for mount.ecryptfs_private); the mount is nosuid,nodev.
Unmount with: ecryptfs-agent umount UPPER

Exit status:
  0  mounted
  1  not mounted: refused, failed or aborted (the message says why; nothing changed)
  2  usage error (unknown option, cipher or key size; a choice missing without a terminal)`;

const MOUNT_OPTS = {
  cipher: { type: 'string' },
  'key-bytes': { type: 'string' },
  passthrough: { type: 'boolean' },
  'no-passthrough': { type: 'boolean' },
  fnek: { type: 'boolean' },
  'no-fnek': { type: 'boolean' },
  'fnek-sig': { type: 'string' },
  'passphrase-stdin': { type: 'boolean' },
  yes: { type: 'boolean' },
  'no-sig-cache': { type: 'boolean' },
} as const;

/** Flags → choices; a string is a usage error. */
export function givenChoicesFromFlags(v: OptionValues<typeof MOUNT_OPTS>): GivenChoices | string {
  const given: GivenChoices = {};
  if (v.passthrough && v['no-passthrough']) return '--passthrough and --no-passthrough contradict each other';
  if (v.fnek && v['no-fnek']) return '--fnek and --no-fnek contradict each other';
  if (v['fnek-sig'] !== undefined && v['no-fnek']) return '--fnek-sig and --no-fnek contradict each other';
  if (typeof v.cipher === 'string') given.cipher = v.cipher;
  if (typeof v['key-bytes'] === 'string') {
    if (!/^\d{1,3}$/.test(v['key-bytes'])) return `--key-bytes wants a number of bytes, not "${v['key-bytes'].slice(0, 20)}"`;
    given.keyBytes = Number(v['key-bytes']);
  }
  if (v.passthrough) given.passthrough = true;
  if (v['no-passthrough']) given.passthrough = false;
  if (v.fnek) given.fnek = true;
  if (v['no-fnek']) given.fnek = false;
  if (typeof v['fnek-sig'] === 'string') given.fnekSig = v['fnek-sig'];
  return given;
}

const MOUNT_GRAMMAR = strict(MOUNT_OPTS, { min: 2, max: 2, missing: 'LOWER and UPPER are required' });

export function createMountCommand(deps: MountCommandDeps = systemDeps): Command<typeof MOUNT_GRAMMAR> {
  return defineCommand({
    name: 'mount',
    summary: 'mount LOWER on UPPER with a passphrase, cipher and key size (mount -t ecryptfs dialog; root)',
    help: MOUNT_HELP,
    grammar: MOUNT_GRAMMAR,
    async run({ positionals, options: v }, io) {
      const given = givenChoicesFromFlags(v);
      if (typeof given === 'string') throw new UsageError(given);
      const [lowerArg, upperArg] = positionals as [string, string];
      let target: ReturnType<typeof openMountTarget> | undefined;
      let authTok: { sig: string; payload: Buffer } | undefined;
      try {
        requireRoot(deps, 'mount');
        hardenProcess();
        const prompter = deps.interactive() ? cliPrompter(io) : null;
        // Everything that can be refused without asking is refused before asking.
        const dry = checkBeforeAsking(prompter, given, v['passphrase-stdin'] === true);
        target = openMountTarget(lowerArg, upperArg);
        const salt = readEcryptfsrcSalt(io.home(), invokingUser());
        let passphrase: Buffer | undefined;
        if (dry.readStdin) {
          const read = await io.passphrases.read();
          if (read === null) throw new AgentError('USAGE', 'no passphrase on stdin (--passphrase-stdin reads one line)');
          passphrase = read;
        }
        const dialog = await runMountDialog({ prompter, kernel: deps.kernel, given, salt, ...(passphrase ? { passphrase } : {}) });
        authTok = dialog.authTok;
        const { choices } = dialog;
        checkFnekKeyPresent(choices);
        io.out(renderOptionsAnnouncement(renderEcryptfsOptions(manualMountOptions(choices, authTok.sig))));
        const cachePath = sigCachePath(io.home());
        const decision = v['no-sig-cache'] === true
          ? 'known'
          : await decideAboutNewSig(prompter, { cached: isSigCached(cachePath, authTok.sig), sig: authTok.sig, path: cachePath, yes: v.yes === true });
        mountManually(target, authTok, choices);
        io.out(`Mounted eCryptfs\n${target.lower} is mounted on ${target.upper} (${choices.cipher}, ${choices.keyBytes} key bytes` +
          `${choices.passthrough ? ', plaintext passthrough' : ''}${choices.fnek ? ', encrypted file names' : ''}).\n`);
        if (decision === 'record') {
          try {
            appendToSigCache(cachePath, authTok.sig, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
            io.out('Successfully appended new sig to user sig cache file\n');
          } catch (e) {
            io.err(`ecryptfs-agent mount: mounted, but the sig was not recorded: ${(e as Error).message}\n`);
          }
        }
        io.out(`Unmount with: ecryptfs-agent umount ${target.upper}\n`);
        return 0;
      } catch (e) {
        return fail(io, 'mount', e);
      } finally {
        authTok?.payload.fill(0);
        if (target) closeMountTarget(target);
      }
    },
  });
}

/** What can be told from the flags and the terminal alone. Without a terminal the passphrase comes from stdin. */
function checkBeforeAsking(prompter: Prompter | null, given: GivenChoices, passphraseStdin: boolean): { readStdin: boolean } {
  checkGivenChoices(given);
  if (prompter === null) {
    const missing = missingChoiceFlags(given);
    if (!passphraseStdin) missing.push('--passphrase-stdin');
    if (missing.length > 0) throw new AgentError('USAGE', `not a terminal, so nothing can be asked: give ${missing.join(', ')}`);
  }
  return { readStdin: prompter === null };
}

// ------------------------------------------------------------------ umount

const UMOUNT_HELP = `Usage: ecryptfs-agent umount UPPER [--force]

Unmounts the eCryptfs file system mounted on UPPER (by ecryptfs-agent mount or mount -t ecryptfs)
and, when it was mounted with ecryptfs_unlink_sigs (both do that), unlinks its keys from root's
keyring, as umount.ecryptfs does — except keys another eCryptfs mount still uses (several mounts
may share one key). Refuses while processes use files under it (listed like fuser -vm) unless
--force: then the mount is detached lazily (umount -l).

Exit status:
  0  unmounted
  1  refused (in use, not an eCryptfs mount, a symbolic link) or failed; nothing changed
  2  usage error`;

const UMOUNT_GRAMMAR = strict({ force: { type: 'boolean', short: 'f' } }, { min: 1, max: 1, missing: 'UPPER is required' });

export function createUmountCommand(deps: MountCommandDeps = systemDeps): Command<typeof UMOUNT_GRAMMAR> {
  return defineCommand({
    name: 'umount',
    summary: 'unmount an eCryptfs mount and unlink keys no other mount uses (root)',
    help: UMOUNT_HELP,
    grammar: UMOUNT_GRAMMAR,
    async run({ positionals, options }, io) {
      const force = options.force === true;
      try {
        requireRoot(deps, 'umount');
        const entry = findEcryptfsMount(positionals[0] as string);
        const { holders } = processesUsingMount(entry);
        if (holders.length > 0 && !force) {
          io.err(
            `ecryptfs-agent umount: refusing to unmount ${entry.mountPoint}: ${holders.length} process(es) use files under it:\n` +
              renderHolders(entry.mountPoint, holders) +
              'Close them (or leave the directory), then try again; or use --force to detach it lazily.\n',
          );
          return 1;
        }
        const r = unmountManually(entry, { lazy: force && holders.length > 0, lazyIfBusy: force });
        io.out(
          `Unmounted ${entry.mountPoint}${r.lazy ? ' (detached lazily: processes that still hold files keep them until they close them)' : ''}.\n` +
            (r.removed.length ? `Removed keys from root's keyring: ${r.removed.join(', ')}\n` : '') +
            r.kept.map((k) => `Kept key ${k.sig}: still used by ${k.by.join(', ')}\n`).join('') +
            (r.keysLeft ? 'Its keys stay in the keyring (it was mounted without ecryptfs_unlink_sigs).\n' : ''),
        );
        return 0;
      } catch (e) {
        if (isAgentError(e, 'UNMOUNT_BUSY')) {
          return fail(io, 'umount', new AgentError('UNMOUNT_BUSY', `${e.message}: something started using it; nothing changed`, { hint: 'Close the programs using it, or use --force' }));
        }
        return fail(io, 'umount', e);
      }
    },
  });
}

export const mountCommands: readonly Command[] = [createMountCommand(), createUmountCommand()];
