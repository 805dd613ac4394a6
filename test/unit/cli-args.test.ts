import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Arity, arityProblem, NO_POSITIONALS, parseCommandLine } from '../../src/cli/args';
import type { CliIO } from '../../src/cli/command';
import { parseCommandArgs } from '../../src/cli/main';

test('leading known options only; the rest is verbatim', () => {
  assert.deepEqual(parseCommandArgs(['--fnek', '-'], ['fnek']), { help: false, options: new Set(['fnek']), positionals: ['-'] });
  assert.deepEqual(parseCommandArgs(['file', '-x', '--fnek'], ['fnek']), { help: false, options: new Set(), positionals: ['file', '-x', '--fnek'] });
  assert.deepEqual(parseCommandArgs(['--help']), { help: true, options: new Set(), positionals: [] });
  assert.deepEqual(parseCommandArgs(['-h']).help, true);
  assert.deepEqual(parseCommandArgs(['--', '--help']), { help: false, options: new Set(), positionals: ['--help'] });
  assert.deepEqual(parseCommandArgs(['--fnek'], []).positionals, ['--fnek'], 'unknown options are positionals');
  assert.deepEqual(parseCommandArgs(['--fnek=1'], ['fnek']).positionals, ['--fnek=1']);
  assert.deepEqual(parseCommandArgs(['-hx']).positionals, ['-hx'], 'short groups are not options');
  assert.deepEqual(parseCommandArgs([]), { help: false, options: new Set(), positionals: [] });
});

function recordingIO(): { io: CliIO; err: string[] } {
  const err: string[] = [];
  const io: CliIO = {
    out: () => assert.fail('nothing goes to stdout'),
    err: (t) => void err.push(t),
    passphrases: { read: async () => assert.fail('no passphrase is read') },
    home: () => '/nonexistent',
  };
  return { io, err };
}

test('parseCommandLine: a usage error is written with the help and exits 2; otherwise the parse', () => {
  const spec = { username: { type: 'string', short: 'u' } } as const;
  const ok = recordingIO();
  const p = parseCommandLine(ok.io, 'HELP', ['-u', 'bob', 'x'], spec, { min: 1, max: 1, missing: 'X is required' });
  assert.ok(typeof p !== 'number');
  assert.deepEqual({ values: { ...p.values }, positionals: p.positionals }, { values: { username: 'bob' }, positionals: ['x'] });
  assert.deepEqual(ok.err, []);

  const cases: Array<[string[], Arity | undefined, string]> = [
    [['--bogus'], NO_POSITIONALS, "Unknown option '--bogus'"],
    [['a', 'b'], NO_POSITIONALS, 'unexpected argument: a'],
    [[], { min: 2, max: 2, missing: 'LOWER and UPPER are required' }, 'LOWER and UPPER are required'],
    [['a', 'b', 'c'], { min: 2, max: 2 }, 'unexpected argument: c'],
    [['a', 'b'], { max: 1, tooMany: 'too many arguments' }, 'too many arguments'],
  ];
  for (const [args, arity, why] of cases) {
    const r = recordingIO();
    assert.equal(parseCommandLine(r.io, 'HELP', args, spec, arity), 2, args.join(' '));
    assert.equal(r.err.length, 1);
    assert.ok(r.err[0]!.startsWith(why), r.err[0]);
    assert.ok(r.err[0]!.endsWith('\n\nHELP\n'), r.err[0]);
  }
  assert.equal(typeof parseCommandLine(recordingIO().io, 'HELP', ['a', 'b', 'c'], spec), 'object', 'no arity: any number of positionals');
});

test('arityProblem: null within bounds', () => {
  assert.equal(arityProblem([], NO_POSITIONALS), null);
  assert.equal(arityProblem(['a'], { max: 1 }), null);
  assert.equal(arityProblem([], { min: 1, max: 1, missing: 'missing DIR' }), 'missing DIR');
  assert.equal(arityProblem(['a', 'b'], { min: 1, max: 1 }), 'unexpected argument: b');
});
