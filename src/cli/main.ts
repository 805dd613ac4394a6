/**
 * ecryptfs-agent command line: dispatches to command groups. Each command declares the grammar
 * of its arguments (args.ts: strict, or the ecryptfs-utils compatible "leading options, then
 * everything verbatim"); main parses by it once, answers --help and usage errors, and runs the
 * command with what it parsed.
 */
import { useNativeKdf } from '../os/kdf-native';
import { isAgentError } from '../errors';
import { type Grammar, parseCommandLine, UsageError } from './args';
import { type CliIO, type Command, processIO } from './command';
import { keyCommands } from './key-commands';
import { passphraseCommands } from './passphrase-commands';
import { privateCommands } from './private-commands';
import { diagnoseCommands } from './diagnose-commands';
import { mountCommands } from './mount-commands';
import { recoveryCommands } from './recovery-commands';
import { migrateCommands } from './migrate-commands';
import { migrateOutCommands } from './migrate-out-commands';
import { exportCommands } from './export-commands';

export const EXIT_USAGE = 2;

export const commands: readonly Command[] = [
  ...passphraseCommands,
  ...keyCommands,
  ...privateCommands,
  ...migrateCommands,
  ...migrateOutCommands,
  ...mountCommands,
  ...recoveryCommands,
  ...exportCommands,
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
  return runCommand(command, rest, io);
}

/** Parses a command's arguments by its grammar and runs it; --help and usage errors are answered here. */
export async function runCommand<G extends Grammar>(command: Command<G>, args: readonly string[], io: CliIO): Promise<number> {
  try {
    const line = parseCommandLine(args, command.grammar);
    if (line.kind === 'help') {
      io.out(`${command.help}\n`);
      return 0;
    }
    return await command.run(line.args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(e.reason === null ? `${command.help}\n` : `${e.reason}\n\n${command.help}\n`);
      return EXIT_USAGE;
    }
    // Last resort: commands report their expected failures themselves.
    const message = isAgentError(e) ? `${e.message}\nhint: ${e.hint}` : e instanceof Error ? e.message : String(e);
    io.err(`ecryptfs-agent ${command.name}: ${message}\n`);
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
