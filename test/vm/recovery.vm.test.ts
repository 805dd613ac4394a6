/**
 * Recovery, on Debian's kernel in one fast-mode boot (test/vm/scripts/recovery-suite.sh):
 * .Private directories made by ecryptfs-setup-private (FNEK and not) and by our setup-private,
 * copied to another disk, recovered by `ecryptfs-agent recover` with the mount passphrase that
 * `ecryptfs-agent recovery` prints (== ecryptfs-unwrap-passphrase) and with the wrapped file +
 * login password; read-only by default; wrong passphrases change nothing; `recover --unmount`
 * cleans up. Also doctor: a missing eCryptfs module fails, a loadable one warns, an unencrypted
 * swap file fails with the fix, zram or no swap passes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('recovery, recover and doctor (module, swap) in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'recovery-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^check [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  await runChecksInVm(t, {
    script: `REPO='${REPO}'\n${body}`,
    mode: 'fast',
    timeoutMs: 18 * 60_000,
    expectedChecks,
  });
});
