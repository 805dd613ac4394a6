// Proves the VM harness itself and the baseline every later VM suite builds on:
// the harness boots, streams, propagates exit codes (also failures); Debian's kernel has a working
// eCryptfs; ecryptfs-utils' own pam_ecryptfs (the reference peer) mounts and unmounts ~/Private;
// systemd mode brings up logind and sshd with working password logins.
//
// Boots are the cost (≈4–5 s fast, ≈15–35 s systemd under TCG), so checks are batched per boot
// into guest scripts that print "CHECK <name> ok|FAIL <why>".

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { prepareVm, type VmImage } from './prepare';
import { runInVm, type RunInVmResult } from './vm';

// Compiled to dist/test/vm/; the guest scripts stay in the source tree (the guest sees it too).
const SCRIPTS = join(__dirname, '..', '..', '..', 'test', 'vm', 'scripts');
// Generous: under TCG on a loaded 2-core machine runs take 3–4× their idle time.
const FAST_TIMEOUT = 180_000;
const PEER_TIMEOUT = 600_000;
const SYSTEMD_TIMEOUT = 600_000;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Parses CHECK lines; asserts every expected check ran and passed, showing the console otherwise. */
function assertChecks(r: RunInVmResult, prefix: string, expected: string[]): void {
  const results = new Map<string, string>();
  for (const m of r.output.matchAll(/^CHECK (\S+) (ok|FAIL)(.*)$/gm)) results.set(m[1], m[2] === 'ok' ? 'ok' : m[3].trim());
  const problems: string[] = [];
  for (const name of expected) {
    const res = results.get(name);
    if (res === undefined) problems.push(`${name}: did not run`);
    else if (res !== 'ok') problems.push(`${name}: ${res}`);
  }
  for (const name of results.keys()) {
    if (name.startsWith(`${prefix}.`) && !expected.includes(name)) problems.push(`${name}: unexpected check (update the test)`);
  }
  assert.deepEqual(problems, [], `guest output:\n${r.output}`);
}

test('VM harness', { timeout: 45 * 60_000 }, async (t) => {
  const image: VmImage = await prepareVm({ log: (l) => log(`[vm-prepare] ${l}`) });

  await t.test('(a) fast boot runs a script, streams its output, propagates exit 0', async () => {
    const chunks: string[] = [];
    const r = await runInVm({
      image,
      mode: 'fast',
      timeoutMs: FAST_TIMEOUT,
      script: 'echo "hello from $(uname -r) as $(id -un)"\nfor i in 1 2 3; do echo "line $i"; done\necho to-stderr >&2\nexit 0\n',
      onOutput: (c) => chunks.push(c),
    });
    log(`[vm] (a) fast mode, ${r.accel}: boot ${r.bootMs} ms, total ${r.totalMs} ms`);
    assert.equal(r.exitCode, 0, r.console);
    assert.match(r.output, new RegExp(`^hello from ${image.kver.replace(/\./g, '\\.')} as root$`, 'm'));
    assert.match(r.output, /^line 1\nline 2\nline 3\nto-stderr$/m);
    assert.ok(chunks.join('').includes('line 3'), 'output was streamed through onOutput');
    assert.ok(r.bootMs > 0, 'boot time measured');
    assert.ok(r.accel === 'kvm' || r.accel === 'tcg');
  });

  await t.test('(b) a script exiting 3 gives exitCode 3', async () => {
    const r = await runInVm({ image, mode: 'fast', timeoutMs: FAST_TIMEOUT, script: 'echo about to fail\nexit 3\n' });
    assert.equal(r.exitCode, 3, r.console);
    assert.match(r.output, /about to fail/);
  });

  // (c) and (d) share one boot: the reference-peer script first checks the module.
  let peer: RunInVmResult | undefined;
  let peerError: unknown;
  try {
    peer = await runInVm({
      image,
      mode: 'fast',
      timeoutMs: PEER_TIMEOUT,
      script: `${readFileSync(join(SCRIPTS, 'lib.sh'), 'utf8')}\n${readFileSync(join(SCRIPTS, 'reference-peer.sh'), 'utf8')}`,
    });
    log(`[vm] reference peer: boot ${peer.bootMs} ms, total ${peer.totalMs} ms, exit ${peer.exitCode}`);
  } catch (e) {
    peerError = e;
  }
  const peerRun = (): RunInVmResult => {
    if (peer === undefined) throw peerError;
    return peer;
  };

  await t.test('(c) modprobe ecryptfs works inside, /sys/fs/ecryptfs/version readable', () => {
    const r = peerRun();
    assertChecks(r, 'c', ['c.modprobe', 'c.version-readable', 'c.fnek-supported', 'c.listed-in-filesystems']);
  });

  await t.test('(d) reference peer: ecryptfs-setup-private + pam_ecryptfs mount, ciphertext, unmount', () => {
    const r = peerRun();
    assertChecks(r, 'd', [
      'd.useradd', 'd.chpasswd', 'd.setup-private', 'd.wrapped-passphrase', 'd.auto-mount', 'd.sig-file',
      'd.not-mounted-after-setup', 'd.open-session', 'd.mounted', 'd.write-plaintext', 'd.read-back',
      'd.lower-name-encrypted', 'd.lower-no-plaintext', 'd.lower-ecryptfs-magic', 'd.close-session', 'd.unmounted',
      'd.reopen-session', 'd.decrypts-after-remount', 'd.reclose-session', 'd.unmounted-again',
    ]);
    assert.equal(r.exitCode, 0, r.output);
  });

  await t.test('(e) systemd mode: system running, logind + sshd active, ssh password login', async () => {
    const r = await runInVm({
      image,
      mode: 'systemd',
      timeoutMs: SYSTEMD_TIMEOUT,
      script: readFileSync(join(SCRIPTS, 'systemd-ssh.sh'), 'utf8'),
    });
    log(`[vm] (e) systemd mode, ${r.accel}: boot ${r.bootMs} ms, total ${r.totalMs} ms`);
    assertChecks(r, 'e', [
      'e.pid1-is-systemd', 'e.system-running', 'e.logind-active', 'e.sshd-active', 'e.useradd', 'e.chpasswd',
      'e.ssh-password-login', 'e.ssh-wrong-password-refused', 'e.logind-saw-session',
    ]);
    assert.equal(r.exitCode, 0, r.output);
  });
});
