/**
 * The argument grammar each command declares, as data, and the one parser main() runs over it:
 *  - strict: options anywhere, unknown ones refused (node:util parseArgs), for the commands that
 *    take no passphrase arguments (setup-private, unlock, lock, mount, umount, recovery, recover,
 *    migrate-home, status, doctor);
 *  - leading: the command's boolean options first, then every argument verbatim, for the
 *    ecryptfs-utils compatible commands (and keys, forget): a passphrase argument may start
 *    with '-', as in the C tools.
 * Both take --help/-h. A command line the grammar refuses is a UsageError, which main() shows
 * with the command's help (exit 2).
 */
import { parseArgs } from 'node:util';

export type OptSpec = Readonly<Record<string, { readonly type: 'boolean' | 'string'; readonly short?: string }>>;

type ValueOf<T extends 'boolean' | 'string'> = T extends 'boolean' ? boolean : string;

/** What a strict parse gives for each declared option: true or the string given; absent when not given. */
export type OptionValues<S extends OptSpec> = { -readonly [K in keyof S]?: ValueOf<S[K]['type']> };

/** How many positional arguments a command takes, and what it says when the count is wrong. */
export interface Arity {
  /** Fewest accepted (default 0). */
  min?: number;
  max: number;
  /** Said when fewer than min are given. */
  missing?: string;
  /** Said when more than max are given (default: "unexpected argument: " and the first one too
   * many); null: the help alone is shown. */
  tooMany?: string | null;
}

export const NO_POSITIONALS: Arity = { max: 0 };

export interface StrictGrammar<S extends OptSpec = OptSpec> {
  readonly mode: 'strict';
  readonly options: S;
  /** Without it any number of positionals is passed on. */
  readonly arity?: Arity;
}

export interface LeadingGrammar<B extends string = string> {
  readonly mode: 'leading';
  /** Recognised only before the first positional, and only exactly as `--NAME`. */
  readonly booleanOptions: readonly B[];
  readonly arity?: Arity;
}

export type Grammar = StrictGrammar | LeadingGrammar;

export function strict<const S extends OptSpec>(options: S, arity?: Arity): StrictGrammar<S> {
  return arity === undefined ? { mode: 'strict', options } : { mode: 'strict', options, arity };
}

export function leading<const B extends string = never>(booleanOptions: readonly B[] = [], arity?: Arity): LeadingGrammar<B> {
  return arity === undefined ? { mode: 'leading', booleanOptions } : { mode: 'leading', booleanOptions, arity };
}

export type OptionsOf<G extends Grammar> =
  G extends StrictGrammar<infer S> ? OptionValues<S> : G extends LeadingGrammar<infer B> ? { [K in B]?: boolean } : never;

/** What a command's run() gets: its options typed by its grammar, the positionals in order. */
export interface ParsedArgs<G extends Grammar = Grammar> {
  positionals: string[];
  options: OptionsOf<G>;
}

export type CommandLine<G extends Grammar> = { kind: 'help' } | { kind: 'run'; args: ParsedArgs<G> };

/**
 * The command line does not fit the command's grammar, or breaks a rule between its options (a
 * command throws it before it does anything). main() shows the reason, a blank line and the
 * command's help, and exits 2; a null reason shows the help alone.
 */
export class UsageError extends Error {
  constructor(readonly reason: string | null) {
    super(reason ?? 'usage error');
    this.name = 'UsageError';
  }
}

/** Parses a command's arguments by its grammar: --help, or what run() gets; else a UsageError. */
export function parseCommandLine<G extends Grammar>(args: readonly string[], grammar: G): CommandLine<G> {
  const g: Grammar = grammar;
  const parsed = g.mode === 'strict' ? parseStrict(args, g.options) : parseLeading(args, g.booleanOptions);
  if (parsed === 'help') return { kind: 'help' };
  if (g.arity !== undefined) checkArity(parsed.positionals, g.arity);
  // the parsers return exactly the options the grammar declares, which is what OptionsOf<G> says
  return { kind: 'run', args: parsed as ParsedArgs<G> };
}

/** Throws the UsageError that the number of positionals deserves, if any. */
export function checkArity(positionals: readonly string[], arity: Arity): void {
  if (positionals.length < (arity.min ?? 0)) throw new UsageError(arity.missing ?? 'missing argument');
  if (positionals.length > arity.max) {
    throw new UsageError(arity.tooMany === undefined ? `unexpected argument: ${positionals[arity.max]}` : arity.tooMany);
  }
}

type Parsed = { positionals: string[]; options: Record<string, string | boolean | undefined> };

/** A help request wins over whatever else the line holds (options after '--' are not options). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

function parseStrict(args: readonly string[], spec: OptSpec): Parsed | 'help' {
  if (asksForHelp(args)) return 'help';
  const p = parseCommandOptions(args, spec);
  if (typeof p === 'string') throw new UsageError(p);
  return { positionals: p.positionals, options: { ...p.values } }; // a plain object, not node:util's null-prototype one
}

export interface ParsedOptions {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** The strict parse itself: options anywhere, unknown ones refused; node:util's error as text. */
export function parseCommandOptions(args: readonly string[], spec: OptSpec): ParsedOptions | string {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: spec, strict: true, allowPositionals: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS_') !== true) throw e;
    return (e as Error).message;
  }
}

/**
 * Leading options only: parsing stops at the first positional, at '--', or at any option this
 * command does not know (which then counts as a positional, as do `--NAME=VALUE` and groups).
 */
function parseLeading(args: readonly string[], booleanOptions: readonly string[]): Parsed | 'help' {
  const known = new Set(['help', 'h', ...booleanOptions]);
  const { tokens } = parseArgs({
    args: [...args],
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: Object.fromEntries([
      ['help', { type: 'boolean', short: 'h' }],
      ...booleanOptions.map((name) => [name, { type: 'boolean' }]),
    ]) as Record<string, { type: 'boolean'; short?: string }>,
  });
  const options: Record<string, boolean> = {};
  let help = false;
  let positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'option' && known.has(token.name) && token.value === undefined && token.rawName === args[token.index]) {
      if (token.name === 'help' || token.name === 'h') help = true;
      else options[token.name] = true;
      continue;
    }
    positionals = args.slice(token.kind === 'option-terminator' ? token.index + 1 : token.index);
    break;
  }
  return help ? 'help' : { positionals, options };
}
