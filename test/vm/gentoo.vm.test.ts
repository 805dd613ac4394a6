/**
 * Gentoo's own PAM stack (sys-auth/pambase with pam_faillock and pam_passwdqc, util-linux's su-l,
 * openssh's sshd) with our three lines where docs/install.md puts them, without pam-auth-update
 * and without systemd (fast mode, as under OpenRC), the agent installed by scripts/install.sh:
 * login(1), su -, sshd and passwd unlock, lock at the last logout and re-wrap; a wrong password
 * is counted by faillock and unlocks nothing, a locked-out account unlocks nothing, a password
 * passwdqc refuses leaves the wrapping alone; install.sh --uninstall never breaks login; then the
 * RPM's payload (rpm2cpio) and su through Fedora's authselect stack unlock and lock.
 * One fast-mode boot.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test("Gentoo's system-auth stack unlocks and locks in the VM", { timeout: 15 * 60_000 }, async (t) => {
  // The package root, as an ebuild's src_install makes it (the guest merges it into its /); under
  // the repo, because the guest sees the host's root but has its own /tmp.
  const stage = join(REPO, 'build', 'test', 'gentoo-root');
  rmSync(stage, { recursive: true, force: true });
  const sec = '/usr/lib/x86_64-linux-gnu/security';
  execFileSync('bash', [join(REPO, 'scripts', 'install.sh'), '--prefix', '/usr', '--pam-dir', sec, '--no-systemd', '--destdir', stage]);
  // the RPM of section f, as scripts/build-rpm.sh makes it from this tree (its last line: the path)
  const rpmOut = execFileSync('bash', [join(REPO, 'scripts', 'build-rpm.sh'), '--out', join(REPO, 'build', 'test', 'rpm')], { encoding: 'utf8' });
  const rpm = rpmOut.trim().split('\n').pop() ?? '';
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'gentoo-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^check [a-z]\./.test(l)).length;
  try {
    await runChecksInVm(t, { script: `REPO='${REPO}'\nSTAGE='${stage}'\nRPM='${rpm}'\n${body}`, mode: 'fast', timeoutMs: 13 * 60_000, expectedChecks });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
});
