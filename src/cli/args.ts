/**
 * Strict option parsing for the commands that take no passphrase arguments (setup-private,
 * unlock, lock, mount, umount, recovery, recover, migrate-home, status, doctor), and their
 * usage errors: the reason, a blank line, the command's help, exit status 2.
 * (The ecryptfs-utils compatible commands keep their arguments verbatim: main.ts parseCommandArgs.)
 */
import { parseArgs } from 'node:util';
import type { CliIO } from './command';

export type OptSpec = Record<string, { type: 'boolean' | 'string'; short?: string }>;

export interface ParsedOptions {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** How many positional arguments a command takes, and what it says when the count is wrong. */
export interface Arity {
  /** Fewest accepted (default 0). */
  min?: number;
  max: number;
  /** Said when fewer than min are given. */
  missing?: string;
  /** Said when more than max are given (default: "unexpected argument: " and the first one too many). */
  tooMany?: string;
}

export const NO_POSITIONALS: Arity = { max: 0 };

/** Options anywhere, unknown ones refused; the error is returned as text. */
export function parseCommandOptions(args: string[], spec: OptSpec): ParsedOptions | string {
  try {
    const { values, positionals } = parseArgs({ args, options: spec, strict: true, allowPositionals: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    return (e as Error).message;
  }
}

/** What is wrong with the number of positionals, or null. */
export function arityProblem(positionals: readonly string[], arity: Arity): string | null {
  if (positionals.length < (arity.min ?? 0)) return arity.missing ?? 'missing argument';
  if (positionals.length > arity.max) return arity.tooMany ?? `unexpected argument: ${positionals[arity.max]}`;
  return null;
}

export function usage(io: CliIO, help: string, why: string): number {
  io.err(`${why}\n\n${help}\n`);
  return 2;
}

/**
 * parseCommandOptions and, when given, the positional count. A usage error is written (with
 * help) and its exit status returned: the caller returns a number as it is.
 */
export function parseCommandLine(io: CliIO, help: string, args: string[], spec: OptSpec, arity?: Arity): ParsedOptions | number {
  const p = parseCommandOptions(args, spec);
  if (typeof p === 'string') return usage(io, help, p);
  const why = arity === undefined ? null : arityProblem(p.positionals, arity);
  return why === null ? p : usage(io, help, why);
}
