/**
 * Concurrency, the spawned agent killed at one step of each phase, and a full disk
 * (test/vm/scripts/stress-suite.sh sections a, b, c with a sample of kill points, d; one fast-mode
 * boot), and a VM reset in the middle of a re-wrap loop (several boots on one disk). The full
 * agent-kill fault matrix, through the resident agent, is faults.vm.test.ts, its own VM so the
 * runner can run it beside this one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseChecks } from './checks';
import { REPO, runStressSections } from './stress';
import { runInVm } from './vm';

test('concurrency (one user, many users), a spawned agent SIGKILLed in each phase, disk full during the re-wrap, in the VM', { timeout: 45 * 60_000 }, async (t) => {
  await runStressSections(t, 'a b c d', 40, { transport: 'spawn', points: 'sample' });
});

/** One boot of the reset test: mount the disk, check what the last boot left, then (unless it is
 * the last boot) re-wrap in a loop until the guest resets itself with sysrq b (no sync). */
function resetBootScript(boot: number, boots: number, resetAfterS: number): string {
  return `
CLI=$REPO/bin/ecryptfs-agent; F=/mnt/p/wrapped-passphrase; MP='reset-mount-pass-31'
pw() { echo "reset-pw-$1"; }
opens_with() { printf '%s' "$(pw $1)" | $CLI unwrap-passphrase $F - 2>/dev/null | grep -qx "$MP"; }
modprobe virtio_blk && modprobe ext4 && mkdir -p /mnt/p && mount /dev/vda /mnt/p || { echo "CHECK r.${boot}.disk-mounted FAIL"; exit 1; }
echo "CHECK r.${boot}.disk-mounted ok"
if [ ${boot} -eq 1 ]; then
  check r.1.wrapped sh -c "printf '%s\\n%s' '$MP' '$(pw 0)' | $CLI wrap-passphrase $F - && echo 0 > /mnt/p/progress && sync"
  cur=0
else
  last=$(tail -n 1 /mnt/p/progress); cur=none
  if opens_with "$last"; then cur=$last; elif opens_with $((last + 1)); then cur=$((last + 1)); fi
  echo "FIGURE boot ${boot}: progress log says $last re-wraps completed; the file opens with password #$cur; files: $(ls -A /mnt/p | tr '\\n' ' ')"
  check r.${boot}.opens-with-last-or-next-password test "$cur" != none
  [ "$cur" = none ] && exit 1
  echo "$cur" >> /mnt/p/progress; sync /mnt/p/progress
fi
if [ ${boot} -lt ${boots} ]; then
  echo 1 > /proc/sys/kernel/sysrq
  ( sleep ${resetAfterS}; echo b > /proc/sysrq-trigger ) &
  first=1
  while :; do
    next=$((cur + 1))
    if ! printf '%s\\n%s' "$(pw $cur)" "$(pw $next)" | $CLI rewrap-passphrase $F - > /tmp/rewrap.out 2>&1; then
      echo "CHECK r.${boot}.rewrap-loop FAIL $(cat /tmp/rewrap.out)"; exit 1
    fi
    echo "$next" >> /mnt/p/progress; sync /mnt/p/progress; cur=$next
    [ $first = 1 ] && echo "CHECK r.${boot}.rewrap-loop ok" && first=0
    echo "re-wrapped to #$cur"
  done
fi
exit $failed
`;
}

test('VM reset in the middle of a re-wrap loop: after each reboot the file opens with the last or the next password', { timeout: 20 * 60_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'eat-reset-'));
  const lib = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'lib.sh'), 'utf8');
  const disk = join(work, 'disk.img');
  try {
    execFileSync('truncate', ['-s', '64M', disk]);
    execFileSync('mkfs.ext4', ['-q', '-F', disk]);
    const resetAfter = [9, 13, 17];
    const boots = resetAfter.length + 1;
    for (let boot = 1; boot <= boots; boot++) {
      const r = await runInVm({
        script: `${lib}\nREPO='${REPO}'\n${resetBootScript(boot, boots, resetAfter[boot - 1] ?? 0)}`,
        mode: 'fast',
        timeoutMs: 6 * 60_000,
        disks: [disk],
        expectReset: boot < boots,
        onOutput: (c) => process.stderr.write(c),
      });
      const rewraps = (r.output.match(/^re-wrapped to/gm) ?? []).length;
      t.diagnostic(`boot ${boot}: accelerator ${r.accel}; boot ${r.bootMs} ms; ${r.reset ? 'ended by reset' : `exit ${r.exitCode}`}; rewraps this boot: ${rewraps}`);
      for (const line of r.output.split('\n')) if (line.startsWith('FIGURE ')) t.diagnostic(line.slice(7));
      const checks = parseChecks(r.output);
      for (const c of checks) await t.test(c.name, () => assert.ok(c.ok, c.why));
      await t.test(`boot ${boot}: every check ran; ${boot < boots ? 'ended by the reset, mid-loop' : 'clean exit'}`, () => {
        const expected = boot === 1 ? 3 : boot < boots ? 3 : 2;
        assert.equal(checks.length, expected, `expected ${expected} checks, got ${checks.length}`);
        if (boot < boots) assert.equal(r.reset, true, 'the guest was to reset itself');
        else assert.equal(r.exitCode, 0);
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
