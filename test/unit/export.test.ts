/**
 * Reading eCryptfs without the kernel module: src/formats/{lower-format,ecryptfs-file,ecryptfs-name}.ts
 * against the lower directories the Debian 6.1 kernel wrote (test/fixtures/recovery), and
 * src/actions/export.ts on trees made from them and from the test writer (test/helpers/ecryptfs-writer.ts,
 * itself checked byte for byte against the kernel's output first).
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import { AgentError } from '../../src/errors';
import { DEFAULT_SALT, deriveKey, FNEK_SALT } from '../../src/formats/kdf';
import { HEADER_FLAG, parseEcryptfsHeader, type PassphraseKeyPacket } from '../../src/formats/lower-format';
import { decryptExtent, decryptExtents, extentCount, extentIv, unwrapFileKey } from '../../src/formats/ecryptfs-file';
import { decryptName, parseEncryptedName } from '../../src/formats/ecryptfs-name';
import { enableOpensslLegacyCiphers } from '../../src/os/ciphers';
import { native } from '../../src/os/native';
import { exportKeysFor, exportKeysOf, exportTree } from '../../src/actions/export';
import { wrapPassphrase } from '../../src/formats/wrapped-passphrase';
import { WRITER_CIPHERS, writeLowerFile, writeLowerName } from '../helpers/ecryptfs-writer';

interface Fixture {
  mountPassphrase: string;
  fekSig: string;
  fnekSig?: string;
  entries: Array<{ path: string; type: 'dir' | 'file'; size?: number; gzipBase64?: string }>;
}
const FIXTURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'recovery');
const load = (name: string): Fixture => JSON.parse(fs.readFileSync(join(FIXTURES, `lower-${name}.json`), 'utf8')) as Fixture;
const fnek = load('fnek');
const plain = load('plain');
const bytes = (e: Fixture['entries'][number]): Buffer => gunzipSync(Buffer.from(e.gzipBase64 as string, 'base64'));
const PASS = Buffer.from(fnek.mountPassphrase);
const sek = deriveKey(PASS, DEFAULT_SALT).key;
const fnekSek = deriveKey(PASS, FNEK_SALT).key;
const legacy = enableOpensslLegacyCiphers();

function decryptWhole(lower: Buffer): { plain: Buffer; padding: Buffer } {
  const h = parseEcryptfsHeader(lower);
  const fk = unwrapFileKey(h.keyPackets[0] as PassphraseKeyPacket, sek);
  const parts: Buffer[] = [];
  for (let i = 0; i < extentCount(h.plaintextSize); i++) parts.push(decryptExtent(fk, i, lower.subarray(h.metadataBytes + i * 4096, h.metadataBytes + (i + 1) * 4096)));
  const all = Buffer.concat(parts);
  return { plain: all.subarray(0, Number(h.plaintextSize)), padding: all.subarray(Number(h.plaintextSize)) };
}

test('kernel fixtures: headers parse fully (flags, version 3, 8 KiB header, one tag 3 for the FEK sig, AES-128)', () => {
  for (const f of [fnek, plain]) {
    for (const e of f.entries.filter((x) => x.type === 'file')) {
      const h = parseEcryptfsHeader(bytes(e));
      assert.equal(h.fileVersion, 3);
      assert.equal(h.flags & HEADER_FLAG.ENCRYPTED, HEADER_FLAG.ENCRYPTED);
      assert.equal(h.flags & HEADER_FLAG.ENCRYPT_FILENAMES, f === fnek ? HEADER_FLAG.ENCRYPT_FILENAMES : 0);
      assert.equal(h.flags & HEADER_FLAG.METADATA_IN_XATTR, 0);
      assert.equal(h.metadataBytes, 8192);
      assert.equal(h.keyPackets.length, 1);
      const p = h.keyPackets[0] as PassphraseKeyPacket;
      assert.equal(p.kind, 'passphrase');
      assert.equal(p.sig, f.fekSig);
      assert.equal(p.cipherCode, 0x07);
      assert.equal(p.encryptedKey.length, 16);
    }
  }
});

test('kernel fixtures: contents decrypt (hello.txt exactly; the 5000-byte file with the kernel\'s zero fill after its end)', () => {
  for (const f of [fnek, plain]) {
    const [hello, random] = f.entries.filter((x) => x.type === 'file');
    assert.equal(decryptWhole(bytes(hello!)).plain.toString(), 'hello recovery\n');
    const r = decryptWhole(bytes(random!));
    assert.equal(r.plain.length, 5000);
    assert.equal(r.padding.length, 8192 - 5000);
    // a wrong IV or key would turn these 3192 bytes into noise: the whole last extent is checked
    assert.ok(r.padding.equals(Buffer.alloc(r.padding.length)), 'zero fill after the end');
    assert.ok(!r.plain.equals(Buffer.alloc(5000)));
  }
});

test('kernel fixtures: names decrypt (ECB, deterministic prefix), a wrong FNEK is WRONG_MOUNT_PASSPHRASE', () => {
  const names = fnek.entries.map((e) => e.path.split('/').map((p) => decryptName(parseEncryptedName(p)!, fnekSek).toString()).join('/'));
  assert.deepEqual(names, ['hello.txt', 'sub', 'sub/random.bin']);
  const other = deriveKey(Buffer.from('another passphrase'), FNEK_SALT).key;
  assert.throws(() => decryptName(parseEncryptedName(fnek.entries[0]!.path)!, other), (e: unknown) => e instanceof AgentError && e.code === 'WRONG_MOUNT_PASSPHRASE');
  assert.equal(parseEncryptedName('hello.txt'), null, 'a plaintext name is shown as it is');
});

test('the test writer reproduces the kernel byte for byte (names; extents with the file\'s own FEK)', () => {
  const aes128 = WRITER_CIPHERS[0]!;
  assert.equal(writeLowerName(Buffer.from('hello.txt'), aes128, fnekSek, fnek.fnekSig!), fnek.entries[0]!.path);
  assert.equal(writeLowerName(Buffer.from('sub'), aes128, fnekSek, fnek.fnekSig!), fnek.entries[1]!.path);
  for (const e of plain.entries.filter((x) => x.type === 'file')) {
    const lower = bytes(e);
    const fek = unwrapFileKey(parseEcryptfsHeader(lower).keyPackets[0] as PassphraseKeyPacket, sek).key;
    const again = writeLowerFile(decryptWhole(lower).plain, aes128, sek, plain.fekSig, { fek }).lower;
    assert.ok(again.subarray(8192).equals(lower.subarray(8192)), `${e.path}: same extents`);
  }
});

test('extent IVs: MD5(root IV || decimal extent number NUL-padded to 16) (ecryptfs_derive_iv)', () => {
  const root = Buffer.alloc(16, 0xab);
  const src = Buffer.concat([root, Buffer.from('1234567'), Buffer.alloc(9)]);
  assert.deepEqual(extentIv(root, 1234567), crypto.createHash('md5').update(src).digest());
});

test(`every cipher and key size round-trips: contents of 0..8193 bytes, names, AES-192's 32-byte wrapped key${legacy ? '' : ' (blowfish/cast5 skipped: no OpenSSL legacy provider)'}`, () => {
  for (const c of WRITER_CIPHERS) {
    if ((c.ecb.startsWith('bf') || c.ecb.startsWith('cast5')) && !legacy) continue;
    for (const size of [0, 1, 4095, 4096, 4097, 8193]) {
      const data = crypto.randomBytes(size);
      const { lower } = writeLowerFile(data, c, sek, fnek.fekSig);
      const h = parseEcryptfsHeader(lower);
      assert.equal((h.keyPackets[0] as PassphraseKeyPacket).encryptedKey.length, c.code === 0x08 ? 32 : c.keyBytes);
      assert.ok(decryptWhole(lower).plain.equals(data), `${c.cbc}/${c.keyBytes}: ${size} bytes`);
    }
    // a batch from extent 1 on (ECB pass + XOR) equals CBC per extent as the writer did it
    const data = crypto.randomBytes(70 * 4096 + 1);
    const { lower } = writeLowerFile(data, c, sek, fnek.fekSig);
    const fk = unwrapFileKey(parseEcryptfsHeader(lower).keyPackets[0] as PassphraseKeyPacket, sek);
    assert.ok(decryptExtents(fk, 1, lower.subarray(8192 + 4096)).subarray(0, data.length - 4096).equals(data.subarray(4096)), `${c.cbc}: batch`);
    const unaligned = Buffer.concat([Buffer.alloc(1), lower.subarray(8192, 8192 + 3 * 4096)]).subarray(1); // the byte-wise XOR
    assert.ok(decryptExtents(fk, 0, unaligned).equals(data.subarray(0, 3 * 4096)), `${c.cbc}: batch, unaligned buffer`);
    const long = Buffer.from('x'.repeat(140) + 'é');
    assert.ok(decryptName(parseEncryptedName(writeLowerName(long, c, fnekSek, fnek.fnekSig!))!, fnekSek).equals(long), `${c.ecb}/${c.keyBytes}: a 142-byte name`);
  }
});

test('twofish and cast6 are a typed CIPHER_UNAVAILABLE, not garbage', () => {
  for (const code of [0x0a, 0x0b]) {
    const packet: PassphraseKeyPacket = { kind: 'passphrase', sig: fnek.fekSig, cipherCode: code, encryptedKey: Buffer.alloc(16) };
    assert.throws(() => unwrapFileKey(packet, sek), (e: unknown) => e instanceof AgentError && e.code === 'CIPHER_UNAVAILABLE' && /not in OpenSSL/.test(e.hint));
  }
});

// ------------------------------------------------------------------ exportTree

const tmp = fs.mkdtempSync(join(tmpdir(), 'export-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function materialize(f: Fixture, root: string): void {
  for (const e of f.entries) {
    const p = join(root, e.path);
    if (e.type === 'dir') fs.mkdirSync(p, { recursive: true });
    else {
      fs.mkdirSync(dirname(p), { recursive: true });
      fs.writeFileSync(p, bytes(e));
    }
  }
}

test('exportTree: a kernel-written tree with filename encryption, plus a passthrough file, a symlink, a moved-in file and a truncated one', () => {
  const lower = join(tmp, 'lower');
  materialize(fnek, lower);
  const aes = WRITER_CIPHERS[0]!;
  const name = (s: string): string => writeLowerName(Buffer.from(s), aes, fnekSek, fnek.fnekSig!);
  fs.writeFileSync(join(lower, 'plain-passthrough.txt'), 'not encrypted\n');
  fs.symlinkSync(name('sub/random.bin'), join(lower, name('link')));
  fs.chmodSync(join(lower, fnek.entries[0]!.path), 0o640);
  fs.utimesSync(join(lower, fnek.entries[0]!.path), 1_000_000, 1_500_000);
  const otherSek = deriveKey(Buffer.from('another passphrase'), DEFAULT_SALT);
  fs.writeFileSync(join(lower, name('moved-in')), writeLowerFile(Buffer.from('x'), aes, otherSek.key, otherSek.sig).lower);
  const big = writeLowerFile(crypto.randomBytes(9000), aes, sek, fnek.fekSig).lower;
  fs.writeFileSync(join(lower, name('truncated')), big.subarray(0, big.length - 1));
  const keys = exportKeysOf(PASS, DEFAULT_SALT);
  const dest = join(tmp, 'out');
  const seen: string[] = [];
  const s = exportTree(lower, dest, keys, (p) => seen.push(p.lower));
  assert.deepEqual(
    s.problems.map((p) => [p.lower.endsWith(name('moved-in')) ? 'moved-in' : p.lower.endsWith(name('truncated')) ? 'truncated' : p.lower, p.error.code]).sort(),
    [['moved-in', 'WRONG_MOUNT_PASSPHRASE'], ['truncated', 'CORRUPT_FILE']],
  );
  assert.equal(seen.length, 2);
  assert.equal(fs.readFileSync(join(dest, 'hello.txt'), 'utf8'), 'hello recovery\n');
  assert.equal(fs.statSync(join(dest, 'hello.txt')).mode & 0o777, 0o640);
  assert.equal(fs.statSync(join(dest, 'hello.txt')).mtimeMs, 1_500_000_000);
  assert.equal(fs.statSync(join(dest, 'sub', 'random.bin')).size, 5000);
  assert.equal(fs.readFileSync(join(dest, 'plain-passthrough.txt'), 'utf8'), 'not encrypted\n');
  assert.equal(fs.readlinkSync(join(dest, 'link')), 'sub/random.bin');
  assert.deepEqual(fs.readdirSync(dest).sort(), ['hello.txt', 'link', 'plain-passthrough.txt', 'sub'], 'no partial file left for the failures');
  assert.deepEqual([s.files, s.passthrough, s.dirs, s.symlinks, s.bytes], [3, 1, 1, 1, 5015 + 14]);
  keys.wipe();
});

test('exportTree: DEST that is not empty is refused before anything is written', () => {
  const lower = join(tmp, 'lower2');
  materialize(plain, lower);
  const dest = join(tmp, 'busy');
  fs.mkdirSync(dest);
  fs.writeFileSync(join(dest, 'keep'), 'x');
  assert.throws(() => exportTree(lower, dest, exportKeysOf(PASS, DEFAULT_SALT)), (e: unknown) => e instanceof AgentError && e.code === 'ALREADY_EXISTS');
  assert.deepEqual(fs.readdirSync(dest), ['keep']);
});

test('exportTree: a header kept in the user.ecryptfs xattr (ecryptfs_xattr_metadata): data from offset 0', (t) => {
  const lower = join(tmp, 'lower-xattr');
  fs.mkdirSync(lower);
  const data = crypto.randomBytes(5000);
  const w = writeLowerFile(data, WRITER_CIPHERS[0]!, sek, fnek.fekSig, { inXattr: true });
  const file = join(lower, 'in-xattr.bin');
  fs.writeFileSync(file, w.lower);
  try {
    native().pathSetxattr(file, 'user.ecryptfs', w.header, 0, true);
  } catch (e) {
    t.skip(`no user xattrs on ${tmp}: ${(e as Error).message}`);
    return;
  }
  assert.equal(parseEcryptfsHeader(w.header, true).flags & HEADER_FLAG.METADATA_IN_XATTR, HEADER_FLAG.METADATA_IN_XATTR);
  const dest = join(tmp, 'out-xattr');
  const s = exportTree(lower, dest, exportKeysOf(PASS, DEFAULT_SALT));
  assert.deepEqual(s.problems, []);
  assert.ok(fs.readFileSync(join(dest, 'in-xattr.bin')).equals(data));
});

test('exportKeysFor: the wrapped-passphrase file + its password, checked against the directory; wrong ones are typed and early', () => {
  const lower = join(tmp, 'lower-wrapped');
  materialize(fnek, lower);
  const wrapped = join(tmp, 'wrapped-passphrase');
  fs.writeFileSync(wrapped, wrapPassphrase(PASS, Buffer.from('login pw'), Buffer.from('0102030405060708', 'hex')));
  const header = { path: join(lower, fnek.entries[0]!.path), keySigs: [fnek.fekSig] };
  const source = { lower, salt: DEFAULT_SALT, notes: [], wrappedPath: wrapped, evidence: { scanned: 1, nestedPrivate: [], header, encryptedName: { path: header.path, fnekSig: fnek.fnekSig! } } };
  const { keys, checkedAgainst } = exportKeysFor(source, { kind: 'wrapped', secret: Buffer.from('login pw') });
  assert.deepEqual([keys.fekSig, keys.fnekSig], [fnek.fekSig, fnek.fnekSig]);
  assert.equal(checkedAgainst.length, 2);
  keys.wipe();
  assert.ok(keys.fekSek.equals(Buffer.alloc(64)), 'wipe() zeroes the keys');
  assert.throws(() => exportKeysFor(source, { kind: 'wrapped', secret: Buffer.from('other pw') }), (e: unknown) => e instanceof AgentError && e.code === 'WRONG_PASSWORD');
  const otherWrapped = join(tmp, 'wrapped-other');
  fs.writeFileSync(otherWrapped, wrapPassphrase(Buffer.from('another mount passphrase'), Buffer.from('login pw'), Buffer.from('0102030405060708', 'hex')));
  assert.throws(
    () => exportKeysFor({ ...source, wrappedPath: otherWrapped }, { kind: 'wrapped', secret: Buffer.from('login pw') }),
    (e: unknown) => e instanceof AgentError && e.code === 'SIG_MISMATCH',
  );
  assert.throws(() => exportKeysFor(source, { kind: 'mount-passphrase', secret: Buffer.from('wrong') }), (e: unknown) => e instanceof AgentError && e.code === 'WRONG_MOUNT_PASSPHRASE');
});
