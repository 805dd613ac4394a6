/**
 * migrate-home, the pure parts: journal and done-log formats (torn lines, raw names), planning
 * (eCryptfs size estimate, name limits, counts, what a resumed run may skip), paths and layout.
 * The parts that copy, verify and mount are in test/host/migrate-home.test.ts and the VM suite.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAgentError, type ErrorCode } from '../../src/errors';
import { checkName, kindOfMode, parentAndName, skippedXattr, splitNs, splitRel } from '../../src/os/fs-at';
import { checkHomePath, describeExpiry, homeLayout, homeLinks, isWorkDirName, originalName, shadowExpiry, SPACE_MARGIN_BYTES, spaceNeeded } from '../../src/actions/migrate-home';
import { type DoneRecord, formatDoneRecord, type MigrateJournal, parseDoneLog, parseJournal, phaseAtLeast, renderJournal } from '../../src/actions/migrate-journal';
import { countEntries, displayRel, doneRecordMatches, estimateEncryptedBytes, namesTooLong, type TreeEntry } from '../../src/actions/migrate-tree';

const fails = (code: ErrorCode, re?: RegExp) => (e: unknown): boolean => {
  assert.ok(isAgentError(e), String(e));
  assert.equal(e.code, code);
  if (re) assert.match(e.message, re);
  return true;
};

const JOURNAL: MigrateJournal = {
  version: 1,
  user: 'alice',
  uid: 1001,
  gid: 1001,
  home: '/home/alice',
  original: '/home/alice.Ab3dEf9h',
  userDir: '/home/.ecryptfs/alice',
  fnek: true,
  wrappingIndependent: false,
  phase: 'set-up',
  started: '2026-11-27T10:00:00.000Z',
};

describe('journal', () => {
  test('renders and parses back to the same object', () => {
    assert.deepEqual(parseJournal(renderJournal(JOURNAL).toString('utf8')), JOURNAL);
  });

  test('every field is validated', () => {
    const bad: Array<[string, unknown]> = [
      ['version', 2],
      ['user', 'a b'],
      ['user', '-rf'],
      ['uid', -1],
      ['uid', 1.5],
      ['gid', '1001'],
      ['home', 'home/alice'],
      ['original', '/tmp/elsewhere'],
      ['userDir', ''],
      ['fnek', 'yes'],
      ['wrappingIndependent', 0],
      ['phase', 'done'],
      ['started', 'yesterday'],
    ];
    for (const [k, v] of bad) {
      assert.throws(() => parseJournal(JSON.stringify({ ...JOURNAL, [k]: v }), 'J'), fails('BAD_CONFIG', new RegExp(`^J: `)), `${k}=${JSON.stringify(v)}`);
    }
    assert.throws(() => parseJournal('{', 'J'), fails('BAD_CONFIG', /not valid JSON/));
    assert.throws(() => parseJournal('[]', 'J'), fails('BAD_CONFIG', /not a JSON object/));
  });

  test('the account lock: previousExpiry ("" = never, or days) round-trips; journals without it (older runs) parse as unlocked', () => {
    for (const v of ['', '1', '20000']) assert.deepEqual(parseJournal(renderJournal({ ...JOURNAL, previousExpiry: v }).toString('utf8')), { ...JOURNAL, previousExpiry: v });
    assert.equal(parseJournal(JSON.stringify(JOURNAL)).previousExpiry, undefined);
    assert.ok(!('previousExpiry' in parseJournal(JSON.stringify(JOURNAL))));
    for (const v of [1, '-1', 'never', '1 ', '12345678', null]) {
      assert.throws(() => parseJournal(JSON.stringify({ ...JOURNAL, previousExpiry: v }), 'J'), fails('BAD_CONFIG', /bad previousExpiry/), JSON.stringify(v));
    }
  });

  test('the original must sit next to the home (it is renamed, never copied elsewhere)', () => {
    assert.throws(() => parseJournal(JSON.stringify({ ...JOURNAL, original: '/home/bob.Ab3dEf9h' })), fails('BAD_CONFIG', /next to the home/));
  });

  test('phases are ordered', () => {
    assert.ok(phaseAtLeast({ phase: 'copied' }, 'set-up'));
    assert.ok(phaseAtLeast({ phase: 'copied' }, 'copied'));
    assert.ok(!phaseAtLeast({ phase: 'moved' }, 'set-up'));
    assert.ok(!phaseAtLeast({ phase: 'started' }, 'moved'));
  });
});

describe('done log', () => {
  const rec = (rel: Buffer, extra: Partial<DoneRecord> = {}): DoneRecord => ({
    rel,
    kind: 'file',
    sha256: 'a'.repeat(64),
    size: 5,
    mtimeNs: 1700000000123456789n,
    ctimeNs: 1700000001000000000n,
    ino: 42n,
    ...extra,
  });

  test('raw names survive: newline, UTF-8, bytes that are not UTF-8, quotes and backslashes', () => {
    const names = [Buffer.from('new\nline'), Buffer.from('ü tf8 ✓'), Buffer.from([0x61, 0xe9, 0xff, 0x2f, 0x80]), Buffer.from('q"uo\\te')];
    const text = names.map((n) => formatDoneRecord(rec(n))).join('');
    assert.equal(text.split('\n').length, names.length + 1, 'one line per record');
    const parsed = parseDoneLog(Buffer.from(text, 'utf8'));
    assert.equal(parsed.size, names.length);
    for (const n of names) assert.deepEqual(parsed.get(n.toString('latin1')), rec(n));
  });

  test('symlinks and hard links carry no hash', () => {
    const lines = formatDoneRecord(rec(Buffer.from('l'), { kind: 'symlink', sha256: undefined })) + formatDoneRecord(rec(Buffer.from('h'), { kind: 'link', sha256: undefined }));
    const parsed = parseDoneLog(Buffer.from(lines));
    assert.equal(parsed.get('l')?.kind, 'symlink');
    assert.equal(parsed.get('l')?.sha256, undefined);
    assert.equal(parsed.get('h')?.kind, 'link');
  });

  test('a torn last line (killed or power loss while appending) is ignored, earlier lines kept', () => {
    const full = formatDoneRecord(rec(Buffer.from('one'))) + formatDoneRecord(rec(Buffer.from('two')));
    for (let cut = 1; cut < formatDoneRecord(rec(Buffer.from('two'))).length; cut++) {
      const parsed = parseDoneLog(Buffer.from(full.slice(0, full.length - cut)));
      assert.deepEqual([...parsed.keys()], ['one'], `cut ${cut}`);
    }
    assert.equal(parseDoneLog(Buffer.alloc(0)).size, 0);
  });

  test('malformed lines are skipped; the last record of a name wins', () => {
    const good = formatDoneRecord(rec(Buffer.from('x'), { size: 1 }));
    const later = formatDoneRecord(rec(Buffer.from('x'), { size: 2 }));
    const junk = [
      'not json',
      '["x","file"]',
      JSON.stringify(['x', 'dir', '', 1, '1', '1', '1']),
      JSON.stringify(['x', 'file', 'short', 1, '1', '1', '1']),
      JSON.stringify(['x', 'symlink', 'a'.repeat(64), 1, '1', '1', '1']),
      JSON.stringify(['x', 'file', 'a'.repeat(64), -1, '1', '1', '1']),
      JSON.stringify(['x', 'file', 'a'.repeat(64), 1, '1.5', '1', '1']),
      JSON.stringify(['', 'file', 'a'.repeat(64), 1, '1', '1', '1']),
      JSON.stringify(['\u0100', 'file', 'a'.repeat(64), 1, '1', '1', '1']),
    ].join('\n');
    const parsed = parseDoneLog(Buffer.from(`${good}${junk}\n${later}`));
    assert.equal(parsed.size, 1);
    assert.equal(parsed.get('x')?.size, 2);
  });
});

function entry(rel: string, kind: TreeEntry['kind'], extra: Partial<TreeEntry> = {}): TreeEntry {
  return { rel: Buffer.from(rel), kind, mode: 0o644, uid: 1000, gid: 1000, size: 0, atimeNs: 0n, mtimeNs: 5n, ctimeNs: 6n, ino: 7n, rdev: 0n, ...extra };
}

describe('planning', () => {
  test('encrypted size: 8 KiB header + data in 4 KiB extents per file, one block per other entry, hard links free', () => {
    assert.equal(estimateEncryptedBytes([entry('empty', 'file')]), 8192);
    assert.equal(estimateEncryptedBytes([entry('one', 'file', { size: 1 })]), 8192 + 4096);
    assert.equal(estimateEncryptedBytes([entry('page', 'file', { size: 4096 })]), 8192 + 4096);
    assert.equal(estimateEncryptedBytes([entry('big', 'file', { size: 5_000_000 })]), 8192 + 1221 * 4096);
    assert.equal(estimateEncryptedBytes([entry('d', 'dir'), entry('l', 'symlink'), entry('p', 'fifo')]), 3 * 4096);
    assert.equal(estimateEncryptedBytes([entry('h', 'file', { size: 10_000, linkOf: Buffer.from('big') })]), 0);
  });

  test('space needed: 5 % and 16 MiB more than the estimate', () => {
    assert.equal(spaceNeeded(0), SPACE_MARGIN_BYTES);
    assert.equal(spaceNeeded(100 * 1024 * 1024), 105 * 1024 * 1024 + SPACE_MARGIN_BYTES);
  });

  test('name limits: 143 bytes with filename encryption, 255 without; only the last component counts', () => {
    const n = (len: number, dir = ''): TreeEntry => entry(dir + 'a'.repeat(len), 'file');
    const deep = 'd'.repeat(200) + '/';
    assert.deepEqual(namesTooLong([n(143), n(143, deep)], true), []);
    assert.equal(namesTooLong([n(144)], true).length, 1);
    assert.deepEqual(namesTooLong([n(255)], false), []);
    assert.equal(namesTooLong([n(256)], false).length, 1);
    // bytes, not characters: 72 × "é" is 144 bytes
    assert.equal(namesTooLong([entry('é'.repeat(72), 'file')], true).length, 1);
  });

  test('counts', () => {
    const c = countEntries([
      entry('', 'dir'),
      entry('d', 'dir'),
      entry('f', 'file', { size: 10 }),
      entry('g', 'file', { size: 5 }),
      entry('h', 'file', { size: 10, linkOf: Buffer.from('f') }),
      entry('l', 'symlink'),
      entry('p', 'fifo'),
      entry('s', 'socket'),
      entry('c', 'char'),
    ]);
    assert.deepEqual(c, { dirs: 2, files: 2, symlinks: 1, hardlinks: 1, specials: 3, bytes: 15 });
  });

  test('a done record lets a resumed run skip an entry only while the source is unchanged', () => {
    const e = entry('f', 'file', { size: 3 });
    const r: DoneRecord = { rel: e.rel, kind: 'file', sha256: 'b'.repeat(64), size: 3, mtimeNs: 5n, ctimeNs: 6n, ino: 7n };
    assert.ok(doneRecordMatches(r, e));
    assert.ok(!doneRecordMatches(undefined, e));
    for (const change of [{ size: 4 }, { mtimeNs: 9n }, { ctimeNs: 9n }, { ino: 9n }] as Partial<TreeEntry>[]) {
      assert.ok(!doneRecordMatches(r, { ...e, ...change }), JSON.stringify(change, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
    }
    assert.ok(!doneRecordMatches(r, { ...e, linkOf: Buffer.from('g') }), 'a file that became a hard link');
    assert.ok(doneRecordMatches({ ...r, kind: 'link' }, { ...e, linkOf: Buffer.from('g') }));
    assert.ok(!doneRecordMatches({ ...r, kind: 'symlink' }, e));
  });

  test('names in messages: UTF-8 as is, other bytes and control characters escaped', () => {
    assert.equal(displayRel(Buffer.from('ü tf8 ✓')), 'ü tf8 ✓');
    assert.equal(displayRel(Buffer.from('new\nline')), 'new\\x0aline');
    assert.equal(displayRel(Buffer.from([0x61, 0xe9, 0x62])), 'a\\xe9b');
  });
});

describe('layout and paths', () => {
  test('the layout of ecryptfs-setup-private -b', () => {
    const l = homeLayout({ name: 'alice', home: '/home/alice' });
    assert.deepEqual(l, { userDir: '/home/.ecryptfs/alice', configDir: '/home/.ecryptfs/alice/.ecryptfs', lower: '/home/.ecryptfs/alice/.Private', upper: '/home/alice' });
    assert.deepEqual(homeLinks(l, true), [
      ['.ecryptfs', '/home/.ecryptfs/alice/.ecryptfs'],
      ['.Private', '/home/.ecryptfs/alice/.Private'],
      ['README.txt', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.txt'],
      ['Access-Your-Private-Data.desktop', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.desktop'],
    ]);
    assert.equal(homeLinks(l, false).length, 2);
  });

  test('the original: HOME.XXXXXXXX (8 letters or digits), from the random bytes given', () => {
    const a = originalName('/home/alice', Buffer.from([0, 1, 2, 3, 61, 62, 63, 255]));
    assert.equal(a, '/home/alice.ABCD9ABH');
    assert.match(originalName('/home/alice'), /^\/home\/alice\.[A-Za-z0-9]{8}$/);
    assert.notEqual(originalName('/home/alice'), originalName('/home/alice'));
  });

  test('homes that cannot be migrated to /home/.ecryptfs', () => {
    for (const h of ['home/alice', '/home/alice/', '/home//alice', '/home/../etc', '/', '/home/a\nb']) {
      assert.throws(() => checkHomePath(h), fails('UNSAFE_PATH', /absolute, normalised/), h);
    }
    for (const h of ['/home', '/home/.ecryptfs', '/home/.ecryptfs/alice']) assert.throws(() => checkHomePath(h), fails('UNSAFE_PATH', /overlaps/), h);
    checkHomePath('/home/alice');
    checkHomePath('/srv/homes/alice');
    checkHomePath('/home/.ecryptfs-not/alice');
  });
});

describe('the account lock and the root-only mount point (pure parts)', () => {
  const SHADOW = ['root:*:19000:0:99999:7:::', 'alice:$6$x$y:20000:0:99999:7:::', 'bob:!:20000:0:99999:7::20500:', 'carol:!:20000::::::-1', 'al:x:1:0:99999:7::5:'].join('\n');

  test("shadow's expiry field: never (empty, or -1), a day number; no line: null; a malformed line refused", () => {
    assert.equal(shadowExpiry(SHADOW, 'alice'), '');
    assert.equal(shadowExpiry(SHADOW, 'bob'), '20500');
    assert.equal(shadowExpiry(SHADOW, 'carol'), '');
    assert.equal(shadowExpiry(SHADOW, 'al'), '5', 'the whole name, not a prefix');
    assert.equal(shadowExpiry(SHADOW, 'dave'), null);
    assert.throws(() => shadowExpiry('eve:x:1:0', 'eve'), fails('BAD_CONFIG', /malformed/));
    assert.throws(() => shadowExpiry('eve:x:1:0:99999:7::soon:', 'eve'), fails('BAD_CONFIG', /malformed/));
  });

  test('expiry dates for people: day 1 is 1970-01-02 (what the lock sets)', () => {
    assert.equal(describeExpiry(''), 'never');
    assert.equal(describeExpiry('1'), '1970-01-02');
    assert.equal(describeExpiry('20500'), '2026-02-16');
  });

  test("the temp dirs of a user's runs: migrate-USER-XXXXXX, never another user's", () => {
    assert.ok(isWorkDirName('migrate-alice-Ab3dE9', 'alice'));
    assert.ok(!isWorkDirName('migrate-alice-b-Ab3dE9', 'alice'), "alice-b's");
    assert.ok(isWorkDirName('migrate-alice-b-Ab3dE9', 'alice-b'));
    assert.ok(!isWorkDirName('migrate-alice-Ab3dE', 'alice'));
    assert.ok(!isWorkDirName('migrate-alice-Ab3d/9', 'alice'));
    assert.ok(!isWorkDirName('1000.sessions', 'alice'));
  });
});

describe('fd-relative names (src/os/fs-at.ts, pure parts)', () => {
  test('one name component only: no "/", ".", "..", NUL or empty name reaches an *at call', () => {
    for (const bad of ['', '.', '..', 'a/b', '/etc', 'x\0y', Buffer.from('a/'), Buffer.alloc(0)]) assert.throws(() => checkName(bad), fails('UNSAFE_PATH', /not a single file name/), JSON.stringify(String(bad)));
    for (const ok of ['...', '.a', 'a..', 'new\nline', Buffer.from([0xe9, 0xff])]) assert.ok(checkName(ok).length > 0);
  });

  test('relative paths split into components and into parent and name', () => {
    assert.deepEqual(splitRel(Buffer.alloc(0)), []);
    assert.deepEqual(splitRel(Buffer.from('a/b c/\xe9')).map((b) => b.toString('latin1')), ['a', 'b c', '\xe9'].map((x) => Buffer.from(x).toString('latin1')));
    assert.deepEqual(parentAndName(Buffer.from('a/b/c')).map(String), ['a/b', 'c']);
    assert.deepEqual(parentAndName(Buffer.from('top')).map(String), ['', 'top']);
  });

  test('times split exactly into seconds and nanoseconds, before 1970 too', () => {
    assert.deepEqual(splitNs(1700000000123456789n), [1700000000, 123456789]);
    assert.deepEqual(splitNs(0n), [0, 0]);
    assert.deepEqual(splitNs(-1n), [-1, 999999999]);
    assert.deepEqual(splitNs(-1500000000n), [-2, 500000000]);
  });

  test('file kinds from st_mode; the extended attributes GNU cp skips are skipped', () => {
    assert.deepEqual([0o40755, 0o100644, 0o120777, 0o10644, 0o20600, 0o60600, 0o140755].map((m) => kindOfMode(m)), ['dir', 'file', 'symlink', 'fifo', 'char', 'block', 'socket']);
    assert.equal(kindOfMode(0o100644n), 'file');
    for (const n of ['security.evm', 'trusted.SGI_ACL_FILE', 'xfsroot.x', 'afs.acl', 'user.Beagle.x']) assert.ok(skippedXattr(Buffer.from(n)), n);
    for (const n of ['user.origin', 'trusted.migrate', 'system.posix_acl_access', 'security.capability', 'security.selinux']) assert.ok(!skippedXattr(Buffer.from(n)), n);
  });
});
