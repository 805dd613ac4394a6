/**
 * What migrate-out --to fscrypt reads from bytes (src/formats/fscrypt-facts.ts): the ext4
 * superblock's "encrypt" feature and UUID, and `fscrypt status` of fscrypt 0.3 (the texts are
 * verbatim from Debian's fscrypt 0.3.3 in the VM); the password check of src/os/fscrypt.ts.
 * Superblocks mkfs.ext4 really wrote: test/host/fscrypt.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../src/errors';
import { pamFscryptNote, parseExt4Superblock, parseFscryptStatus, parseLoginProtector } from '../../src/formats/fscrypt-facts';
import { checkPassphraseForFscrypt } from '../../src/os/fscrypt';

function superblock(opts: { magic?: number; logBlock?: number; incompat?: number } = {}): Buffer {
  const sb = Buffer.alloc(1024);
  sb.writeUInt16LE(opts.magic ?? 0xef53, 0x38);
  sb.writeUInt32LE(opts.logBlock ?? 2, 0x18);
  sb.writeUInt32LE(opts.incompat ?? 0x2c2, 0x60); // filetype, extent, 64bit, flex_bg: mkfs.ext4's defaults
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(sb, 0x68);
  return sb;
}

test('parseExt4Superblock: the encrypt bit, the block size and the UUID; anything else is null', () => {
  assert.deepEqual(parseExt4Superblock(superblock()), { blockSize: 4096, encrypt: false, uuid: '00112233-4455-6677-8899-aabbccddeeff' });
  assert.equal(parseExt4Superblock(superblock({ incompat: 0x2c2 | 0x10000 }))?.encrypt, true);
  assert.equal(parseExt4Superblock(superblock({ logBlock: 0 }))?.blockSize, 1024);
  assert.equal(parseExt4Superblock(superblock({ magic: 0x1234 })), null); // not ext*
  assert.equal(parseExt4Superblock(superblock({ logBlock: 7 })), null); // no such block size
  assert.equal(parseExt4Superblock(superblock().subarray(0, 0x70)), null); // short read
  assert.equal(parseExt4Superblock(Buffer.alloc(0)), null);
});

const STATUS = `"/srv/h/alice/P" is encrypted with fscrypt.

Policy:   8467093d8208ea34faf239bcaf8cc47f
Options:  padding:32 contents:AES_256_XTS filenames:AES_256_CTS policy_version:2 
Unlocked: Yes

Protected with 2 protectors:
PROTECTOR         LINKED   DESCRIPTION
e1a6eba2474e506f  Yes (/)  login protector for alice
6d46596a3f140165  No       custom protector "Recovery passphrase for P"
`;

test('parseFscryptStatus: policy, lock state and the login protector of the user asked about', () => {
  assert.deepEqual(parseFscryptStatus(STATUS, 'alice', '/srv/h'), { policy: '8467093d8208ea34faf239bcaf8cc47f', unlocked: 'Yes', loginProtector: '/:e1a6eba2474e506f' });
  assert.equal(parseFscryptStatus(STATUS.replace('Unlocked: Yes', 'Unlocked: No'), 'alice', '/srv/h')?.unlocked, 'No');
  assert.equal(parseFscryptStatus(STATUS.replace('Unlocked: Yes', 'Unlocked: Partially (incompletely locked)'), 'alice', '/srv/h')?.unlocked, 'Partially');
  // another user's login protector is not alice's; a protector on the directory's own filesystem is named with it
  assert.equal(parseFscryptStatus(STATUS, 'bob', '/srv/h')?.loginProtector, null);
  assert.equal(parseFscryptStatus(STATUS.replace('Yes (/)  login', 'No       login'), 'alice', '/')?.loginProtector, '/:e1a6eba2474e506f');
  // a shape fscrypt 0.3 does not print is refused, never guessed at
  assert.equal(parseFscryptStatus(STATUS.replace(/^Policy:.*$/m, ''), 'alice', '/srv/h'), null);
  assert.equal(parseFscryptStatus(STATUS.replace('Unlocked: Yes', 'Unlocked: maybe'), 'alice', '/srv/h'), null);
  assert.equal(parseFscryptStatus('', 'alice', '/'), null);
});

test('parseLoginProtector: a user name that is a prefix of another is not taken for it', () => {
  const table = 'PROTECTOR         LINKED   DESCRIPTION\n0123456789abcdef  No       login protector for alice2\nfedcba9876543210  No       login protector for alice\n';
  assert.equal(parseLoginProtector(table, 'alice', '/'), '/:fedcba9876543210');
  assert.equal(parseLoginProtector(table, 'alice2', '/'), '/:0123456789abcdef');
  assert.equal(parseLoginProtector(table, 'alic', '/'), null);
});

test('checkPassphraseForFscrypt: the bytes fscrypt\'s line reader edits or ends on are refused before anything runs', () => {
  checkPassphraseForFscrypt(Buffer.from('Fs-pw 31 with ümlaut'));
  for (const b of [0x0a, 0x0d, 0x03, 0x04, 0x08, 0x7f]) {
    assert.throws(() => checkPassphraseForFscrypt(Buffer.from([0x61, b, 0x62])), (e: unknown) => e instanceof AgentError && e.code === 'USAGE', `byte ${b}`);
  }
});

test('pamFscryptNote: nothing when both Debian stacks call it; each missing one named; a general word where there are none', () => {
  assert.equal(pamFscryptNote(true, true), null);
  assert.match(pamFscryptNote(false, true) ?? '', /^pam_fscrypt\.so is not in \/etc\/pam\.d\/common-auth: .*pam-auth-update --enable fscrypt/);
  assert.match(pamFscryptNote(true, false) ?? '', /not in \/etc\/pam\.d\/common-session:/);
  assert.match(pamFscryptNote(false, false) ?? '', /not in \/etc\/pam\.d\/common-auth nor \/etc\/pam\.d\/common-session:/);
  assert.match(pamFscryptNote(null, null) ?? '', /^Make sure the login stacks call pam_fscrypt\.so in auth and session/);
});
