/**
 * Wrong passphrases given to the resident agent's user socket, counted per user: a user (or
 * anything running as them) cannot use the root service to guess their wrapping passphrase
 * faster than by hand. Pure policy plus one small root-only file per uid in the state directory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../os/secure-file';

/** At most this many wrong passphrases in WINDOW_MS; then refused until the oldest leaves it. */
export const MAX_FAILURES = 5;
export const WINDOW_MS = 10 * 60_000;

/** Pure: how long the user must still wait (0: may try now), given the failure times. */
export function waitBeforeNextTry(failures: readonly number[], now: number): number {
  const recent = failures.filter((t) => now - t < WINDOW_MS).sort((a, b) => a - b);
  if (recent.length < MAX_FAILURES) return 0;
  return (recent[recent.length - MAX_FAILURES] as number) + WINDOW_MS - now;
}

/** Pure: the failure times from the file's text (damaged → none). */
export function parseFailures(text: string): number[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((t): t is number => typeof t === 'number' && Number.isFinite(t)) : [];
  } catch {
    return [];
  }
}

export class UnlockAttempts {
  constructor(private readonly dir: string) {}

  private file(uid: number): string {
    return join(this.dir, `${uid}.unlock-failures`);
  }

  failures(uid: number): number[] {
    try {
      return parseFailures(readFileSync(this.file(uid), 'utf8'));
    } catch {
      return [];
    }
  }

  /** Call under the user's lock. */
  recordFailure(uid: number, now: number): void {
    const kept = this.failures(uid).filter((t) => now - t < WINDOW_MS);
    writeFileAtomic(this.file(uid), Buffer.from(JSON.stringify([...kept, now]) + '\n'), { mode: 0o600 });
  }

  /** Call under the user's lock, after a passphrase that worked. */
  clear(uid: number): void {
    if (this.failures(uid).length > 0) writeFileAtomic(this.file(uid), Buffer.from('[]\n'), { mode: 0o600 });
  }
}
