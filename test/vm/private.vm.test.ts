/**
 * The manual path (setting up ~/Private and unlocking it by hand), on Debian's kernel (eCryptfs
 * module) in one fast-mode boot: setup-private as the user and as root -u (with and without FNEK, login password or a separate
 * wrapping passphrase) mounted by our PAM module and by the reference peer (mount.ecryptfs_private,
 * pam_ecryptfs.so) with files crossing over; unlock/lock as root and as the user (through
 * mount.ecryptfs_private), lock refusing while in use; status; doctor; bad input changes nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('setup-private, unlock, lock, status, doctor in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'private-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^\s*check [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  await runChecksInVm(t, {
    script: `REPO='${REPO}'\n${body}`,
    mode: 'fast',
    timeoutMs: 18 * 60_000,
    expectedChecks,
  });
});
