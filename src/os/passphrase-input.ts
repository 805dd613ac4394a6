/**
 * Reads passphrases the way ecryptfs-utils' ecryptfs_get_passphrase() does:
 * `fgets(buf, 66, stdin)` (so at most 65 bytes per read), the result used as a C string
 * (cut at the first NUL, which is how `printf "%s\0" pw | tool -` works), only the final
 * '\n' removed ('\r' is kept), more than 64 bytes is an error. With a prompt, echo is turned
 * off on a terminal, then "<prompt>: " is shown, and a newline is printed after the input.
 */
import { allocSecret, copySecret } from '../formats/secret-memory';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { AgentError } from '../errors';
import { MAX_PASSPHRASE_BYTES } from '../formats/kdf';

/** fgets(buf, 66, …) stores at most 65 characters. */
const FGETS_MAX_BYTES = MAX_PASSPHRASE_BYTES + 1;
export const TOO_LONG_MESSAGE = 'Passphrase is too long. Use at most 64 characters long passphrase.';

export interface LineSource {
  /** Bytes up to and including the first '\n', at most `max` bytes; null at EOF with nothing read. */
  readLine(max: number): Promise<Buffer | null>;
}

/**
 * Bytes read but not yet handed out, cut into lines by fgets' rules: up to and including the
 * first '\n', at most `max` bytes. Each line is a copy; the bytes it came from are zeroed
 * (they are a secret).
 */
class PendingLines {
  private pending: Buffer = Buffer.alloc(0);
  eof = false;

  append(chunk: Buffer): void {
    const joined = allocSecret(this.pending.length + chunk.length);
    this.pending.copy(joined);
    chunk.copy(joined, this.pending.length);
    this.pending.fill(0);
    this.pending = joined;
  }

  /** The next line; null at EOF with nothing left; undefined when more input is needed. */
  next(max: number): Buffer | null | undefined {
    const nl = this.pending.indexOf(0x0a);
    if (nl !== -1 && nl < max) return this.take(nl + 1);
    if (this.pending.length >= max) return this.take(max);
    if (this.eof) return this.pending.length === 0 ? null : this.take(this.pending.length);
    return undefined;
  }

  private take(n: number): Buffer {
    const line = copySecret(this.pending.subarray(0, n));
    const rest = copySecret(this.pending.subarray(n));
    this.pending.fill(0);
    this.pending = rest;
    return line;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Synchronous reads on a file descriptor (pipes, files); copes with a non-blocking fd (EAGAIN). */
export class FdLineSource implements LineSource {
  private readonly lines = new PendingLines();

  constructor(private readonly fd = 0) {}

  private fill(): void {
    const chunk = allocSecret(4096);
    for (;;) {
      try {
        const n = fs.readSync(this.fd, chunk, 0, chunk.length, null);
        if (n === 0) this.lines.eof = true;
        else this.lines.append(chunk.subarray(0, n));
        chunk.fill(0);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') sleepMs(5);
        else if (code === 'EOF') {
          this.lines.eof = true;
          return;
        } else throw new AgentError('IO', `Cannot read standard input: ${(e as Error).message}`, { ...(code ? { errno: code } : {}), cause: e });
      }
    }
  }

  async readLine(max: number): Promise<Buffer | null> {
    return this.readLineSync(max);
  }

  readLineSync(max: number): Buffer | null {
    for (;;) {
      const line = this.lines.next(max);
      if (line !== undefined) return line;
      this.fill();
    }
  }
}

/** Turns terminal echo off on fd 0 and guarantees it comes back (normal exit, error or signal). */
class EchoGuard {
  private saved: string | undefined;
  private readonly onExit = (): void => this.restore();
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.restore();
    process.kill(process.pid, signal); // handlers removed by restore(): default action now
  };

  disable(): void {
    const r = spawnSync('stty', ['-g'], { stdio: ['inherit', 'pipe', 'ignore'], encoding: 'utf8' });
    if (r.status !== 0) return; // not a terminal we can control: read with echo, like a pipe
    this.saved = r.stdout.trim();
    process.on('exit', this.onExit);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.on(s, this.onSignal);
    spawnSync('stty', ['-echo'], { stdio: ['inherit', 'ignore', 'ignore'] });
  }

  restore(): void {
    if (this.saved === undefined) return;
    spawnSync('stty', [this.saved], { stdio: ['inherit', 'ignore', 'ignore'] });
    this.saved = undefined;
    process.removeListener('exit', this.onExit);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.removeListener(s, this.onSignal);
  }
}

/**
 * Asynchronous line reads from a terminal: while we wait for Enter the event loop runs,
 * so a Ctrl-C reaches EchoGuard's handler and echo is restored.
 */
export class TtyLineSource implements LineSource {
  private readonly lines = new PendingLines();

  async readLine(max: number): Promise<Buffer | null> {
    for (;;) {
      const line = this.lines.next(max);
      if (line !== undefined) return line;
      await this.fill();
    }
  }

  private fill(): Promise<void> {
    return new Promise((resolve) => {
      const stdin = process.stdin;
      const done = (): void => {
        stdin.removeListener('data', onData);
        stdin.removeListener('end', onEnd);
        stdin.pause();
        resolve();
      };
      const onData = (chunk: Buffer): void => {
        this.lines.append(chunk);
        chunk.fill(0);
        done();
      };
      const onEnd = (): void => {
        this.lines.eof = true;
        done();
      };
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.resume();
    });
  }
}

/** fgets line → C-string passphrase; null for EOF. Throws PASSPHRASE_TOO_LONG with the C tools' message. */
export function passphraseFromLine(line: Buffer | null): Buffer | null {
  if (line === null) return null;
  const nul = line.indexOf(0);
  let end = nul === -1 ? line.length : nul;
  if (end > 0 && line[end - 1] === 0x0a) end -= 1;
  const passphrase = copySecret(line.subarray(0, end));
  line.fill(0);
  if (passphrase.length > MAX_PASSPHRASE_BYTES) {
    passphrase.fill(0);
    throw new AgentError('PASSPHRASE_TOO_LONG', TOO_LONG_MESSAGE);
  }
  return passphrase;
}

export interface PassphraseReader {
  /** `prompt` undefined: read silently (the "-" stdin mode). Returns null at EOF. */
  read(prompt?: string): Promise<Buffer | null>;
}

function writePrompt(text: string): void {
  // ecryptfs_get_passphrase printf()s its prompt to stdout; scripts comparing output rely on that.
  try {
    fs.writeSync(1, text);
  } catch {
    /* no stderr: nothing to show */
  }
}

/** What a passphrase reader uses of the process: where lines come from, the terminal, stdout. */
export interface ReaderParts {
  source: LineSource;
  /** stdin is a terminal: echo is off while a prompted passphrase is typed. */
  isTty: boolean;
  /** Turns terminal echo off; returns what turns it back on. */
  echoOff(): () => void;
  /** Prompts and the newline after the input. */
  write(text: string): void;
}

export function createPassphraseReader(parts: ReaderParts): PassphraseReader {
  const { source, write } = parts;
  return {
    async read(prompt?: string): Promise<Buffer | null> {
      if (prompt === undefined) {
        const line = await source.readLine(FGETS_MAX_BYTES);
        // On end of input ecryptfs_get_passphrase prints a newline (scripts see it before the usage text).
        if (line === null) write('\n');
        return passphraseFromLine(line);
      }
      // Echo off before the prompt shows: what is typed as soon as it appears must not echo.
      const echoOn = parts.isTty ? parts.echoOff() : (): void => {};
      try {
        write(`${prompt}: `);
        return passphraseFromLine(await source.readLine(FGETS_MAX_BYTES));
      } finally {
        echoOn();
        write('\n');
      }
    },
  };
}

/** One reader per process: it owns the buffered rest of stdin, so several passphrases can come from one pipe. */
export function createStdinPassphraseReader(): PassphraseReader {
  const isTty = process.stdin.isTTY === true;
  return createPassphraseReader({
    source: isTty ? new TtyLineSource() : new FdLineSource(0),
    isTty,
    echoOff: () => {
      const guard = new EchoGuard();
      guard.disable();
      return () => guard.restore();
    },
    write: writePrompt,
  });
}
