import { test } from 'node:test';
import assert from 'node:assert/strict';
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
