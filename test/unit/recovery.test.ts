/**
 * src/actions/recovery.ts, pure parts: checkRecoveryKey compares a key with what a copied .Private says
 * about it (Private.sig, file headers, encrypted names; the sigs are those of the kernel-made
 * fixtures in test/fixtures/recovery).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAgentError } from '../../src/errors';
import { checkRecoveryKey, type LowerEvidence } from '../../src/actions/recovery';

const fnek = { mountPassphrase: 'fixture-mount-passphrase-0123456789', fekSig: '489f3d10121e8ba8', fnekSig: '540ea8e6a2a94091' };
const header = { path: '/c/.Private/f', keySigs: [fnek.fekSig] };
const encryptedName = { path: '/c/.Private/ECRYPTFS_FNEK_ENCRYPTED.x', fnekSig: fnek.fnekSig as string };
const source = (evidence: Partial<LowerEvidence>, privateSig?: { fekSig: string; fnekSig?: string }) => ({
  lower: '/c/.Private',
  wrappedPath: '/c/.ecryptfs/wrapped-passphrase',
  evidence: { scanned: 3, nestedPrivate: [], ...evidence },
  ...(privateSig ? { privateSig } : {}),
});
const right = { fekSig: fnek.fekSig, fnekSig: fnek.fnekSig as string };
const other = { fekSig: 'aaaaaaaaaaaaaaaa', fnekSig: 'bbbbbbbbbbbbbbbb' };

test('checkRecoveryKey: the right key passes every check there is, and says what it was checked against', () => {
  assert.deepEqual(checkRecoveryKey(source({ header, encryptedName }, right), right, 'mount-passphrase'), [
    'Private.sig',
    `the header of ${header.path}`,
    `the encrypted name of ${encryptedName.path}`,
  ]);
  assert.deepEqual(checkRecoveryKey(source({ header }), { fekSig: fnek.fekSig }, 'wrapped'), [`the header of ${header.path}`]);
  assert.deepEqual(checkRecoveryKey(source({ header: { ...header, keySigs: ['1111111111111111', fnek.fekSig] } }), right, 'wrapped').length, 1, 'any of the header keys');
  assert.deepEqual(checkRecoveryKey(source({ header }, { fekSig: fnek.fekSig.toUpperCase() }), { fekSig: fnek.fekSig }, 'wrapped')[0], 'Private.sig', 'Private.sig case is not significant');
});

test('checkRecoveryKey: a wrong mount passphrase → WRONG_MOUNT_PASSPHRASE naming both sigs; a foreign wrapped file → SIG_MISMATCH', () => {
  const cases: Array<[Partial<LowerEvidence>, { fekSig: string; fnekSig?: string } | undefined, RegExp]> = [
    [{ header }, right, /Private\.sig names key sig 489f3d10121e8ba8, this passphrase gives aaaaaaaaaaaaaaaa/],
    [{ header }, undefined, /the header of \/c\/\.Private\/f names key sig 489f3d10121e8ba8/],
    [{ encryptedName }, undefined, /encrypted name ECRYPTFS_FNEK_ENCRYPTED\.x… names the filename key sig 540ea8e6a2a94091/],
  ];
  for (const [evidence, sig, message] of cases) {
    assert.throws(
      () => checkRecoveryKey(source(evidence, sig), other, 'mount-passphrase'),
      (e: unknown) => isAgentError(e, 'WRONG_MOUNT_PASSPHRASE') && message.test(e.message) && /nothing changed/.test(e.message) && !e.message.includes(fnek.mountPassphrase),
    );
    assert.throws(
      () => checkRecoveryKey(source(evidence, sig), other, 'wrapped'),
      (e: unknown) => isAgentError(e, 'SIG_MISMATCH') && e.message.includes('/c/.ecryptfs/wrapped-passphrase') && /--mount-passphrase/.test(e.hint),
    );
  }
  // the right file key but a wrong filename key (e.g. Private.sig line 2 from another setup)
  assert.throws(() => checkRecoveryKey(source({ header, encryptedName }), { fekSig: fnek.fekSig, fnekSig: 'cccccccccccccccc' }, 'mount-passphrase'), (e: unknown) => isAgentError(e, 'WRONG_MOUNT_PASSPHRASE'));
  // without FNEK (forced off) the names are not compared
  assert.equal(checkRecoveryKey(source({ header, encryptedName }), { fekSig: fnek.fekSig }, 'mount-passphrase').length, 1);
});
