/**
 * Login → unlock → logout with our PAM module on Debian's kernel (eCryptfs module) with real PAM
 * clients: pamtester, a held PAM session client (overlapping sessions), su, passwd, chpasswd;
 * cross-compatibility with the reference tools; a file still open at the last logout (lazy
 * detach); the legacy mode without `unwrap`; `status` explaining a login that stayed locked; the
 * syslog facility of every line; a broken setup that must fail loudly. One fast-mode boot.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildPamHold, runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('login → unlock → logout with our module in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const hold = buildPamHold();
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'login-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^\s*check(_output)? [a-z]\.|CHECK g\.harness/.test(l)).length;
  await runChecksInVm(t, {
    script: `REPO='${REPO}'\nHOLD='${hold}'\n${body}`,
    mode: 'fast',
    timeoutMs: 18 * 60_000,
    expectedChecks: expectedChecks - 1, // the harness-detects line is one check written twice (ok/FAIL branches)
  });
});
