/**
 * The wrapped-passphrase and key commands, with the same argv/stdin conventions, output
 * lines and exit codes as the ecryptfs-utils 111 tools they replace (including their
 * quirks: most usage errors exit 0, some exit 1). After the compatible error lines we
 * print one "hint:" line. Passphrases never appear in messages.
 */
import * as os from 'node:os';
import { join } from 'node:path';
import { AgentError, isAgentError } from '../errors';
import { deriveMountKeys } from '../formats/auth-tok';
import { MAX_PASSPHRASE_BYTES } from '../formats/kdf';
import { insertAuthTok } from '../os/keyring';
import { readEcryptfsrcSalt } from '../actions/private-setup';
import { readEcryptfsVersion } from '../actions/setup';
import { fileExists, readSmallFile, writeFileAtomic } from '../os/secure-file';
import { unwrapPassphrase, wrapPassphrase } from '../formats/wrapped-passphrase';
import { leading } from './args';
import { type CliIO, type Command, defineCommand, invokingUser } from './command';

// ecryptfs-utils' user-visible messages (src/include/ecryptfs.h).
export const MSG = {
  unwrap: 'Error: Unwrapping passphrase failed',
  wrap: 'Error: Wrapping passphrase failed',
  insert: 'Error: Inserting key into the user session keyring failed',
  unwrapAndInsert: 'Error: Unwrapping passphrase and inserting into the user session keyring failed',
  fnekSupport: 'Error: Your kernel does not support filename encryption',
  checkLog: 'Info: Check the system log for more information from libecryptfs',
} as const;

const MAX_WRAPPED_FILE_BYTES = 4096;
const FNEK_VERSION_BIT = 0x100; // ECRYPTFS_VERSIONING_FILENAME_ENCRYPTION
const SYSFS_ECRYPTFS_VERSION = '/sys/fs/ecryptfs/version';

const EXIT_CODES = `Exit status (same as ecryptfs-utils):
  0  success; also for most usage errors (wrong number of arguments, end of input),
     exactly like the ecryptfs-utils tool
  1  failure (wrong passphrase, damaged file, keyring error, ...) and the usage
     errors the ecryptfs-utils tool also reports with 1`;

/** The C tools print the negative errno of the failed step. */
function rcOf(e: unknown): number {
  const name = isAgentError(e) ? e.errno : undefined;
  const n = name === undefined ? undefined : (os.constants.errno as Record<string, number>)[name];
  return -(n ?? os.constants.errno.EIO);
}

function hintLine(e: unknown): string {
  return isAgentError(e) ? `hint: ${e.hint}\n` : `hint: ${e instanceof Error ? e.message : String(e)}\n`;
}

function reportFailure(io: CliIO, message: string, rc: number, e: unknown): number {
  io.err(`${message} [${rc}]\n${MSG.checkLog}\n${hintLine(e)}`);
  return 1;
}

/** Reads a passphrase; prints the C tools' "too long" message. Returns null on EOF or too long. */
async function readPassphrase(io: CliIO, prompt: string | undefined): Promise<Buffer | null> {
  try {
    return await io.passphrases.read(prompt);
  } catch (e) {
    if (isAgentError(e, 'PASSPHRASE_TOO_LONG')) {
      io.err(`${e.message}\n`);
      return null;
    }
    throw e;
  }
}

/** An argv passphrase: the C tools refuse more than 64 bytes with their usage text. */
function argvPassphrase(arg: string): Buffer | null {
  const buf = Buffer.from(arg, 'utf8');
  return buf.length > MAX_PASSPHRASE_BYTES ? null : buf;
}

function defaultWrappedFile(io: CliIO): string {
  return join(io.home(), '.ecryptfs', 'wrapped-passphrase');
}

/** ~/.ecryptfsrc `salt=` of the invoking user, else the default salt (ecryptfs_read_salt_hex_from_rc). */
function saltFromRc(home: string): Buffer {
  return readEcryptfsrcSalt(home, invokingUser());
}

function readWrappedFile(path: string): Buffer {
  return readSmallFile(path, { maxBytes: MAX_WRAPPED_FILE_BYTES, tooLargeCode: 'CORRUPT_FILE' });
}

function wipe(...bufs: (Buffer | null | undefined)[]): void {
  for (const b of bufs) b?.fill(0);
}

/** Without a FILE argument the C tools stat() the default file, and show the usage (exit 0) if it is missing. */
function existingDefaultFile(io: CliIO): string | null {
  const file = defaultWrappedFile(io);
  if (fileExists(file)) return file;
  io.err('stat: No such file or directory\n');
  return null;
}

/**
 * The `[FILE [-|PW]]` arguments of unwrap-passphrase and insert-wrapped-passphrase: the file
 * (default ~/.ecryptfs/wrapped-passphrase) and the wrapping passphrase (prompted, one stdin line,
 * or argv). Null when the arguments do not fit: the caller shows its usage. ecryptfs-unwrap-
 * passphrase also shows its usage for a 1-character PW (`oneCharPwIsUsage`).
 */
async function fileAndWrapping(
  pos: string[],
  io: CliIO,
  oneCharPwIsUsage: boolean,
): Promise<{ file: string; wrapping: Buffer | null } | null> {
  if (pos.length === 0 || pos.length === 1) {
    const file = pos.length === 0 ? existingDefaultFile(io) : (pos[0] as string);
    if (file === null) return null;
    return { file, wrapping: await readPassphrase(io, 'Passphrase') };
  }
  if (pos.length !== 2) return null;
  const [file, pw] = pos as [string, string];
  if (pw === '-') return { file, wrapping: await readPassphrase(io, undefined) };
  if (oneCharPwIsUsage && pw.length === 1) return null;
  return { file, wrapping: argvPassphrase(pw) };
}

// ------------------------------------------------------------------ wrap-passphrase

const wrapUsage = (io: CliIO, code: number): number => {
  io.out(
    'Usage:\n\necryptfs-agent wrap-passphrase [file]\nor\n' +
      'printf "%s\\n%s" "passphrase to wrap" "wrapping passphrase" | ecryptfs-agent wrap-passphrase [file] -\n\n' +
      'note: passphrase can be at most 64 bytes long\n',
  );
  return code;
};

export const wrapPassphraseCommand = defineCommand({
  name: 'wrap-passphrase',
  summary: 'wrap a mount passphrase into a v2 wrapped-passphrase file (ecryptfs-wrap-passphrase)',
  help: `Usage: ecryptfs-agent wrap-passphrase FILE [- | PASSPHRASE WRAPPING_PASSPHRASE]

Encrypts PASSPHRASE with WRAPPING_PASSPHRASE and writes FILE atomically (mode 0600,
format v2 with a random salt), like ecryptfs-wrap-passphrase.
  FILE        prompt for "Passphrase to wrap" and "Wrapping passphrase"
  FILE -      read both from stdin, one per line
  FILE P W    take both from the arguments (visible to other users in ps!)
Passphrases are 1..64 bytes.

${EXIT_CODES}`,
  grammar: leading(),
  async run({ positionals: pos }, io) {
    let passphrase: Buffer | null = null;
    let wrapping: Buffer | null = null;
    try {
      if (pos.length === 1) {
        passphrase = await readPassphrase(io, 'Passphrase to wrap');
        wrapping = passphrase && (await readPassphrase(io, 'Wrapping passphrase'));
      } else if (pos.length === 2 && pos[1] === '-') {
        passphrase = await readPassphrase(io, undefined);
        wrapping = passphrase && (await readPassphrase(io, undefined));
      } else if (pos.length === 3) {
        passphrase = argvPassphrase(pos[1] as string);
        wrapping = argvPassphrase(pos[2] as string);
      } else {
        return wrapUsage(io, 0);
      }
      if (passphrase === null || wrapping === null) return wrapUsage(io, 1);
      const file = pos[0] as string;
      try {
        writeFileAtomic(file, wrapPassphrase(passphrase, wrapping), { mode: 0o600 });
      } catch (e) {
        return reportFailure(io, MSG.wrap, rcOf(e), e);
      }
      return 0;
    } finally {
      wipe(passphrase, wrapping);
    }
  },
});

// ------------------------------------------------------------------ unwrap-passphrase

const unwrapUsage = (io: CliIO, code: number): number => {
  io.out(
    'Usage:\n\necryptfs-agent unwrap-passphrase [file]\nor\n' +
      'printf "%s" "wrapping passphrase" | ecryptfs-agent unwrap-passphrase [file] -\n\n',
  );
  return code;
};

export const unwrapPassphraseCommand = defineCommand({
  name: 'unwrap-passphrase',
  summary: 'print the mount passphrase stored in a wrapped-passphrase file (ecryptfs-unwrap-passphrase)',
  help: `Usage: ecryptfs-agent unwrap-passphrase [FILE [- | WRAPPING_PASSPHRASE]]

Decrypts FILE (default ~/.ecryptfs/wrapped-passphrase of the invoking user) and prints
the mount passphrase on stdout, like ecryptfs-unwrap-passphrase. v1 files use the
salt= of ~/.ecryptfsrc or the default salt.
  [FILE]      prompt for "Passphrase"
  FILE -      read the wrapping passphrase from stdin (one line; a trailing NUL ends it)
  FILE PW     take it from the arguments (a 1-character PW shows the usage, as in ecryptfs-utils)
Failure prints "${MSG.unwrap} [-errno]" (-5 wrong passphrase, -2 missing file,
-22 damaged file, -95 unsupported version).

${EXIT_CODES}`,
  grammar: leading(),
  async run({ positionals: pos }, io) {
    const usage = (): number => unwrapUsage(io, 0);
    let wrapping: Buffer | null = null;
    try {
      const args = await fileAndWrapping(pos, io, true);
      if (args === null) return usage();
      const file = args.file;
      wrapping = args.wrapping;
      if (wrapping === null) return usage();
      let passphrase: Buffer;
      try {
        passphrase = unwrapPassphrase(readWrappedFile(file), wrapping, saltFromRc(io.home()));
      } catch (e) {
        return reportFailure(io, MSG.unwrap, rcOf(e), e);
      }
      io.out(Buffer.concat([passphrase, Buffer.from('\n')]));
      wipe(passphrase);
      return 0;
    } finally {
      wipe(wrapping);
    }
  },
});

// ------------------------------------------------------------------ rewrap-passphrase

const rewrapUsage = (io: CliIO, code: number): number => {
  io.out(
    'Usage:\n\necryptfs-agent rewrap-passphrase [file]\nor\n' +
      'printf "%s\\n%s" "old wrapping passphrase" "new wrapping passphrase" | ecryptfs-agent rewrap-passphrase [file] -\n\n',
  );
  return code;
};

export const rewrapPassphraseCommand = defineCommand({
  name: 'rewrap-passphrase',
  summary: 'change the wrapping passphrase of a wrapped-passphrase file (ecryptfs-rewrap-passphrase)',
  help: `Usage: ecryptfs-agent rewrap-passphrase FILE [- | OLD NEW]

Unwraps FILE with the OLD wrapping passphrase and atomically replaces it with the
passphrase wrapped with NEW (always format v2 with a fresh random salt, so v1 files
are upgraded), like ecryptfs-rewrap-passphrase.
  FILE        prompt for the old one and twice for the new one
  FILE -      read OLD and NEW from stdin, one per line
  FILE O N    take them from the arguments

${EXIT_CODES}`,
  grammar: leading(),
  async run({ positionals: pos }, io) {
    const usage = (): number => rewrapUsage(io, 0);
    let oldPw: Buffer | null = null;
    let newPw: Buffer | null = null;
    let again: Buffer | null = null;
    try {
      if (pos.length === 1) {
        // Like ecryptfs-rewrap-passphrase: all three prompts are shown, then checked in this order.
        oldPw = await readPassphrase(io, 'Old wrapping passphrase');
        newPw = await readPassphrase(io, 'New wrapping passphrase');
        again = await readPassphrase(io, 'New wrapping passphrase (again)');
        if (newPw === null) {
          io.err('Failed to read new wrapping passphrase\n');
          return 1;
        }
        if (again === null) {
          io.err('Failed to read new wrapping passphrase confirmation\n');
          return 1;
        }
        if (!newPw.equals(again)) {
          io.err('New wrapping passphrases do not match\n');
          return 1;
        }
      } else if (pos.length === 2 && pos[1] === '-') {
        oldPw = await readPassphrase(io, undefined);
        newPw = oldPw && (await readPassphrase(io, undefined));
      } else if (pos.length === 3) {
        oldPw = argvPassphrase(pos[1] as string);
        newPw = argvPassphrase(pos[2] as string);
      } else {
        return usage();
      }
      if (oldPw === null || newPw === null) return usage();
      const file = pos[0] as string;
      let passphrase: Buffer;
      try {
        passphrase = unwrapPassphrase(readWrappedFile(file), oldPw, saltFromRc(io.home()));
      } catch (e) {
        return reportFailure(io, MSG.unwrap, rcOf(e), e);
      }
      try {
        writeFileAtomic(file, wrapPassphrase(passphrase, newPw), { mode: 0o600 });
      } catch (e) {
        return reportFailure(io, MSG.wrap, rcOf(e), e);
      } finally {
        wipe(passphrase);
      }
      return 0;
    } finally {
      wipe(oldPw, newPw, again);
    }
  },
});

// ------------------------------------------------------------------ insert-wrapped-passphrase

const insertUsage = (io: CliIO, code: number): number => {
  io.out(
    'Usage:\n\necryptfs-agent insert-wrapped-passphrase [file]\nor\n' +
      'printf "%s" "wrapping passphrase" | ecryptfs-agent insert-wrapped-passphrase [file] -\n\n',
  );
  return code;
};

function insertedLine(sig: string): string {
  return `Inserted auth tok with sig [${sig}] into the user session keyring\n`;
}

export const insertWrappedPassphraseCommand = defineCommand({
  name: 'insert-wrapped-passphrase',
  summary: 'unwrap the mount passphrase and add its keys to the user keyring (ecryptfs-insert-wrapped-passphrase-into-keyring)',
  help: `Usage: ecryptfs-agent insert-wrapped-passphrase [FILE [- | WRAPPING_PASSPHRASE]]

Unwraps FILE (default ~/.ecryptfs/wrapped-passphrase) and adds two "user" keys to the
user keyring (@u): the filename key (FNEK) and then the file key, like
ecryptfs-insert-wrapped-passphrase-into-keyring; prints the file key's sig.
A key that is already present is left as it is.
  [FILE]      prompt for "Passphrase"
  FILE -      read the wrapping passphrase from stdin (one line)
  FILE PW     take it from the arguments

${EXIT_CODES}`,
  grammar: leading(),
  async run({ positionals: pos }, io) {
    const usage = (): number => insertUsage(io, 0);
    let wrapping: Buffer | null = null;
    try {
      const args = await fileAndWrapping(pos, io, false);
      if (args === null) return usage();
      const file = args.file;
      wrapping = args.wrapping;
      if (wrapping === null) return usage();
      let passphrase: Buffer;
      let salt: Buffer;
      try {
        salt = saltFromRc(io.home());
        passphrase = unwrapPassphrase(readWrappedFile(file), wrapping, salt);
      } catch (e) {
        // ecryptfs-utils reports every unwrap failure of this tool as -EIO.
        return reportFailure(io, MSG.unwrapAndInsert, -os.constants.errno.EIO, e);
      }
      try {
        const keys = deriveMountKeys(passphrase, salt, true);
        if (keys.fnek === undefined) throw new AgentError('KEYRING', 'no filename key derived');
        insertAuthTok(keys.fnek.sig, keys.fnek.payload); // FNEK first, as ecryptfs-utils does
        insertAuthTok(keys.fek.sig, keys.fek.payload);
        wipe(keys.fnek.payload, keys.fek.payload);
        io.out(insertedLine(keys.fek.sig));
        return 0;
      } catch (e) {
        return reportFailure(io, MSG.unwrapAndInsert, rcOf(e), e);
      } finally {
        wipe(passphrase);
      }
    } finally {
      wipe(wrapping);
    }
  },
});

// ------------------------------------------------------------------ add-passphrase

const addUsage = (io: CliIO, code: number): number => {
  io.out('Usage:\necryptfs-agent add-passphrase [--fnek]\nor\nprintf "%s" "passphrase" | ecryptfs-agent add-passphrase [--fnek] -\n\n');
  return code;
};

/**
 * /sys/fs/ecryptfs/version has bit 0x100 when the kernel can encrypt file names. (Read to EOF:
 * a sysfs file says it has 4096 bytes whatever it holds, so a size limit refuses it.) No module
 * loaded / no sysfs: false, like ecryptfs_get_version failing.
 */
export function kernelSupportsFnek(versionFile = SYSFS_ECRYPTFS_VERSION): boolean {
  const version = readEcryptfsVersion(versionFile);
  return version !== null && (version & FNEK_VERSION_BIT) !== 0;
}

export const addPassphraseCommand = defineCommand({
  name: 'add-passphrase',
  summary: 'add the keys of a mount passphrase to the user keyring (ecryptfs-add-passphrase)',
  help: `Usage: ecryptfs-agent add-passphrase [--fnek] [-]

Derives the eCryptfs file key from a mount passphrase (salt= of ~/.ecryptfsrc or the
default salt) and adds it as a "user" key to the user keyring (@u), like
ecryptfs-add-passphrase; prints one line per key. With --fnek also the filename key
(checked first: the kernel must support filename encryption).
  (no -)      prompt for "Passphrase"
  -           read the passphrase from stdin (one line)

${EXIT_CODES}`,
  grammar: leading(['fnek']),
  async run({ positionals: pos, options }, io) {
    const fnek = options.fnek === true;
    if (pos.length > 1 || (pos.length === 1 && pos[0] !== '-')) return addUsage(io, 0);
    let passphrase: Buffer | null = null;
    try {
      passphrase = await readPassphrase(io, pos.length === 1 ? undefined : 'Passphrase');
      if (passphrase === null) return addUsage(io, 1);
      if (fnek && !kernelSupportsFnek()) {
        io.err(`${MSG.fnekSupport}\n${hintLine(new AgentError('NO_ECRYPTFS', 'no filename encryption'))}`);
        return 1;
      }
      try {
        const keys = deriveMountKeys(passphrase, saltFromRc(io.home()), fnek);
        for (const key of keys.fnek === undefined ? [keys.fek] : [keys.fek, keys.fnek]) {
          insertAuthTok(key.sig, key.payload);
          key.payload.fill(0);
          io.out(insertedLine(key.sig));
        }
        return 0;
      } catch (e) {
        return reportFailure(io, MSG.insert, rcOf(e), e);
      }
    } finally {
      wipe(passphrase);
    }
  },
});

export const passphraseCommands: readonly Command[] = [
  wrapPassphraseCommand,
  unwrapPassphraseCommand,
  rewrapPassphraseCommand,
  insertWrappedPassphraseCommand,
  addPassphraseCommand,
];
