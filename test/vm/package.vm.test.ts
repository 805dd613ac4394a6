/**
 * The Debian package in the systemd-mode VM (host root read-only under a tmpfs overlay,
 * so dpkg changes only the overlay): install, pam-auth-update, the resident agent's units enabled
 * and started, a real su password login served by it that unlocks and locks ~/Private, remove,
 * purge (units gone), reinstall, upgrade with a session open (the master restarted, the session
 * kept). One boot.
 * The two .debs are built here on the host (scripts/package.sh) and read by the guest through
 * the shared root.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

function buildDeb(out: string, version?: string): string {
  const args = [join(REPO, 'scripts', 'package.sh'), '--out', out, ...(version ? ['--version', version] : [])];
  return execFileSync('bash', args, { encoding: 'utf8' }).trim().split('\n').pop() as string;
}

test('the .deb: install, su login unlocks, remove, purge, reinstall, upgrade in the VM', { timeout: 20 * 60_000 }, async (t) => {
  const out = join(REPO, 'build', 'test', 'deb');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const v2 = `${version}+vmupgrade1`; // sorts after version for dpkg
  const deb1 = buildDeb(out);
  const deb2 = buildDeb(out, v2);
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'package-suite.sh'), 'utf8');
  const expectedChecks = body.split('\n').filter((l) => /^check [a-z]\./.test(l)).length;
  await runChecksInVm(t, {
    script: `DEB1='${deb1}'\nDEB2='${deb2}'\nV2='${v2}'\n${body}`,
    mode: 'systemd',
    timeoutMs: 18 * 60_000,
    expectedChecks,
  });
});
