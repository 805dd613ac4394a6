/**
 * ecryptfs-agent command line: dispatches to command groups. Each command parses
 * its own leading options; everything from the first positional argument on is
 * passed verbatim (so passphrase arguments that start with '-' work, as in the C tools).
 */
import { useNativeKdf } from '../os/kdf-native';
import { parseArgs } from 'node:util';
import { isAgentError } from '../errors';
import { type CliIO, type Command, processIO } from './command';
import { keyCommands } from './key-commands';
import { passphraseCommands } from './passphrase-commands';
import { privateCommands } from './private-commands';
import { diagnoseCommands } from './diagnose-commands';
import { mountCommands } from './mount-commands';
import { recoveryCommands } from './recovery-commands';
import { migrateCommands } from './migrate-commands';

export const EXIT_USAGE = 2;

export const commands: readonly Command[] = [
  ...passphraseCommands,
  ...keyCommands,
  ...privateCommands,
  ...migrateCommands,
  ...mountCommands,
  ...recoveryCommands,
  ...diagnoseCommands,
];

function globalHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `Usage: ecryptfs-agent COMMAND [ARGS...]
       ecryptfs-agent COMMAND --help

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Exit status:
  0  success (the ecryptfs-utils compatible commands also exit 0 on most usage errors,
     as the tools they replace do; see COMMAND --help)
  1  failure
  ${EXIT_USAGE}  unknown command or bad global options
`;
}

interface CommandArgs {
  help: boolean;
  options: Set<string>;
  positionals: string[];
}

/**
 * Leading options only: parsing stops at the first positional, at '--', or at any
 * option this command does not know (which then counts as a positional).
 */
export function parseCommandArgs(args: string[], booleanOptions: readonly string[] = []): CommandArgs {
  const known = new Set(['help', 'h', ...booleanOptions]);
  const { tokens } = parseArgs({
    args,
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: Object.fromEntries([
      ['help', { type: 'boolean', short: 'h' }],
      ...booleanOptions.map((name) => [name, { type: 'boolean' }]),
    ]) as Record<string, { type: 'boolean'; short?: string }>,
  });
  const options = new Set<string>();
  let help = false;
  for (const token of tokens ?? []) {
    if (token.kind === 'option' && known.has(token.name) && token.value === undefined && token.rawName === args[token.index]) {
      if (token.name === 'help' || token.name === 'h') help = true;
      else options.add(token.name);
      continue;
    }
    const start = token.kind === 'option-terminator' ? token.index + 1 : token.index;
    return { help, options, positionals: args.slice(start) };
  }
  return { help, options, positionals: [] };
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  useNativeKdf();
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(globalHelp());
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(globalHelp());
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    io.err(`ecryptfs-agent: unknown command "${name}"\n\n${globalHelp()}`);
    return EXIT_USAGE;
  }
  const args = parseCommandArgs(rest, command.booleanOptions);
  if (args.help) {
    io.out(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run({ positionals: args.positionals, options: args.options }, io);
  } catch (e) {
    // Last resort: commands report their expected failures themselves.
    const message = isAgentError(e) ? `${e.message}\nhint: ${e.hint}` : e instanceof Error ? e.message : String(e);
    io.err(`ecryptfs-agent ${name}: ${message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`ecryptfs-agent: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
