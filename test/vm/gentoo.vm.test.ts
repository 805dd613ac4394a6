/**
 * Gentoo's own PAM stack (sys-auth/pambase with pam_faillock and pam_passwdqc, util-linux's su-l,
 * openssh's sshd) with our three lines where docs/install.md puts them, without pam-auth-update
 * and without systemd (fast mode, as under OpenRC): login(1), su -, sshd and passwd unlock, lock
 * at the last logout and re-wrap; a wrong password is counted by faillock and unlocks nothing, a
 * locked-out account unlocks nothing, a password passwdqc refuses leaves the wrapping alone.
 * One fast-mode boot.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test("Gentoo's system-auth stack unlocks and locks in the VM", { timeout: 15 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'gentoo-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^check [a-z]\./.test(l)).length;
  await runChecksInVm(t, { script: `REPO='${REPO}'\n${body}`, mode: 'fast', timeoutMs: 13 * 60_000, expectedChecks });
});
