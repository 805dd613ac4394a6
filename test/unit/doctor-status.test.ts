/** status rendering (pure) and the strict option parsing of the manual-path commands. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommandOptions } from '../../src/cli/args';
import { renderStatus, type StatusReport } from '../../src/actions/status';

const base: StatusReport = {
  user: 'alice',
  uid: 1000,
  setup: {
    configDir: '/home/alice/.ecryptfs',
    lower: '/home/alice/.Private',
    upper: '/home/alice/Private',
    fekSig: '0123456789abcdef',
    fnekSig: 'fedcba9876543210',
    autoMount: true,
    autoUmount: false,
    wrappingIndependent: false,
    hasWrappedPassphrase: true,
  },
  files: [{ role: 'wrapped-passphrase', path: '/home/alice/.ecryptfs/wrapped-passphrase', kind: 'file', mode: 0o600, uid: 1000, size: 58 }],
  keys: { present: ['0123456789abcdef'], missing: ['fedcba9876543210'] },
  mounted: null,
  sessions: null,
  lastLogin: null,
};

test('status: setup, sigs, "not checked" for the wrapped file, keys, mount, root-only parts', () => {
  const text = renderStatus(base);
  assert.match(text, /^User alice \(uid 1000\)$/m);
  assert.match(text, /sigs: +0123456789abcdef \(files\), fedcba9876543210 \(file names\)/);
  assert.match(text, /matches Private\.sig: not checked/);
  assert.match(text, /at last logout: kept \(no auto-umount\)/);
  assert.match(text, /wrapped-passphrase\/?.*file, mode 0600, uid 1000, 58 bytes/);
  assert.match(text, /keys in @u: +some \[present: 0123456789abcdef\] \[missing: fedcba9876543210\]/);
  assert.match(text, /mounted: +no \(locked\)/);
  assert.match(text, /sessions: +not shown \(root only\)/);
  const root = renderStatus(
    { ...base, sessions: 2, lastLogin: { time: 1_000_000, outcome: 'wrong-password', service: 'login' }, mounted: { mountPoint: '/home/alice/Private', source: '/home/alice/.Private', sigs: ['0123456789abcdef'] } },
    1_030_000,
  );
  assert.match(root, /sessions: +2 open PAM session\(s\)/);
  assert.match(root, /last login: +wrong-password via login, 30 s ago/);
  assert.match(root, /mounted: +yes, \/home\/alice\/\.Private on \/home\/alice\/Private/);
});

test('status: no setup and an unusable setup say what to do', () => {
  assert.match(renderStatus({ ...base, setup: null, keys: { error: 'no setup' } }), /setup: +none .*ecryptfs-agent setup-private/);
  assert.match(renderStatus({ ...base, setup: null, setupError: 'Private.sig is owned by uid 5 (BAD_OWNER)' }), /UNUSABLE: Private\.sig is owned by uid 5/);
});

test('options of setup-private/unlock/lock: strict, short and long forms, errors as text', () => {
  const spec = { username: { type: 'string', short: 'u' }, 'no-fnek': { type: 'boolean', short: 'n' }, force: { type: 'boolean', short: 'f' } } as const;
  const ok = parseCommandOptions(['-u', 'bob', '--no-fnek', '-f'], spec);
  assert.ok(typeof ok !== 'string');
  assert.deepEqual({ ...ok.values }, { username: 'bob', 'no-fnek': true, force: true });
  const long = parseCommandOptions(['--username=carol'], spec);
  assert.ok(typeof long !== 'string');
  assert.equal(long.values.username, 'carol');
  assert.equal(typeof parseCommandOptions(['--bogus'], spec), 'string');
  assert.equal(typeof parseCommandOptions(['-u'], spec), 'string');
  const pos = parseCommandOptions(['extra'], spec);
  assert.ok(typeof pos !== 'string');
  assert.deepEqual(pos.positionals, ['extra']);
});
