/** Shared shapes for CLI command groups (each group exports a list of Command). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { type PassphraseReader, createStdinPassphraseReader } from '../os/passphrase-input';
import { escapeControls } from '../formats/text';
import type { Grammar, ParsedArgs } from './args';

export interface CliIO {
  /** Writes to stdout / stderr (no newline added). stdout gets the text as given (it may be a
   * passphrase); stderr gets messages, with control characters escaped (src/formats/text.ts). */
  out(text: string | Buffer): void;
  err(text: string): void;
  passphrases: PassphraseReader;
  /** Home directory of the invoking uid (getpwuid(getuid()), like the C tools; not $HOME). */
  home(): string;
}

/**
 * A command: its texts, the grammar of its arguments, and what it does with them. main() parses
 * the arguments by the grammar, once; --help and usage errors are answered there, so run() only
 * sees a command line its grammar accepts (it may still throw a UsageError, before it acts, for
 * rules between options that the grammar cannot say).
 */
export interface Command<G extends Grammar = Grammar> {
  name: string;
  summary: string;
  /** Full `--help` text, exit codes included. */
  help: string;
  grammar: G;
  run(args: ParsedArgs<G>, io: CliIO): Promise<number>;
}

/** A command whose run() gets the option types its grammar declares. */
export function defineCommand<G extends Grammar>(command: Command<G>): Command<G> {
  return command;
}

function writeAll(fd: number, data: string | Buffer): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw e;
    }
  }
}

/** The invoking user, whose home io.home() is: the owner ~/.ecryptfsrc must have (or root). */
export function invokingUser(): { uid: number; gid: number; name: string } {
  const u = os.userInfo();
  return { uid: u.uid, gid: u.gid, name: u.username };
}

export function processIO(): CliIO {
  let reader: PassphraseReader | undefined;
  return {
    out: (t) => writeAll(1, t),
    // messages only (never secrets): nothing from a user's files may drive root's terminal
    err: (t) => writeAll(2, escapeControls(t, { keepNewlines: true })),
    get passphrases(): PassphraseReader {
      reader ??= createStdinPassphraseReader();
      return reader;
    },
    home: () => os.userInfo().homedir,
  };
}
