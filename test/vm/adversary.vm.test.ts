/**
 * The two-user adversarial suite on Debian's kernel: attacker alice (and mallory, whose home
 * is migrated), victim bob, and root. One case or more per attack (migrate-home racing root's copy,
 * a logout or `lock` unmounting another user's or root's mount, the PAM application's session
 * keyring searched by mount(2), ~/.Private resolved twice, root logins that print an error, secrets
 * not locked in memory, control characters reaching root's terminal, the caller's rlimits / nice /
 * oom_score_adj / umask / real uid inherited by the agent, and the fault-matrix leftovers), plus the
 * hostile layouts of ~/Private and Private.mnt (the former hardening suite) as adv.h.*. Every check
 * asserts the secure outcome, so an attack that still works fails its checks; the script prints,
 * per case, the agent's log lines ("LOG <case>: …") and a verdict ("ADV <case> defended|VULNERABLE <evidence>").
 * One fast-mode boot (test/vm/scripts/adversary-suite.sh).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

test('two-user adversarial suite in the VM', { timeout: 40 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'adversary-suite.sh'), 'utf8');
  // Every check of the script is one literal "check adv.…" / "check_output adv.…" line, none in a
  // loop or a helper, so a check that does not run is a failure of the count.
  const expectedChecks = body.split('\n').filter((l) => /^\s*check(_output)? adv\./.test(l)).length;
  const output = await runChecksInVm(t, {
    script: `REPO='${REPO}'\n${body}`,
    mode: 'fast',
    timeoutMs: 35 * 60_000,
    cpus: 2, // the races need the attacker's process and root's running at the same time
    memoryMb: 1536, // migrate-home's case: a 64 MiB home, its plaintext original and its ciphertext, in the guest's tmpfs
    expectedChecks,
  });
  for (const line of output.split('\n')) if (line.startsWith('ADV ')) t.diagnostic(line.trim().slice(0, 400));
});
