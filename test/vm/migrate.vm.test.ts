/**
 * migrate-home on Debian's kernel in one fast-mode boot: a home of a few hundred entries
 * migrated by ecryptfs-agent and read back equal through our PAM module, su -, mount.ecryptfs_private
 * and pam_ecryptfs; a home migrated by ecryptfs-migrate-home has the same layout and our agent mounts
 * it; a migration SIGKILLed in the copy and again in the verification loses nothing and finishes on
 * resume; bad input is refused and changes nothing (test/vm/scripts/migrate-suite.sh).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('migrate-home in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'migrate-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^\s*check [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  await runChecksInVm(t, { script: `REPO='${REPO}'\n${body}`, mode: 'fast', timeoutMs: 18 * 60_000, expectedChecks });
});
