import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../src/errors';
import { renderEcryptfsOptions } from '../../src/formats/mountinfo';

const S = '2eb5a49ebe845786';
const F = '054ad0eaff33ed88';
const code = (c: string) => (e: unknown) => e instanceof AgentError && e.code === c;

test('defaults equal mount.ecryptfs_private, byte for byte', () => {
  assert.equal(renderEcryptfsOptions({ sigs: [S] }), `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=${S}`);
  assert.equal(
    renderEcryptfsOptions({ sigs: [S], fnekSig: F }),
    `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=${S},ecryptfs_fnek_sig=${F}`,
  );
});

test('every option renders, in a stable order', () => {
  assert.equal(
    renderEcryptfsOptions({
      sigs: [S, F], fnekSig: F, cipher: 'twofish', keyBytes: 32, passthrough: true, unlinkSigs: false, checkDevRuid: false,
      fnCipher: 'aes', fnKeyBytes: 24, xattrMetadata: true, encryptedView: true, mountAuthTokOnly: true,
    }),
    `ecryptfs_cipher=twofish,ecryptfs_key_bytes=32,ecryptfs_passthrough,ecryptfs_xattr_metadata,ecryptfs_encrypted_view,ecryptfs_sig=${S},ecryptfs_sig=${F},ecryptfs_fnek_sig=${F},ecryptfs_fn_cipher=aes,ecryptfs_fn_key_bytes=24,ecryptfs_mount_auth_tok_only`,
  );
});

test('injection and bad values are refused', () => {
  assert.throws(() => renderEcryptfsOptions({ sigs: [] }), code('BAD_SIG'));
  for (const bad of [`${S},ecryptfs_passthrough`, `${S}=`, 'x', `${S} `, `${S}0`]) {
    assert.throws(() => renderEcryptfsOptions({ sigs: [bad] }), code('BAD_SIG'), bad);
    assert.throws(() => renderEcryptfsOptions({ sigs: [S], fnekSig: bad }), code('BAD_SIG'), bad);
  }
  for (const c of ['aes,ecryptfs_passthrough', 'aes=1', '', 'a b', 'x'.repeat(33)]) {
    assert.throws(() => renderEcryptfsOptions({ sigs: [S], cipher: c }), code('BAD_CONFIG'), c);
    assert.throws(() => renderEcryptfsOptions({ sigs: [S], fnCipher: c }), code('BAD_CONFIG'), c);
  }
  for (const k of [0, 65, 1.5, Number.NaN]) assert.throws(() => renderEcryptfsOptions({ sigs: [S], keyBytes: k }), code('BAD_CONFIG'), String(k));
});
