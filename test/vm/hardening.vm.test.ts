/**
 * Issue 9 hardening on Debian's kernel, where the eCryptfs mount really happens: Private.mnt at
 * /etc, /proc, /root and a ".." path, ~/Private a symlink to /etc, and ~/Private swapped with a
 * symlink to /etc (renameat2 RENAME_EXCHANGE) during logins — nothing is ever mounted anywhere but
 * on the user's own directory. One fast-mode boot (test/vm/scripts/hardening-suite.sh).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('hostile layouts with a real eCryptfs mount in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'hardening-suite.sh'), 'utf8');
  const lines = body.split('\n');
  // static "check h.…" lines, plus the two checks of every mnt_case call
  const expectedChecks = lines.filter((l) => /^\s*check h\./.test(l)).length + 2 * lines.filter((l) => /^mnt_case /.test(l)).length;
  await runChecksInVm(t, { script: `REPO='${REPO}'\n${body}`, mode: 'fast', timeoutMs: 18 * 60_000, expectedChecks });
});
