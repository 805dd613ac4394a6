/**
 * `export`: copy the plaintext out of an eCryptfs lower directory without the kernel module
 * (thin front-end over src/actions/export.ts). Secrets come only from the terminal (echo off) or
 * one stdin line, never from argv.
 */
import { AgentError } from '../errors';
import { hardenProcess, asUser } from '../os/credentials';
import { enableOpensslLegacyCiphers } from '../os/ciphers';
import { loadPrivateSetup } from '../actions/private-setup';
import { locateRecoverySource, type RecoveryKeyInput } from '../actions/recovery';
import { exportKeysFor, exportRights, exportTree } from '../actions/export';
import { type Command, defineCommand } from './command';
import { strict, UsageError } from './args';
import { fail, resolveTarget } from './private-commands';
import { readSecret } from './recovery-commands';

const EXPORT_HELP = `Usage: ecryptfs-agent export [-u USER | -m] LOWER DEST

Copies the plaintext of an encrypted private directory to DEST WITHOUT the eCryptfs kernel
module: the way off eCryptfs, also on a kernel that no longer has it. LOWER is the encrypted
directory (.Private), or the directory holding it (a home, or /home/.ecryptfs/USER). LOWER is
only read. DEST must not exist (it is created, mode 0700) or be an empty directory.

The key is
  - the wrapped-passphrase file in the .ecryptfs directory next to LOWER, else your own
    ~/.ecryptfs/wrapped-passphrase, unwrapped with the login password (or the wrapping
    passphrase of a setup made with -w);
  -u USER  as root: USER's ~/.ecryptfs/wrapped-passphrase (USER's login password is needed);
  -m, --mount-passphrase  the mount passphrase itself.
It is checked against the key sigs in the headers and encrypted names of LOWER (and Private.sig
when there is one) before anything is written.

As root, a tree a user owns is read and DEST written with that user's rights (DEST must be
somewhere they may write), never root's: they could change the tree under root while it is
walked. A tree root owns is exported as root only when no one else owns or can write it, DEST,
or a directory above either.

Names, contents, modes, times and symlinks are copied (owners too when run as root). Files are
decrypted extent by extent, whatever their size; plaintext (passthrough) files are copied as
they are. A file that cannot be read (another key, truncated, damaged header, a cipher this
system cannot decrypt) is named on stderr and left out; the rest goes on. Ciphers: AES (16, 24,
32-byte keys), des3_ede, and blowfish and cast5 through OpenSSL's legacy provider; twofish and
cast6 are not supported yet.

The passphrase is prompted for on a terminal, otherwise read as one line from stdin.

Exit status:
  0  everything exported
  1  nothing exported (wrong passphrase, not an eCryptfs directory, DEST not empty), or some
     entries left out: the summary says how many
  2  usage error`;

export const exportCommand = defineCommand({
  name: 'export',
  summary: 'copy the plaintext of a .Private out without the kernel module (the way off eCryptfs)',
  help: EXPORT_HELP,
  grammar: strict({ username: { type: 'string', short: 'u' }, 'mount-passphrase': { type: 'boolean', short: 'm' } }, { min: 2, max: 2, missing: 'missing LOWER or DEST' }),
  async run({ positionals, options: v }, io) {
    if (v.username !== undefined && v['mount-passphrase'] === true) throw new UsageError('-u and -m exclude each other');
    const [lowerArg, dest] = positionals as [string, string];
    let secret: Buffer | null = null;
    try {
      hardenProcess();
      const source = locateRecoverySource(lowerArg);
      for (const note of source.notes) io.err(`note: ${note}\n`);
      let kind: RecoveryKeyInput['kind'] = 'wrapped';
      // root has no wrapped passphrase of its own: without -u it falls back to the mount passphrase
      const ownSetup = v.username !== undefined || (source.wrappedPath === undefined && process.getuid?.() !== 0);
      if (v['mount-passphrase'] === true) kind = 'mount-passphrase';
      else if (ownSetup) {
        const t = resolveTarget(v.username);
        const setup = asUser(t.user, () => loadPrivateSetup(t.user));
        if (setup?.hasWrappedPassphrase === true) {
          source.wrappedPath = setup.wrappedPassphrasePath;
          source.salt = setup.salt;
        } else if (v.username !== undefined) {
          throw new AgentError('NOT_FOUND', `${t.user.name} has no ${t.user.home}/.ecryptfs/wrapped-passphrase`, { hint: 'Type the mount passphrase instead: -m' });
        }
      }
      if (kind === 'wrapped' && source.wrappedPath === undefined) {
        kind = 'mount-passphrase';
        io.err(`No wrapped-passphrase file next to ${source.lower}${ownSetup ? ' nor in your ~/.ecryptfs' : ''}: the MOUNT passphrase recorded at setup is needed.\n`);
      }
      const prompt = kind === 'wrapped' ? `Enter the login (wrapping) passphrase for ${source.wrappedPath}` : `Enter the MOUNT passphrase of ${source.lower}`;
      secret = await readSecret(io, prompt, kind === 'wrapped' ? 'login (wrapping) passphrase' : 'mount passphrase');
      // every read of the tree (the key check's too) and every write of DEST with these rights
      const rights = exportRights(source.lower, dest);
      const withRights = <T>(fn: () => T): T => (rights.kind === 'owner' ? asUser(rights.user, fn) : fn());
      if (rights.kind === 'owner') io.err(`As root: exporting with the rights of ${rights.user.name}, the owner of ${source.lower}.\n`);
      const secretNow = secret;
      const { keys, checkedAgainst } = withRights(() => exportKeysFor(source, { kind, secret: secretNow }));
      try {
        io.err(`Key checked against ${checkedAgainst.join('; ')}.\n`);
        enableOpensslLegacyCiphers();
        const s = withRights(() => exportTree(source.lower, dest, keys, (p) => io.err(`ecryptfs-agent export: ${p.lower}: not exported: ${p.error.message}\n  hint: ${p.error.hint}\n`)));
        io.out(
          `Exported ${source.lower} to ${dest}: ${s.files} file${s.files === 1 ? '' : 's'} (${s.bytes} bytes${s.passthrough > 0 ? `, ${s.passthrough} plaintext passthrough` : ''}), ` +
            `${s.dirs} director${s.dirs === 1 ? 'y' : 'ies'}, ${s.symlinks} symlink${s.symlinks === 1 ? '' : 's'}` +
            `${s.hardlinks > 0 ? `, ${s.hardlinks} hard link${s.hardlinks === 1 ? '' : 's'}` : ''}` +
            `${s.problems.length > 0 ? `; ${s.problems.length} NOT exported (listed above)` : '; nothing left out'}.\n`,
        );
        return s.problems.length > 0 ? 1 : 0;
      } finally {
        keys.wipe();
      }
    } catch (e) {
      return fail(io, 'export', e);
    } finally {
      secret?.fill(0);
    }
  },
});

export const exportCommands: readonly Command[] = [exportCommand];
