import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Arity, checkArity, type Grammar, leading, NO_POSITIONALS, parseCommandLine, strict, UsageError } from '../../src/cli/args';
import { type CliIO, type Command, defineCommand } from '../../src/cli/command';
import { runCommand } from '../../src/cli/main';

const run = (positionals: string[], options: Record<string, string | boolean> = {}) => ({ kind: 'run', args: { positionals, options } });

test('leading known options only; the rest is verbatim', () => {
  const fnek = leading(['fnek']);
  assert.deepEqual(parseCommandLine(['--fnek', '-'], fnek), run(['-'], { fnek: true }));
  assert.deepEqual(parseCommandLine(['file', '-x', '--fnek'], fnek), run(['file', '-x', '--fnek']));
  assert.deepEqual(parseCommandLine(['--help'], leading()), { kind: 'help' });
  assert.deepEqual(parseCommandLine(['-h'], leading()), { kind: 'help' });
  assert.deepEqual(parseCommandLine(['--fnek', '--help', 'x'], fnek), { kind: 'help' }, 'help among the leading options');
  assert.deepEqual(parseCommandLine(['--', '--help'], leading()), run(['--help']));
  assert.deepEqual(parseCommandLine(['x', '--help'], leading()), run(['x', '--help']), 'a passphrase may be --help');
  assert.deepEqual(parseCommandLine(['--fnek'], leading()), run(['--fnek']), 'unknown options are positionals');
  assert.deepEqual(parseCommandLine(['--fnek=1'], fnek), run(['--fnek=1']));
  assert.deepEqual(parseCommandLine(['-hx'], leading()), run(['-hx']), 'short groups are not options');
  assert.deepEqual(parseCommandLine([], leading()), run([]));
});

test('leading with an arity: the count is checked after the options', () => {
  const none = leading([], { max: 0, tooMany: null });
  assert.deepEqual(parseCommandLine([], none), run([]));
  assert.deepEqual(parseCommandLine(['--help', 'x'], none), { kind: 'help' }, 'help before the count');
  assert.throws(() => parseCommandLine(['x'], none), (e) => e instanceof UsageError && e.reason === null);
});

const spec = { username: { type: 'string', short: 'u' } } as const;

test('strict: options anywhere, typed values, positionals in order', () => {
  const p = parseCommandLine(['x', '-u', 'bob'], strict(spec, { min: 1, max: 1, missing: 'X is required' }));
  assert.deepEqual(p, run(['x'], { username: 'bob' }));
  assert.deepEqual(parseCommandLine(['--username=carol'], strict(spec)), run([], { username: 'carol' }));
  assert.deepEqual(parseCommandLine(['--', '-u'], strict(spec)), run(['-u']), "after '--' nothing is an option");
  assert.deepEqual(parseCommandLine(['a', 'b', 'c'], strict(spec)), run(['a', 'b', 'c']), 'no arity: any number of positionals');
});

test('strict: --help or -h anywhere before -- asks for the help, whatever else the line holds', () => {
  for (const args of [['--help'], ['-h'], ['-u', 'bob', '--help'], ['x', 'y', '-h'], ['--bogus', '--help']]) {
    assert.deepEqual(parseCommandLine(args, strict(spec, NO_POSITIONALS)), { kind: 'help' }, args.join(' '));
  }
  assert.throws(() => parseCommandLine(['--', '--help'], strict(spec, NO_POSITIONALS)), /unexpected argument: --help/);
});

test('strict: what is wrong is a UsageError with the reason', () => {
  const cases: Array<[string[], Arity | undefined, string]> = [
    [['--bogus'], NO_POSITIONALS, "Unknown option '--bogus'"],
    [['-u'], NO_POSITIONALS, "Option '-u, --username <value>' argument missing"],
    [['a', 'b'], NO_POSITIONALS, 'unexpected argument: a'],
    [[], { min: 2, max: 2, missing: 'LOWER and UPPER are required' }, 'LOWER and UPPER are required'],
    [[], { min: 1, max: 1 }, 'missing argument'],
    [['a', 'b', 'c'], { min: 2, max: 2 }, 'unexpected argument: c'],
    [['a', 'b'], { max: 1, tooMany: 'too many arguments' }, 'too many arguments'],
  ];
  for (const [args, arity, why] of cases) {
    assert.throws(
      () => parseCommandLine(args, strict(spec, arity)),
      (e) => e instanceof UsageError && e.reason !== null && e.reason.startsWith(why),
      args.join(' '),
    );
  }
});

test('checkArity: nothing within bounds, else the UsageError', () => {
  checkArity([], NO_POSITIONALS);
  checkArity(['a'], { max: 1 });
  checkArity(['a', 'b'], { min: 2, max: 3 });
  assert.throws(() => checkArity([], { min: 1, max: 1, missing: 'missing DIR' }), (e) => e instanceof UsageError && e.reason === 'missing DIR');
  assert.throws(() => checkArity(['a', 'b'], { min: 1, max: 1 }), (e) => e instanceof UsageError && e.reason === 'unexpected argument: b');
});

function recordingIO(): { io: CliIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    out: (t) => void out.push(t.toString()),
    err: (t) => void err.push(t),
    passphrases: { read: async () => assert.fail('no passphrase is read') },
    home: () => '/nonexistent',
  };
  return { io, out, err };
}

/** A command that records what run() got, and can throw a UsageError of its own. */
function probe<G extends Grammar>(grammar: G, rule?: (args: unknown) => void): { command: Command<G>; runs: unknown[] } {
  const runs: unknown[] = [];
  const command = defineCommand({
    name: 'probe',
    summary: 'probe',
    help: 'HELP',
    grammar,
    async run(args) {
      rule?.(args);
      runs.push(args);
      return 0;
    },
  });
  return { command, runs };
}

test('runCommand: --help on stdout, exit 0; a usage error is the reason, a blank line and the help on stderr, exit 2; run() never sees either', async () => {
  const { command, runs } = probe(strict(spec, NO_POSITIONALS));
  const help = recordingIO();
  assert.equal(await runCommand(command, ['-u', 'bob', '--help'], help.io), 0);
  assert.deepEqual([help.out, help.err], [['HELP\n'], []]);

  for (const [args, why] of [[['--bogus'], "Unknown option '--bogus'"], [['extra'], 'unexpected argument: extra']] as const) {
    const r = recordingIO();
    assert.equal(await runCommand(command, args, r.io), 2, args.join(' '));
    assert.deepEqual(r.out, []);
    assert.equal(r.err.length, 1);
    assert.ok(r.err[0]!.startsWith(`${why}`), r.err[0]);
    assert.ok(r.err[0]!.endsWith('\n\nHELP\n'), r.err[0]);
  }
  assert.deepEqual(runs, []);

  const ok = recordingIO();
  assert.equal(await runCommand(command, ['-u', 'bob'], ok.io), 0);
  assert.deepEqual(runs, [{ positionals: [], options: { username: 'bob' } }]);
});

test('runCommand: a null reason shows the help alone; a UsageError from run() is shown like a parse error', async () => {
  const quiet = recordingIO();
  assert.equal(await runCommand(probe(leading([], { max: 0, tooMany: null })).command, ['x'], quiet.io), 2);
  assert.deepEqual(quiet.err, ['HELP\n']);

  const rule = (): void => {
    throw new UsageError('--a and --b exclude each other');
  };
  const r = recordingIO();
  assert.equal(await runCommand(probe(strict({}), rule).command, [], r.io), 2);
  assert.deepEqual(r.err, ['--a and --b exclude each other\n\nHELP\n']);
});
