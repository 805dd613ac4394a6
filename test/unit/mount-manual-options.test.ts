/** Options of `ecryptfs-agent mount`: flags → choices → kernel options; which keys an umount may unlink. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { givenChoicesFromFlags } from '../../src/cli/mount-commands';
import { isAgentError } from '../../src/errors';
import { checkGivenChoices, manualMountOptions, missingChoiceFlags, renderOptionsAnnouncement } from '../../src/actions/manual-mount';
import { sigsNotInUse } from '../../src/os/mount';
import { parseMountInfo, renderEcryptfsOptions } from '../../src/formats/mountinfo';

const S = 'a1a5358798c8f119';
const F = '0123456789abcdef';

test('kernel options: mount.ecryptfs\'s set, nothing more (root mounts: no ecryptfs_check_dev_ruid)', () => {
  const render = (c: Parameters<typeof manualMountOptions>[0]) => renderEcryptfsOptions(manualMountOptions(c, S));
  assert.equal(render({ cipher: 'aes', keyBytes: 16, passthrough: false, fnek: false }), `ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=${S}`);
  assert.equal(
    render({ cipher: 'blowfish', keyBytes: 56, passthrough: false, fnek: true }),
    `ecryptfs_cipher=blowfish,ecryptfs_key_bytes=56,ecryptfs_unlink_sigs,ecryptfs_sig=${S},ecryptfs_fnek_sig=${S}`,
    'filename encryption with the file key, as mount.ecryptfs suggests',
  );
  assert.equal(
    render({ cipher: 'cast6', keyBytes: 32, passthrough: true, fnek: true, fnekSig: F }),
    `ecryptfs_cipher=cast6,ecryptfs_key_bytes=32,ecryptfs_passthrough,ecryptfs_unlink_sigs,ecryptfs_sig=${S},ecryptfs_fnek_sig=${F}`,
  );
  assert.equal(
    renderOptionsAnnouncement(`ecryptfs_cipher=aes,ecryptfs_sig=${S}`),
    `Attempting to mount with the following options:\n  ecryptfs_cipher=aes\n  ecryptfs_sig=${S}\n`,
  );
});

test('flags → choices; contradictions and non-numbers are usage errors', () => {
  assert.deepEqual(givenChoicesFromFlags({}), {});
  assert.deepEqual(givenChoicesFromFlags({ cipher: 'aes', 'key-bytes': '24', 'no-passthrough': true, fnek: true }), { cipher: 'aes', keyBytes: 24, passthrough: false, fnek: true });
  assert.deepEqual(givenChoicesFromFlags({ passthrough: true, 'fnek-sig': F }), { passthrough: true, fnekSig: F });
  assert.deepEqual(givenChoicesFromFlags({ 'no-fnek': true }), { fnek: false });
  assert.match(givenChoicesFromFlags({ passthrough: true, 'no-passthrough': true }) as string, /contradict/);
  assert.match(givenChoicesFromFlags({ fnek: true, 'no-fnek': true }) as string, /contradict/);
  assert.match(givenChoicesFromFlags({ 'fnek-sig': F, 'no-fnek': true }) as string, /contradict/);
  for (const bad of ['16x', '-16', '', '1e3', '0x10', '1234']) assert.equal(typeof givenChoicesFromFlags({ 'key-bytes': bad }), 'string', bad);
});

test('what a script must give, and what is refused before anything happens', () => {
  assert.deepEqual(missingChoiceFlags({}), ['--cipher NAME', '--key-bytes N', '--passthrough or --no-passthrough', '--fnek or --no-fnek']);
  assert.deepEqual(missingChoiceFlags({ cipher: 'aes', keyBytes: 16, passthrough: false, fnekSig: F }), []);
  assert.doesNotThrow(() => checkGivenChoices({ cipher: 'blowfish', keyBytes: 56 }));
  assert.throws(() => checkGivenChoices({ cipher: 'rot13' }), (e) => isAgentError(e, 'BAD_CIPHER'));
  assert.throws(() => checkGivenChoices({ cipher: 'blowfish', keyBytes: 24 }), (e) => isAgentError(e, 'BAD_CIPHER') && /use 16, 32 or 56/.test(e.message));
  assert.throws(() => checkGivenChoices({ fnekSig: `${S},ecryptfs_passthrough` }), (e) => isAgentError(e, 'BAD_SIG'));
  assert.throws(() => checkGivenChoices({ fnek: false, fnekSig: F }), (e) => isAgentError(e, 'USAGE'));
});

test('umount: a key another eCryptfs mount still uses is kept', () => {
  const line = (id: number, mp: string, opts: string, fs = 'ecryptfs') => `${id} 1 0:${id} / ${mp} rw,nosuid,nodev - ${fs} /srv/low${id} rw,${opts}`;
  const mounts = parseMountInfo(
    [
      line(40, '/srv/a', `ecryptfs_sig=${S},ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs`),
      line(41, '/srv/b', `ecryptfs_fnek_sig=${F},ecryptfs_sig=${S},ecryptfs_cipher=aes,ecryptfs_key_bytes=16`),
      line(42, '/srv/c', `ecryptfs_sig=ffffffffffffffff`, 'tmpfs'),
    ].join('\n'),
  );
  assert.deepEqual(sigsNotInUse([S, F, 'ffffffffffffffff'], mounts), ['ffffffffffffffff'], 'a tmpfs option is no key use');
  assert.deepEqual(sigsNotInUse([S, F], mounts.slice(0, 1)), [F]);
  assert.deepEqual(sigsNotInUse([S, F], []), [S, F]);
});
