/**
 * Golden output of the command line, in the manner of google/fscrypt's cli-tests: main() runs
 * in-process with a capturing CliIO, and what it writes to stdout and stderr and its exit status
 * must equal test/golden/CASE.txt, byte for byte. The cases: the global help, no command, an
 * unknown command, every command's --help, and for each strict command an unknown option and one
 * positional too many; then the other usage errors that are answered before anything is touched.
 *
 * After an intended change of a message: ECRYPTFS_AGENT_UPDATE_GOLDEN=1 node --test
 * dist/test/unit/cli-golden.test.js rewrites the files (and removes those of cases that are gone);
 * review them with git diff.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CliIO } from '../../src/cli/command';
import { commands, main } from '../../src/cli/main';

// From dist/test/unit back to the sources: the golden files are not compiled.
const GOLDEN_DIR = join(__dirname, '..', '..', '..', 'test', 'golden');
const UPDATE = process.env.ECRYPTFS_AGENT_UPDATE_GOLDEN === '1';

/** The commands whose options may come anywhere, and a command line with one positional too many. */
const STRICT_TOO_MANY: Record<string, string[]> = {
  'setup-private': ['extra'],
  unlock: ['extra'],
  lock: ['extra'],
  mount: ['LOWER', 'UPPER', 'extra'],
  umount: ['UPPER', 'extra'],
  recovery: ['extra'],
  recover: ['DIR', 'extra'],
  export: ['LOWER', 'DEST', 'extra'],
  'migrate-home': ['-u', 'alice', 'extra'],
  'migrate-out': ['-u', 'alice', '--to', 'plain', 'extra'],
  status: ['alice', 'extra'],
  doctor: ['extra'],
};

/** Usage errors beyond those, all answered before a passphrase, file or the keyring is touched. */
const OTHER_USAGE: Array<[name: string, argv: string[]]> = [
  ['status--help-after-option', ['status', '--json', '--help']],
  ['mount--missing-upper', ['mount', 'LOWER']],
  ['mount--contradiction', ['mount', 'LOWER', 'UPPER', '--fnek', '--no-fnek']],
  ['mount--bad-key-bytes', ['mount', 'LOWER', 'UPPER', '--key-bytes', 'sixteen']],
  ['umount--missing-upper', ['umount']],
  ['lock--option-without-value', ['lock', '-u']],
  ['recover--missing-dir', ['recover']],
  ['recover--unmount-and-more', ['recover', '--unmount', '/tmp/x', '--rw']],
  ['recover--fnek-contradiction', ['recover', 'DIR', '--fnek', '--no-fnek']],
  ['recover--passphrase-and-wrapped', ['recover', 'DIR', '-m', '--wrapped', 'FILE']],
  ['export--missing-dest', ['export', 'LOWER']],
  ['export--user-and-mount-passphrase', ['export', '-u', 'alice', '-m', 'LOWER', 'DEST']],
  ['migrate-home--missing-user', ['migrate-home']],
  ['migrate-out--missing-user', ['migrate-out', '--to', 'plain']],
  ['migrate-out--missing-target', ['migrate-out', '-u', 'alice']],
  ['migrate-out--bad-target', ['migrate-out', '-u', 'alice', '--to', 'zfs']],
  ['migrate-out--finish-and-yes', ['migrate-out', '-u', 'alice', '--finish', '--yes']],
  ['keys--too-many', ['keys', 'extra']],
  ['forget--not-a-sig', ['forget', 'not-a-sig']],
  ['forget--option-after-sig', ['forget', '0123456789abcdef', '--force']],
  // the ecryptfs-utils compatible usage: on stdout, exit 0 (as the C tools)
  ['wrap-passphrase--no-file', ['wrap-passphrase']],
  ['unwrap-passphrase--too-many', ['unwrap-passphrase', 'FILE', 'PW', 'extra']],
  ['unwrap-passphrase--no-default-file', ['unwrap-passphrase']],
  ['unwrap-passphrase--one-character-pw', ['unwrap-passphrase', 'FILE', 'x']],
  ['rewrap-passphrase--no-file', ['rewrap-passphrase']],
  ['insert-wrapped-passphrase--too-many', ['insert-wrapped-passphrase', 'FILE', 'PW', 'extra']],
  ['insert-wrapped-passphrase--no-default-file', ['insert-wrapped-passphrase']],
  ['add-passphrase--not-dash', ['add-passphrase', '--fnek', 'PASSPHRASE']],
];

const CASES: Array<[name: string, argv: string[]]> = [
  ['global--help', ['--help']],
  ['global--no-command', []],
  ['global--unknown-command', ['frobnicate']],
  ...commands.map((c): [string, string[]] => [`${c.name}--help`, [c.name, '--help']]),
  ...Object.entries(STRICT_TOO_MANY).flatMap(([name, tooMany]): Array<[string, string[]]> => [
    [`${name}--unknown-option`, [name, '--bogus']],
    [`${name}--too-many`, [name, ...tooMany]],
  ]),
  ...OTHER_USAGE,
];

/** What a run wrote, as one plain-text file: the command line, the exit status, stdout, stderr. */
async function transcript(argv: string[]): Promise<string> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    out: (t) => void (stdout += t.toString()),
    err: (t) => void (stderr += t),
    passphrases: { read: async () => assert.fail(`ecryptfs-agent ${argv.join(' ')} read a passphrase`) },
    home: () => '/nonexistent',
  };
  const status = await main(argv, io);
  return `$ ecryptfs-agent ${argv.join(' ')}\nexit status: ${status}\n--- stdout\n${stdout}--- stderr\n${stderr}`;
}

test('every case has its own golden file', () => {
  const names = CASES.map(([name]) => name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'case names are unique');
  assert.deepEqual(
    commands.map((c) => c.name).filter((n) => !names.includes(`${n}--help`)),
    [],
    'every command has a --help case',
  );
  const strictOnes = commands.filter((c) => c.grammar.mode === 'strict').map((c) => c.name);
  assert.deepEqual(Object.keys(STRICT_TOO_MANY).sort(), strictOnes.sort(), 'every strict command has its usage-error cases');
});

for (const [name, argv] of CASES) {
  test(`golden: ecryptfs-agent ${argv.join(' ')}`, async () => {
    const file = join(GOLDEN_DIR, `${name}.txt`);
    const actual = await transcript(argv);
    if (UPDATE) {
      mkdirSync(GOLDEN_DIR, { recursive: true });
      writeFileSync(file, actual);
      return;
    }
    assert.ok(existsSync(file), `${file} is missing: run with ECRYPTFS_AGENT_UPDATE_GOLDEN=1 to write it`);
    assert.equal(actual, readFileSync(file, 'utf8'), `differs from ${file} (ECRYPTFS_AGENT_UPDATE_GOLDEN=1 rewrites it)`);
  });
}

const stale = (): string[] => readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.txt') && !CASES.some(([name]) => `${name}.txt` === f));

if (UPDATE) {
  after(() => {
    for (const f of stale()) unlinkSync(join(GOLDEN_DIR, f));
  });
} else {
  test('no golden file without its case', () => {
    assert.deepEqual(stale(), []);
  });
}
