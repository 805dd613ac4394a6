/**
 * `keys` and `forget`: the friendly form of `keyctl list @u` / `keyctl unlink` for eCryptfs
 * auth toks, with what the kernel's mounts say about each sig.
 */
import { isAgentError } from '../errors';
import { listAuthToks, possessUserKeyring, removeAuthTok } from '../os/keyring';
import { ecryptfsMounts } from '../os/mount';
import { sigsOfMount } from '../formats/mountinfo';
import { leading } from './args';
import { type CliIO, type Command, defineCommand } from './command';

const EXIT_CODES = `Exit status:
  0  success
  1  a named key was not found, is still used by a mount (without --force), or the keyring failed
  2  usage error`;

/** sig → mount points of eCryptfs mounts that use it. */
function mountsBySig(): Map<string, string[]> {
  const bySig = new Map<string, string[]>();
  for (const m of ecryptfsMounts()) for (const s of sigsOfMount(m)) bySig.set(s, [...(bySig.get(s) ?? []), m.mountPoint]);
  return bySig;
}

function fail(io: CliIO, e: unknown): number {
  io.err(`ecryptfs-agent: ${(e as Error).message}\n`);
  if (isAgentError(e)) io.err(`hint: ${e.hint}\n`);
  return 1;
}

export const keysCommand = defineCommand({
  name: 'keys',
  summary: 'list the eCryptfs auth toks in your user keyring and the mounts that use them',
  help: `Usage: ecryptfs-agent keys

Lists the eCryptfs auth toks ("user" keys whose description is a 16-hex sig and whose payload
is an auth tok) in your user keyring (@u), with the mount points of the eCryptfs mounts
that use each sig.

${EXIT_CODES}`,
  grammar: leading([], { max: 0, tooMany: null }), // too many: the help says it all
  async run(_args, io) {
    try {
      possessUserKeyring();
      const toks = listAuthToks();
      if (toks.length === 0) {
        io.out('No eCryptfs auth toks in the user keyring.\n');
        return 0;
      }
      const bySig = mountsBySig();
      io.out('SIG               KEY         USED BY\n');
      for (const t of toks) {
        const used = bySig.get(t.sig);
        io.out(`${t.sig}  ${t.id.toString(16).padStart(8, '0')}    ${used ? used.join(', ') : '(no mount)'}\n`);
      }
      return 0;
    } catch (e) {
      return fail(io, e);
    }
  },
});

export const forgetCommand = defineCommand({
  name: 'forget',
  summary: 'unlink eCryptfs auth toks from your user keyring',
  help: `Usage: ecryptfs-agent forget [--force] [SIG...]

Unlinks the named auth toks from your user keyring (@u); without SIG, every eCryptfs auth
tok that no mount uses. A sig still used by a mount is kept unless --force is given
(unlinking it does not lock the mount; use "ecryptfs-agent lock" or umount for that).

${EXIT_CODES}`,
  grammar: leading(['force']),
  async run({ positionals, options }, io) {
    const force = options.force === true;
    if (positionals.some((s) => !/^[0-9a-fA-F]{16}$/.test(s))) {
      io.err(`ecryptfs-agent: a sig is 16 hexadecimal characters\n${this.help}\n`);
      return 2;
    }
    try {
      possessUserKeyring();
      const bySig = mountsBySig();
      const present = new Set(listAuthToks().map((t) => t.sig));
      const targets = positionals.length > 0 ? positionals.map((s) => s.toLowerCase()) : [...present].filter((s) => !bySig.has(s));
      let status = 0;
      for (const sig of targets) {
        const used = bySig.get(sig);
        if (used && !force) {
          io.err(`kept ${sig}: still used by ${used.join(', ')} (use --force to unlink anyway)\n`);
          status = 1;
        } else if (removeAuthTok(sig)) {
          io.out(`Removed auth tok with sig [${sig}] from the user keyring\n`);
        } else {
          io.err(`no auth tok with sig [${sig}] in the user keyring\n`);
          status = 1;
        }
      }
      if (targets.length === 0) io.out('No unused eCryptfs auth toks in the user keyring.\n');
      return status;
    } catch (e) {
      return fail(io, e);
    }
  },
});

export const keyCommands: readonly Command[] = [keysCommand, forgetCommand];
