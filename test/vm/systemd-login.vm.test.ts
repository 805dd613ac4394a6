/**
 * sshd logins with systemd as PID 1: our module locks ~/Private at the last real logout while
 * the user's systemd manager (lingering user@UID.service, PAM service systemd-user) lives on;
 * overlapping ssh sessions; an ssh key login is not blocked and is told how to unlock; then the
 * resident agent (packaging/systemd units): logins served by its workers, a SIGKILLed sshd reaped,
 * the master SIGKILLed and restarted with a session open, a user's unlock/lock over the user
 * socket without the setuid helper, and the spawn path again once the units are masked.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('sshd logins under systemd lock at the last real logout', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'systemd-login-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^check [a-z]\./.test(l)).length;
  await runChecksInVm(t, { script: `REPO='${REPO}'\n${body}`, mode: 'systemd', timeoutMs: 18 * 60_000, expectedChecks });
});
