import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CIPHERS, checkKeyBytes, cipherByName, describeCipher, findKernelCipher, keyBytesOffered, parseProcCrypto } from '../../src/os/ciphers';
import { isAgentError } from '../../src/errors';

// Records as Debian 12's kernel (6.1.0-56, in the VM) lists them after modprobe crypto-blowfish etc.,
// plus an skcipher and a hash record that must not count as block ciphers.
const PROC_CRYPTO = `name         : blowfish
driver       : blowfish-asm
module       : blowfish_x86_64
priority     : 200
refcnt       : 1
selftest     : passed
internal     : no
type         : cipher
blocksize    : 8
min keysize  : 4
max keysize  : 56

name         : blowfish
driver       : blowfish-generic
module       : blowfish_generic
priority     : 100
refcnt       : 1
selftest     : passed
internal     : no
type         : cipher
blocksize    : 8
min keysize  : 4
max keysize  : 56

name         : ecb(twofish)
driver       : ecb(twofish-generic)
module       : kernel
priority     : 100
type         : skcipher
async        : no
blocksize    : 16
min keysize  : 16
max keysize  : 32
ivsize       : 0

name         : cast5
driver       : cast5-generic
module       : cast5_generic
priority     : 100
type         : cipher
blocksize    : 8
min keysize  : 5
max keysize  : 16

name         : aes
driver       : aes-generic
module       : kernel
priority     : 100
type         : cipher
blocksize    : 16
min keysize  : 16
max keysize  : 32

name         : sha512
driver       : sha512-generic
module       : kernel
type         : shash
blocksize    : 128
digestsize   : 64
`;

test('the catalogue is mount.ecryptfs 111: six ciphers, its menu lines and key sizes in its order', () => {
  assert.deepEqual(CIPHERS.map((c) => c.name), ['aes', 'blowfish', 'des3_ede', 'twofish', 'cast6', 'cast5']);
  // The lines the reference helper printed in the VM (mount -t ecryptfs, "Select cipher").
  assert.deepEqual(CIPHERS.map(describeCipher), [
    'aes: blocksize = 16; min keysize = 16; max keysize = 32',
    'blowfish: blocksize = 8; min keysize = 16; max keysize = 56',
    'des3_ede: blocksize = 8; min keysize = 24; max keysize = 24',
    'twofish: blocksize = 16; min keysize = 16; max keysize = 32',
    'cast6: blocksize = 16; min keysize = 16; max keysize = 32',
    'cast5: blocksize = 8; min keysize = 5; max keysize = 16',
  ]);
  assert.deepEqual(Object.fromEntries(CIPHERS.map((c) => [c.name, c.keyBytes])), {
    aes: [16, 32, 24], blowfish: [16, 32, 56], des3_ede: [24], twofish: [16, 32], cast6: [16, 32], cast5: [16],
  });
});

test('/proc/crypto: records, numbers, types', () => {
  const e = parseProcCrypto(PROC_CRYPTO);
  assert.equal(e.length, 6);
  assert.deepEqual(e[0], { name: 'blowfish', driver: 'blowfish-asm', module: 'blowfish_x86_64', type: 'cipher', blocksize: 8, minKeysize: 4, maxKeysize: 56 });
  assert.deepEqual(e[5], { name: 'sha512', driver: 'sha512-generic', module: 'kernel', type: 'shash', blocksize: 128 });
  assert.deepEqual(parseProcCrypto(''), []);
  assert.deepEqual(parseProcCrypto('garbage\n\nname : x\n'), [], 'a record without a type is skipped');
});

test('a kernel cipher is a "cipher" record; several drivers give the range all of them accept', () => {
  const e = parseProcCrypto(PROC_CRYPTO);
  assert.deepEqual(findKernelCipher(e, 'blowfish'), { name: 'blowfish', minKeysize: 4, maxKeysize: 56, drivers: ['blowfish-asm', 'blowfish-generic'] });
  assert.equal(findKernelCipher(e, 'twofish'), undefined, 'ecb(twofish) is an skcipher, not twofish itself');
  assert.equal(findKernelCipher(e, 'des3_ede'), undefined);
  const narrowed = parseProcCrypto('name : x\ndriver : a\ntype : cipher\nmin keysize : 8\nmax keysize : 32\n\nname : x\ndriver : b\ntype : cipher\nmin keysize : 16\nmax keysize : 24\n');
  assert.deepEqual(findKernelCipher(narrowed, 'x'), { name: 'x', minKeysize: 16, maxKeysize: 24, drivers: ['a', 'b'] });
});

test('key sizes offered: the catalogue\'s, within the kernel\'s range, in the catalogue\'s order', () => {
  const e = parseProcCrypto(PROC_CRYPTO);
  assert.deepEqual(keyBytesOffered(cipherByName('aes'), findKernelCipher(e, 'aes')!), [16, 32, 24]);
  assert.deepEqual(keyBytesOffered(cipherByName('blowfish'), findKernelCipher(e, 'blowfish')!), [16, 32, 56]);
  assert.deepEqual(keyBytesOffered(cipherByName('cast5'), findKernelCipher(e, 'cast5')!), [16]);
  assert.deepEqual(keyBytesOffered(cipherByName('aes'), { name: 'aes', minKeysize: 16, maxKeysize: 24, drivers: [] }), [16, 24]);
  assert.deepEqual(keyBytesOffered(cipherByName('des3_ede'), { name: 'des3_ede', minKeysize: 8, maxKeysize: 16, drivers: [] }), []);
});

test('unknown ciphers and key sizes are refused with the valid choices named', () => {
  assert.throws(() => cipherByName('serpent'), (e) => isAgentError(e, 'BAD_CIPHER') && /aes, blowfish, des3_ede, twofish, cast6, cast5/.test(e.message));
  assert.throws(() => cipherByName('AES'), (e) => isAgentError(e, 'BAD_CIPHER'));
  assert.throws(() => cipherByName(''), (e) => isAgentError(e, 'BAD_CIPHER'));
  assert.equal(checkKeyBytes(cipherByName('aes'), 24), 24);
  assert.throws(() => checkKeyBytes(cipherByName('cast6'), 20), (e) => isAgentError(e, 'BAD_CIPHER') && e.message === '20 key bytes are not valid for cast6: use 16 or 32');
  assert.throws(() => checkKeyBytes(cipherByName('aes'), 64), (e) => isAgentError(e, 'BAD_CIPHER') && /use 16, 32 or 24$/.test(e.message));
  assert.throws(() => checkKeyBytes(cipherByName('des3_ede'), 16), (e) => isAgentError(e, 'BAD_CIPHER') && /use 24$/.test(e.message));
  assert.throws(() => checkKeyBytes(cipherByName('aes'), 32, [16]), (e) => isAgentError(e, 'BAD_CIPHER') && /use 16$/.test(e.message), 'the kernel\'s narrower list wins');
});
