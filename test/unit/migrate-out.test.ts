/**
 * The pure and file-level parts of `migrate-out` (src/actions/migrate-out.ts): verifyTree (the
 * copy against the plaintext decrypted anew) on trees from the test writer, the journal's
 * parser, the names a migration uses, and the block-device check (src/os/block-encryption.ts)
 * against a fake /sys. The run itself, as root with a real account: test/host/migrate-out.test.ts.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AgentError } from '../../src/errors';
import { DEFAULT_SALT, deriveKey, FNEK_SALT } from '../../src/formats/kdf';
import type { MountInfoEntry } from '../../src/formats/mountinfo';
import { exportKeysOf, exportTree, verifyTree } from '../../src/actions/export';
import { parseMigrateOutJournal, migrateOutLayout, type MigrateOutJournal } from '../../src/actions/migrate-out';
import { blockEncryptionOf, mountOf } from '../../src/os/block-encryption';
import { WRITER_CIPHERS, writeLowerFile, writeLowerName } from '../helpers/ecryptfs-writer';

const tmp = fs.mkdtempSync(join(tmpdir(), 'migrate-out-unit-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const PASS = Buffer.from('migrate-out unit mount passphrase');
const fek = deriveKey(PASS, DEFAULT_SALT);
const fnek = deriveKey(PASS, FNEK_SALT);
const aes = WRITER_CIPHERS[0]!;
const name = (s: string): string => writeLowerName(Buffer.from(s), aes, fnek.key, fnek.sig);

/** A lower tree with encrypted names: files of 0, 1, 4097 and 300 KiB (more than one read of
 * 64 extents), a directory, a symlink, modes other than the default. */
function lowerTree(root: string): Map<string, Buffer> {
  const plain = new Map<string, Buffer>([
    ['empty', Buffer.alloc(0)],
    ['one', Buffer.from('x')],
    ['page-and-one', crypto.randomBytes(4097)],
    ['sub/big.bin', crypto.randomBytes(300 * 1024)],
  ]);
  fs.mkdirSync(join(root, name('sub')), { recursive: true });
  for (const [p, data] of plain) {
    const lowerPath = join(root, ...p.split('/').map(name));
    fs.writeFileSync(lowerPath, writeLowerFile(data, aes, fek.key, fek.sig).lower);
  }
  fs.chmodSync(join(root, name('one')), 0o640);
  fs.chmodSync(join(root, name('sub')), 0o750);
  fs.symlinkSync(name('sub/big.bin'), join(root, name('link')));
  return plain;
}

const differences = (lower: string, copy: string): string[] => {
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  try {
    return verifyTree(lower, copy, keys).differences;
  } finally {
    keys.wipe();
  }
};

test('verifyTree: an exported copy matches the plaintext decrypted anew, file by file', () => {
  const lower = join(tmp, 'lower-ok');
  lowerTree(lower);
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  const copy = join(tmp, 'copy-ok');
  assert.deepEqual(exportTree(lower, copy, keys).problems, []);
  const v = verifyTree(lower, copy, keys);
  keys.wipe();
  assert.deepEqual(v.differences, []);
  assert.deepEqual([v.files, v.dirs, v.symlinks, v.bytes], [4, 1, 1, 0 + 1 + 4097 + 300 * 1024]);
});

test('verifyTree: every kind of difference is named, none is missed', () => {
  const lower = join(tmp, 'lower-diff');
  const plain = lowerTree(lower);
  const fresh = (label: string): string => {
    const copy = join(tmp, `copy-${label}`);
    const keys = exportKeysOf(PASS, DEFAULT_SALT);
    exportTree(lower, copy, keys);
    keys.wipe();
    return copy;
  };
  const cases: Array<[string, (copy: string) => void, RegExp]> = [
    ['flipped', (c) => {
      const f = join(c, 'sub', 'big.bin');
      const b = fs.readFileSync(f);
      b[200_000]! ^= 1;
      fs.writeFileSync(f, b);
    }, /sub\/big\.bin: its bytes differ from the plaintext \(SHA-256\)/],
    ['short', (c) => fs.truncateSync(join(c, 'page-and-one'), 4096), /page-and-one: 4096 bytes, the plaintext has 4097/],
    ['extra', (c) => fs.writeFileSync(join(c, 'sub', 'stray'), 'x'), /sub\/stray: not in the encrypted directory/],
    ['missing', (c) => fs.rmSync(join(c, 'one')), /one: missing from the copy/],
    ['mode', (c) => fs.chmodSync(join(c, 'one'), 0o600), /one: mode 600, want 640/],
    ['kind', (c) => {
      fs.rmSync(join(c, 'empty'));
      fs.mkdirSync(join(c, 'empty'));
    }, /empty: a directory in the copy, a file in the encrypted directory/],
    ['target', (c) => {
      fs.rmSync(join(c, 'link'));
      fs.symlinkSync('elsewhere', join(c, 'link'));
    }, /link: its target differs/],
  ];
  for (const [label, spoil, want] of cases) {
    const copy = fresh(label);
    assert.deepEqual(differences(lower, copy), [], `${label}: clean before`);
    spoil(copy);
    const d = differences(lower, copy);
    assert.equal(d.length, 1, `${label}: ${d.join(' | ')}`);
    assert.match(d[0]!, want, label);
  }
  assert.equal(plain.size, 4);
});

test('verifyTree: a wrong key finds differences, never a match', () => {
  const lower = join(tmp, 'lower-key');
  lowerTree(lower);
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  const copy = join(tmp, 'copy-key');
  exportTree(lower, copy, keys);
  keys.wipe();
  const other = exportKeysOf(Buffer.from('another mount passphrase'), DEFAULT_SALT);
  const v = verifyTree(lower, copy, other);
  other.wipe();
  assert.ok(v.differences.length >= 5, v.differences.join(' | '));
  assert.equal(v.files, 0);
});

const journal = (over: Partial<MigrateOutJournal> = {}): MigrateOutJournal => ({
  version: 1,
  target: 'plain',
  user: 'alice',
  uid: 1001,
  ...migrateOutLayout({ lower: '/home/alice/.Private', upper: '/home/alice/Private', configDir: '/home/alice/.ecryptfs' }),
  phase: 'exported',
  started: '2026-12-07T21:00:00.000Z',
  ...over,
});

test('migrateOutLayout: the copy beside the mount point, ~/.ecryptfs moved to .migrated-out', () => {
  const j = journal();
  assert.deepEqual([j.staging, j.keptConfigDir], ['/home/alice/Private.migrate-out', '/home/alice/.ecryptfs.migrated-out']);
  assert.equal(migrateOutLayout({ lower: '/h/.Private', upper: '/h/Secret/Box', configDir: '/h/.ecryptfs' }).staging, '/h/Secret/Box.migrate-out');
});

test('the journal: round trip; every damaged field is BAD_CONFIG with the way out', () => {
  const j = journal({ previousExpiry: '' });
  assert.deepEqual(parseMigrateOutJournal(JSON.stringify(j), 'f'), j);
  const f = journal({ target: 'fscrypt', fscryptPolicy: '8467093d8208ea34faf239bcaf8cc47f' });
  assert.deepEqual(parseMigrateOutJournal(JSON.stringify(f), 'f'), f);
  const bad: Array<[string, string]> = [
    ['not JSON', '{'],
    ['version 2', JSON.stringify({ ...j, version: 2 })],
    ['target zfs', JSON.stringify({ ...j, target: 'zfs' })],
    ['fscryptPolicy malformed', JSON.stringify({ ...f, fscryptPolicy: '../x' })],
    ['staging is not absolute', JSON.stringify({ ...j, staging: 'Private.migrate-out' })],
    ['phase copied', JSON.stringify({ ...j, phase: 'copied' })],
    ['uid missing', JSON.stringify({ ...j, uid: -1 })],
    ['user missing', JSON.stringify({ ...j, user: '' })],
    ['previousExpiry malformed', JSON.stringify({ ...j, previousExpiry: '1;rm' })],
  ];
  for (const [why, text] of bad) {
    assert.throws(() => parseMigrateOutJournal(text, '/var/lib/x.json'), (e: unknown) => e instanceof AgentError && e.code === 'BAD_CONFIG' && e.message.includes(why) && /untouched until --finish/.test(e.hint ?? ''), why);
  }
});

const mount = (mountPoint: string, major: number, minor: number, source: string): MountInfoEntry =>
  ({ mountId: 1, parentId: 0, major, minor, root: '/', mountPoint, mountOptions: 'rw', optionalFields: [], fsType: 'ext4', source, superOptions: 'rw' });

test('mountOf: the longest mount point above the path, not a sibling with the same prefix', () => {
  const ms = [mount('/', 8, 1, '/dev/sda1'), mount('/home', 253, 1, '/dev/mapper/vg-home'), mount('/home2', 8, 3, '/dev/sda3')];
  assert.equal(mountOf('/home/alice/Private', ms)?.source, '/dev/mapper/vg-home');
  assert.equal(mountOf('/home2/bob', ms)?.source, '/dev/sda3');
  assert.equal(mountOf('/var/x', ms)?.source, '/dev/sda1');
});

test('blockEncryptionOf: dm-crypt at or below the device (LVM on LUKS), a plain partition, not a block device', () => {
  const sys = join(tmp, 'sys');
  const dev = (n: string, uuid?: string, slaves: string[] = []): string => {
    const d = join(sys, 'devices', 'virtual', 'block', n);
    fs.mkdirSync(join(d, 'slaves'), { recursive: true });
    if (uuid !== undefined) {
      fs.mkdirSync(join(d, 'dm'), { recursive: true });
      fs.writeFileSync(join(d, 'dm', 'uuid'), `${uuid}\n`);
    }
    for (const s of slaves) fs.symlinkSync(join(sys, 'devices', 'virtual', 'block', s), join(d, 'slaves', s));
    return d;
  };
  dev('dm-0', 'CRYPT-LUKS2-0123456789abcdef-sda2_crypt');
  const lvm = dev('dm-1', 'LVM-abcdef', ['dm-0']);
  const partition = join(sys, 'devices', 'pci', 'sda', 'sda3');
  fs.mkdirSync(partition, { recursive: true });
  fs.mkdirSync(join(sys, 'dev', 'block'), { recursive: true });
  fs.symlinkSync(lvm, join(sys, 'dev', 'block', '253:1'));
  fs.symlinkSync(partition, join(sys, 'dev', 'block', '8:3'));
  const ms = [mount('/', 0, 21, 'overlay'), mount('/home', 253, 1, '/dev/mapper/vg-home'), mount('/srv', 8, 3, '/dev/sda3')];
  assert.deepEqual(blockEncryptionOf('/home/alice/Private', ms, sys), { mountPoint: '/home', source: '/dev/mapper/vg-home', encrypted: true, cryptDevice: 'dm-0' });
  assert.equal(blockEncryptionOf('/srv/data', ms, sys)?.encrypted, false);
  assert.equal(blockEncryptionOf('/root', ms, sys)?.encrypted, null);
});

test('exportTree and verifyTree with names kept at the top of the copy (fscrypt\'s recovery readme): kept there, a difference anywhere else', () => {
  const lower = join(tmp, 'lower-keep');
  lowerTree(lower);
  const copy = join(tmp, 'copy-keep');
  fs.mkdirSync(copy, { mode: 0o700 });
  fs.writeFileSync(join(copy, 'fscrypt_recovery_readme.txt'), 'recovery passphrase: …\n');
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  try {
    // without keep, a destination holding anything is refused, nothing written
    assert.throws(() => exportTree(lower, copy, keys), (e: unknown) => e instanceof AgentError && e.code === 'ALREADY_EXISTS');
    assert.deepEqual(fs.readdirSync(copy), ['fscrypt_recovery_readme.txt']);
    const keep = ['fscrypt_recovery_readme.txt'];
    assert.deepEqual(exportTree(lower, copy, keys, undefined, { keep }).problems, []);
    assert.deepEqual(verifyTree(lower, copy, keys, { keep }).differences, []);
    assert.match(verifyTree(lower, copy, keys).differences.join('\n'), /fscrypt_recovery_readme\.txt: not in the encrypted directory/);
    // the kept name is kept at the top only
    fs.writeFileSync(join(copy, 'sub', 'fscrypt_recovery_readme.txt'), 'x');
    assert.match(verifyTree(lower, copy, keys, { keep }).differences.join('\n'), /sub\/fscrypt_recovery_readme\.txt: not in the encrypted directory/);
  } finally {
    keys.wipe();
  }
});

test('hard links: exportTree links the copy as the lower file is linked; verifyTree names links that differ either way', () => {
  const lower = join(tmp, 'lower-links');
  lowerTree(lower);
  // a second and a third name of sub/big.bin, as the kernel keeps a link made through the mount
  fs.linkSync(join(lower, name('sub'), name('big.bin')), join(lower, name('big-again')));
  fs.linkSync(join(lower, name('sub'), name('big.bin')), join(lower, name('sub'), name('big-third')));
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  try {
    const copy = join(tmp, 'copy-links');
    const s = exportTree(lower, copy, keys);
    assert.deepEqual([s.problems, s.files, s.hardlinks], [[], 4, 2]);
    const ino = fs.statSync(join(copy, 'sub', 'big.bin')).ino;
    assert.deepEqual([fs.statSync(join(copy, 'big-again')).ino, fs.statSync(join(copy, 'sub', 'big-third')).ino], [ino, ino]);
    assert.equal(fs.statSync(join(copy, 'sub', 'big.bin')).nlink, 3);
    const v = verifyTree(lower, copy, keys);
    assert.deepEqual([v.differences, v.files, v.hardlinks], [[], 4, 2]);
    // one name of the link made a separate file (the same bytes, the same mode): a difference
    const again = join(copy, 'big-again');
    const bytes = fs.readFileSync(again);
    const mode = fs.statSync(again).mode & 0o7777;
    fs.unlinkSync(again);
    fs.writeFileSync(again, bytes);
    fs.chmodSync(again, mode);
    // (which names are named depends on the order the directories list them in)
    const d = verifyTree(lower, copy, keys).differences;
    assert.ok(d.length > 0 && d.every((x) => /(big-again|big\.bin|big-third): hard links differ: not linked as its names are in the encrypted directory$/.test(x)), d.join('\n'));
    fs.unlinkSync(again);
    fs.linkSync(join(copy, 'sub', 'big.bin'), again);
    assert.deepEqual(verifyTree(lower, copy, keys).differences, []);
    // and two separate lower files linked in the copy: a difference too
    fs.unlinkSync(join(copy, 'one'));
    fs.linkSync(join(copy, 'page-and-one'), join(copy, 'one'));
    assert.match(verifyTree(lower, copy, keys).differences.join('\n'), /(one|page-and-one): (hard links differ|mode|\d+ bytes)/);
  } finally {
    keys.wipe();
  }
});
