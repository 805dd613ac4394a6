/**
 * Runs a CHECK-style guest script (lines "CHECK <name> ok" / "CHECK <name> FAIL <why>") in the
 * VM and turns every check into a node:test subtest, so the runner counts each one. The shared
 * helpers of those scripts (check, check_output) come from test/vm/scripts/lib.sh, prepended here.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { runInVm, type VmMode } from './vm';

export interface CheckResult {
  name: string;
  ok: boolean;
  why: string;
}

export function parseChecks(output: string): CheckResult[] {
  const out: CheckResult[] = [];
  for (const line of output.split('\n')) {
    const m = /^CHECK (\S+) (ok|FAIL)(?: (.*))?$/.exec(line.trim());
    if (m) out.push({ name: m[1] as string, ok: m[2] === 'ok', why: m[3] ?? '' });
  }
  return out;
}

export async function runChecksInVm(
  t: TestContext,
  opts: {
    script: string;
    mode: VmMode;
    timeoutMs: number;
    /** How many checks must run: a number, or computed from the script's output (a suite whose
     * steps are discovered in the guest prints its plan). */
    expectedChecks: number | ((output: string) => number);
    memoryMb?: number;
    /** see RunInVmOptions.cpus */
    cpus?: number;
    /** see RunInVmOptions.collect */
    collect?: (share: string) => void | Promise<void>;
  },
): Promise<string> {
  const started = Date.now();
  const lib = readFileSync(join(__dirname, '..', '..', '..', 'test', 'vm', 'scripts', 'lib.sh'), 'utf8');
  const r = await runInVm({
    script: `${lib}\n${opts.script}`,
    mode: opts.mode,
    timeoutMs: opts.timeoutMs,
    memoryMb: opts.memoryMb,
    ...(opts.cpus ? { cpus: opts.cpus } : {}),
    ...(opts.collect ? { collect: opts.collect } : {}),
    onOutput: (chunk) => process.stderr.write(chunk),
  }).catch((e: unknown) => {
    // No exit status (panic, timeout, a dead init): the kernel's last words are the only clue.
    const consoleText = (e as { console?: unknown }).console;
    if (typeof consoleText === 'string') process.stderr.write(`--- VM console (last 80 lines)\n${consoleText.split('\n').slice(-80).join('\n')}\n`);
    throw e;
  });
  t.diagnostic(`accelerator ${r.accel}; boot ${r.bootMs} ms; whole run ${Date.now() - started} ms`);
  const checks = parseChecks(r.output);
  for (const c of checks) {
    await t.test(c.name, () => assert.ok(c.ok, c.why));
  }
  await t.test('every check ran and the script agrees', () => {
    const expected = typeof opts.expectedChecks === 'number' ? opts.expectedChecks : opts.expectedChecks(r.output);
    assert.equal(checks.length, expected, `expected ${expected} checks, got ${checks.length}`);
    assert.equal(r.exitCode, checks.every((c) => c.ok) ? 0 : 1);
  });
  return r.output;
}

/** Builds test/fixtures/vm/pam-hold.c (a PAM client that holds a session open) into build/test; returns its path. */
export function buildPamHold(): string {
  const repo = join(__dirname, '..', '..', '..');
  const hold = join(repo, 'build', 'test', 'pam-hold');
  mkdirSync(join(repo, 'build', 'test'), { recursive: true });
  // built beside and renamed: another VM suite running at the same time may be executing it
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', `${hold}.tmp-${process.pid}`, join(repo, 'test', 'fixtures', 'vm', 'pam-hold.c'), '-lpam']);
  renameSync(`${hold}.tmp-${process.pid}`, hold);
  return hold;
}
