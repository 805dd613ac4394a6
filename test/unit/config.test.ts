import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAliasConf, parseEcryptfsrcSalt, parsePrivateMnt, parsePrivateSig, renderPrivateSig } from '../../src/formats/config';
import { isAgentError, type ErrorCode } from '../../src/errors';

const b = (s: string | Buffer): Buffer => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1'));
function fails(expected: ErrorCode, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(isAgentError(e), String(e));
    assert.equal(e.code, expected);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

test('Private.sig: one or two lines, as ecryptfs-setup-private writes it', () => {
  assert.deepEqual(parsePrivateSig(b('2eb5a49ebe845786\n')), { fekSig: '2eb5a49ebe845786' });
  assert.deepEqual(parsePrivateSig(b('2eb5a49ebe845786\n054ad0eaff33ed88\n')), { fekSig: '2eb5a49ebe845786', fnekSig: '054ad0eaff33ed88' });
  assert.deepEqual(parsePrivateSig(b('2eb5a49ebe845786')), { fekSig: '2eb5a49ebe845786' });
  assert.deepEqual(parsePrivateSig(b('2EB5A49EBE845786 \t\n\n')), { fekSig: '2EB5A49EBE845786' }, 'case kept, whitespace cut');
  assert.deepEqual(parsePrivateSig(b('2eb5a49ebe845786\n054ad0eaff33ed88\nthird line ignored')).fnekSig, '054ad0eaff33ed88');
});

test('Private.sig: errors name the line', () => {
  assert.throws(() => parsePrivateSig(b('')), fails('BAD_SIG', /line 1: missing/));
  assert.throws(() => parsePrivateSig(b('\n054ad0eaff33ed88\n')), fails('BAD_SIG', /line 1: missing/));
  assert.throws(() => parsePrivateSig(b('2eb5a49ebe84578\n')), fails('BAD_SIG', /line 1: invalid hex signature length 15/));
  assert.throws(() => parsePrivateSig(b('2eb5a49ebe8457860\n')), fails('BAD_SIG', /length 17/));
  assert.throws(() => parsePrivateSig(b('2eb5a49ebe845786\n054ad0eaff33ed8g\n')), fails('BAD_SIG', /line 2: invalid hex signature$/));
  assert.throws(() => parsePrivateSig(b(Buffer.from([0xff, 0x0a]))), fails('BAD_SIG', /line 1/));
  assert.throws(() => parsePrivateSig(Buffer.alloc(4097, 0x30)), fails('BAD_CONFIG'));
});

test("Private.sig: whitespace is C's isspace() in the C locale (ASCII), as mount.ecryptfs_private checks it", () => {
  // trailing ASCII whitespace ends the sig: space, \t, \v, \f, \r (a CRLF file)
  for (const ws of [' ', '\t', '\v', '\f', '\r', ' \t\v\f\r']) {
    assert.deepEqual(parsePrivateSig(b(`2eb5a49ebe845786${ws}\n054ad0eaff33ed88${ws}\n`)), { fekSig: '2eb5a49ebe845786', fnekSig: '054ad0eaff33ed88' }, JSON.stringify(ws));
  }
  // U+00A0 (byte 0xa0, a no-break space in Latin-1) is not whitespace there: not hex, refused
  assert.throws(() => parsePrivateSig(b('2eb5a49ebe845786\xa0\n')), fails('BAD_SIG', /line 1: invalid hex signature$/));
  assert.throws(() => parsePrivateSig(b('2eb5a49ebe845786\n054ad0eaff33ed88\xa0\n')), fails('BAD_SIG', /line 2: invalid hex signature$/));
  assert.throws(() => parsePrivateSig(b('\xa02eb5a49ebe845786\n')), fails('BAD_SIG', /line 1: invalid hex signature$/));
  assert.throws(() => parsePrivateSig(b('2eb5a49e\xa0be845786\n')), fails('BAD_SIG', /line 1: invalid hex signature$/));
  // nor are the other Unicode spaces UTF-8 would bring (U+2003 EM SPACE, U+3000)
  assert.throws(() => parsePrivateSig(Buffer.from('2eb5a49ebe845786\u2003\n')), fails('BAD_SIG', /line 1: invalid hex signature$/));
  assert.throws(() => parsePrivateSig(Buffer.from('2eb5a49ebe845786\u3000\n')), fails('BAD_SIG', /line 1: invalid hex signature$/));
});

test('renderPrivateSig round-trips and refuses bad sigs', () => {
  const sigs = { fekSig: '2eb5a49ebe845786', fnekSig: '054ad0eaff33ed88' };
  assert.equal(renderPrivateSig(sigs).toString(), '2eb5a49ebe845786\n054ad0eaff33ed88\n');
  assert.deepEqual(parsePrivateSig(renderPrivateSig(sigs)), sigs);
  assert.equal(renderPrivateSig({ fekSig: '2eb5a49ebe845786' }).length, 17);
  assert.throws(() => renderPrivateSig({ fekSig: '2eb5a49ebe84578' }), fails('BAD_SIG'));
  assert.throws(() => renderPrivateSig({ fekSig: '2eb5a49ebe845786', fnekSig: '2eb5a49ebe845786\n' }), fails('BAD_SIG'));
});

test('Private.mnt: first line, default, absolute, no control characters, UTF-8', () => {
  assert.equal(parsePrivateMnt(undefined, '/home/u'), '/home/u/Private');
  assert.equal(parsePrivateMnt(undefined, '/home/u/'), '/home/u/Private');
  assert.equal(parsePrivateMnt(b('/home/u/Secret\n'), '/home/u'), '/home/u/Secret');
  assert.equal(parsePrivateMnt(b('/home/u/Secret\n/etc\n'), '/home/u'), '/home/u/Secret');
  assert.equal(parsePrivateMnt(Buffer.from('/home/u/Prívät with space'), '/home/u'), '/home/u/Prívät with space');
  assert.throws(() => parsePrivateMnt(b('\n'), '/home/u'), fails('BAD_CONFIG', /empty/));
  assert.throws(() => parsePrivateMnt(b('relative/dir\n'), '/home/u'), fails('BAD_CONFIG', /absolute/));
  assert.throws(() => parsePrivateMnt(b('/home/u/a\0/etc'), '/home/u'), fails('BAD_CONFIG', /control/));
  assert.throws(() => parsePrivateMnt(b('/home/u/a\r\n'), '/home/u'), fails('BAD_CONFIG', /control/));
  assert.throws(() => parsePrivateMnt(Buffer.from([0x2f, 0xff, 0xfe]), '/home/u'), fails('BAD_CONFIG', /UTF-8/));
  assert.throws(() => parsePrivateMnt(Buffer.alloc(5000, 0x2f), '/home/u'), fails('BAD_CONFIG', /4096/));
});

test('.ecryptfsrc salt', () => {
  assert.equal(parseEcryptfsrcSalt(b('salt=0102030405060708\n'))?.toString('hex'), '0102030405060708');
  assert.equal(parseEcryptfsrcSalt(b('# comment\nkey=value\n  salt = A1B2C3D4E5F60718 \n'))?.toString('hex'), 'a1b2c3d4e5f60718');
  assert.equal(parseEcryptfsrcSalt(b('')), undefined);
  assert.equal(parseEcryptfsrcSalt(b('saltx=0102030405060708\n')), undefined);
  assert.throws(() => parseEcryptfsrcSalt(b('salt=01020304\n')), fails('BAD_CONFIG', /line 1/));
  assert.throws(() => parseEcryptfsrcSalt(b('\nsalt=zz02030405060708\n')), fails('BAD_CONFIG', /line 2/));
  assert.throws(() => parseEcryptfsrcSalt(Buffer.alloc(4097, 0x20)), fails('BAD_CONFIG'));
});

test('alias .conf: fstab line with getmntent escapes', () => {
  assert.deepEqual(parseAliasConf(b('/home/u/.Secret /home/u/Secret ecryptfs\n')), { lower: '/home/u/.Secret', upper: '/home/u/Secret' });
  assert.deepEqual(parseAliasConf(b('# c\n\n/a\\040b\t/c\\134d  ecryptfs none 0 0\n')), { lower: '/a b', upper: '/c\\d' });
  assert.throws(() => parseAliasConf(b('/a /b ext4\n')), fails('BAD_CONFIG', /bad fs type/));
  assert.throws(() => parseAliasConf(b('/a /b ecryptfs rw,ecryptfs_sig=x\n')), fails('BAD_CONFIG', /options are not supported/));
  assert.throws(() => parseAliasConf(b('/a /b\n')), fails('BAD_CONFIG', /expected/));
  assert.throws(() => parseAliasConf(b('a /b ecryptfs\n')), fails('BAD_CONFIG', /absolute/));
  assert.throws(() => parseAliasConf(b('/a\\012/etc /b ecryptfs\n')), fails('BAD_CONFIG', /control/));
  assert.throws(() => parseAliasConf(b('# only a comment\n')), fails('BAD_CONFIG', /no mount entry/));
  assert.throws(() => parseAliasConf(Buffer.from([0x2f, 0xc3, 0x20, 0x2f, 0x62])), fails('BAD_CONFIG', /UTF-8/));
});
