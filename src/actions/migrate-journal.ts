/**
 * The state of a `migrate-home` run, kept so that a run killed at any point can be resumed and
 * never loses a file. Two root-only files per user in a root-owned directory that the user cannot
 * touch (/var/lib/ecryptfs-agent/migrate, mode 700):
 *
 *   USER.json  the journal: where the plaintext original goes, the options, the last phase
 *              that completed and, while a run holds the account locked, the account's expiry
 *              date from before (previousExpiry, restored when the run ends, or by the next run
 *              after a kill); written before anything changes, then replaced atomically (temp +
 *              fsync + rename) as each phase completes. Every step is idempotent or recognises its
 *              own half-done state, so a run killed between a step and its journal update redoes
 *              or skips it on resume;
 *   USER.done  an append-only log, one JSON line per entry copied into the encrypted home, with
 *              the SHA-256 of the source bytes and the source's size/mtime/ctime/inode at copy
 *              time. A line is appended only after the entry is complete; a torn last line (power
 *              loss) is ignored. On resume an entry is skipped only if its line still matches the
 *              source, and the final verification compares every file with these hashes anyway.
 *
 * No secret is ever written here (the mount passphrase exists only wrapped, in wrapped-passphrase).
 * File names are raw bytes: they are stored as latin1 strings, which map bytes 1:1 (lossless for
 * names that are not UTF-8).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors';
import { ensureRootDir, writeFileAtomic } from '../os/secure-file';

export const MIGRATE_STATE_DIR = '/var/lib/ecryptfs-agent/migrate';

/** Completed phases, in order. */
export const MIGRATE_PHASES = ['started', 'moved', 'set-up', 'copied', 'verified'] as const;
export type MigratePhase = (typeof MIGRATE_PHASES)[number];

export interface MigrateJournal {
  version: 1;
  user: string;
  uid: number;
  gid: number;
  home: string;
  /** where the plaintext home is (or is about to be) renamed: HOME.XXXXXXXX */
  original: string;
  /** /home/.ecryptfs/USER */
  userDir: string;
  fnek: boolean;
  wrappingIndependent: boolean;
  phase: MigratePhase;
  /** ISO time of the first run */
  started: string;
  /**
   * Present while a run has the account locked (shadow's expiry set to day 1): the expiry field
   * as it was before, '' (never) or days since 1970-01-01, for the restore. Optional: journals
   * written before the lock existed have none (nothing to restore).
   */
  previousExpiry?: string;
}

function bad(file: string, why: string): AgentError {
  return new AgentError('BAD_CONFIG', `${file}: ${why}`, { hint: `The migration state is damaged. The plaintext original is untouched; see docs/migrate-home.md ("Starting over") before removing ${file}` });
}

const ABS_PATH = /^\/[^\0]*$/;

/** Pure: validates every field (the file is root's, but a damaged one must not steer a root process). */
export function parseJournal(text: string, file = 'journal'): MigrateJournal {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad(file, 'not valid JSON');
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw bad(file, 'not a JSON object');
  if (j.version !== 1) throw bad(file, `unsupported version ${String(j.version)}`);
  const str = (k: string, re: RegExp): string => {
    const v = j[k];
    if (typeof v !== 'string' || !re.test(v)) throw bad(file, `bad ${k}`);
    return v;
  };
  const int = (k: string): number => {
    const v = j[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(file, `bad ${k}`);
    return v;
  };
  const bool = (k: string): boolean => {
    const v = j[k];
    if (typeof v !== 'boolean') throw bad(file, `bad ${k}`);
    return v;
  };
  const phase = j.phase;
  if (typeof phase !== 'string' || !(MIGRATE_PHASES as readonly string[]).includes(phase)) throw bad(file, `bad phase ${String(phase)}`);
  const out: MigrateJournal = {
    version: 1,
    user: str('user', /^[A-Za-z0-9_.@][A-Za-z0-9_.@-]*\$?$/),
    uid: int('uid'),
    gid: int('gid'),
    home: str('home', ABS_PATH),
    original: str('original', ABS_PATH),
    userDir: str('userDir', ABS_PATH),
    fnek: bool('fnek'),
    wrappingIndependent: bool('wrappingIndependent'),
    phase: phase as MigratePhase,
    started: str('started', /^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
  };
  if (j.previousExpiry !== undefined) out.previousExpiry = str('previousExpiry', /^(\d{1,7})?$/);
  if (!out.original.startsWith(`${out.home}.`)) throw bad(file, 'original is not next to the home');
  return out;
}

export function renderJournal(j: MigrateJournal): Buffer {
  return Buffer.from(`${JSON.stringify(j, null, 2)}\n`, 'utf8');
}

export function phaseAtLeast(j: Pick<MigrateJournal, 'phase'>, phase: MigratePhase): boolean {
  return MIGRATE_PHASES.indexOf(j.phase) >= MIGRATE_PHASES.indexOf(phase);
}

// ------------------------------------------------------------------ the done log

export type DoneKind = 'file' | 'link' | 'symlink';

export interface DoneRecord {
  /** path relative to the home, raw bytes */
  rel: Buffer;
  kind: DoneKind;
  /** file: SHA-256 (hex) of the source bytes copied */
  sha256?: string;
  /** the source when it was copied: a change since means copy again */
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export function formatDoneRecord(r: DoneRecord): string {
  return `${JSON.stringify([r.rel.toString('latin1'), r.kind, r.sha256 ?? '', r.size, String(r.mtimeNs), String(r.ctimeNs), String(r.ino)])}\n`;
}

const DIGITS = /^-?\d+$/;

/** Pure: the records of a done log, last one winning; lines that are torn or malformed are skipped. */
export function parseDoneLog(buf: Buffer): Map<string, DoneRecord> {
  const out = new Map<string, DoneRecord>();
  const text = buf.toString('utf8');
  const end = text.lastIndexOf('\n');
  if (end < 0) return out;
  for (const line of text.slice(0, end).split('\n')) {
    let a: unknown;
    try {
      a = JSON.parse(line);
    } catch {
      continue;
    }
    if (!Array.isArray(a) || a.length !== 7) continue;
    const [rel, kind, sha, size, mtime, ctime, ino] = a as unknown[];
    if (typeof rel !== 'string' || rel.length === 0 || /[^\x00-\xff]/.test(rel)) continue;
    if (kind !== 'file' && kind !== 'link' && kind !== 'symlink') continue;
    if (typeof sha !== 'string' || (kind === 'file' ? !/^[0-9a-f]{64}$/.test(sha) : sha !== '')) continue;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) continue;
    if (![mtime, ctime, ino].every((v) => typeof v === 'string' && DIGITS.test(v))) continue;
    const r: DoneRecord = { rel: Buffer.from(rel, 'latin1'), kind, size, mtimeNs: BigInt(mtime as string), ctimeNs: BigInt(ctime as string), ino: BigInt(ino as string) };
    if (kind === 'file') r.sha256 = sha;
    out.set(rel, r);
  }
  return out;
}

/** Appends records; the data reaches the file at each append (a killed process loses nothing written), fsync'ed now and then. */
export class DoneLog {
  private fd: number;
  private lastSync = Date.now();

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  }

  append(r: DoneRecord): void {
    const line = Buffer.from(formatDoneRecord(r), 'utf8');
    let off = 0;
    while (off < line.length) off += fs.writeSync(this.fd, line, off, line.length - off);
    if (Date.now() - this.lastSync > 2000) this.sync();
  }

  sync(): void {
    fs.fsyncSync(this.fd);
    this.lastSync = Date.now();
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      this.sync();
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

// ------------------------------------------------------------------ the state directory

export class MigrateState {
  constructor(
    readonly user: string,
    readonly dir: string = MIGRATE_STATE_DIR,
  ) {}

  get journalPath(): string {
    return join(this.dir, `${this.user}.json`);
  }

  get donePath(): string {
    return join(this.dir, `${this.user}.done`);
  }

  get lockPath(): string {
    return join(this.dir, `${this.user}.lock`);
  }

  /** Creates the directory (root, 700) and checks that nobody else can write there. */
  ensureDir(): void {
    ensureRootDir(this.dir, 0o700);
  }

  /** The journal of an interrupted migration, or null. */
  readJournal(): MigrateJournal | null {
    let text: string;
    try {
      const st = fs.lstatSync(this.journalPath);
      if (!st.isFile() || st.uid !== 0) throw bad(this.journalPath, 'not a regular file owned by root');
      text = fs.readFileSync(this.journalPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return parseJournal(text, this.journalPath);
  }

  writeJournal(j: MigrateJournal): void {
    this.ensureDir();
    writeFileAtomic(this.journalPath, renderJournal(j), { mode: 0o600 });
  }

  readDone(): Map<string, DoneRecord> {
    try {
      return parseDoneLog(fs.readFileSync(this.donePath));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw e;
    }
  }

  openDoneLog(): DoneLog {
    this.ensureDir();
    return new DoneLog(this.donePath);
  }

  /** The migration is finished: nothing left to resume. */
  clear(): void {
    fs.rmSync(this.donePath, { force: true });
    fs.rmSync(this.journalPath, { force: true });
  }
}
