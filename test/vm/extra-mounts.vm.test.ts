/**
 * Extra mounts at login, on Debian's kernel (eCryptfs module) with real PAM clients
 * (pamtester, pam-hold for overlapping sessions), one fast-mode boot: an /etc/fstab
 * `user,noauto` line (encrypted directory on a bind mount) and a line of ~/.ecryptfs/extra-mounts
 * (encrypted directory on a separate tmpfs, standing in for an sshfs) mounted at login after
 * ~/Private, files round-trip, unmounted in reverse order at the last logout; shared sigs;
 * overlapping sessions; bad entries refused while ~/Private still unlocks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildPamHold, runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('extra mounts at login and logout in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const hold = buildPamHold();
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'extra-mounts-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^\s*check(_output)? [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  await runChecksInVm(t, {
    script: `REPO='${REPO}'\nHOLD='${hold}'\n${body}`,
    mode: 'fast',
    timeoutMs: 18 * 60_000,
    expectedChecks,
  });
});
