/**
 * Shared by the concurrency and fault-matrix VM tests (stress.vm.test.ts, faults.vm.test.ts):
 * runs sections of test/vm/scripts/stress-suite.sh in a fast-mode VM. Sizes: ECRYPTFS_AGENT_STRESS_N (parallel
 * login/logout cycles of one user, default 10) and ECRYPTFS_AGENT_STRESS_M (users at once, 6).
 * The defaults keep the whole `.ci/run` under the brief's 45 minutes on a 2-core TCG machine
 * (every cycle is ≈10 s of emulated CPU, ≈15 s when all start at once); 10 cycles of one user
 * still overlap fully (all 10 sessions seen open at once in the 2026-12-07 run). The full sizes
 * (N=50, M=20) run on demand, with their last figures in test/vm/README.md.
 * ECRYPTFS_AGENT_FAULT_POINTS=login|chauthtok narrows the fault matrix when debugging by hand.
 * The full matrix runs through the resident agent (faults.vm.test.ts); the spawned agent gets one
 * kill point per phase ('sample', in stress.vm.test.ts's boot).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { buildPamHold, runChecksInVm } from './checks';

export const REPO = join(__dirname, '..', '..', '..');
const N = Number(process.env.ECRYPTFS_AGENT_STRESS_N ?? 10);
const M = Number(process.env.ECRYPTFS_AGENT_STRESS_M ?? 6);
// by hand only: `login` or `chauthtok` runs just those kill points of the fault matrix
type FaultPoints = 'all' | 'sample' | 'login' | 'chauthtok';
const byHand = process.env.ECRYPTFS_AGENT_FAULT_POINTS;
const BY_HAND: FaultPoints | undefined = byHand === 'login' || byHand === 'chauthtok' ? byHand : undefined;

/** Fixed top-level checks of the sections run, plus (section c) 3 per login kill point and 5 per
 * chauthtok kill point, from the guest's PLAN line; too few kill points (a trace that found
 * nothing) fails here. */
export function expectedStressChecks(body: string, sections: string, output: string, points: FaultPoints = 'all'): number {
  const fixed = body
    .split('\n')
    .map((l) => /^check ([a-z])\./.exec(l)?.[1])
    .filter((letter) => letter !== undefined && sections.split(' ').includes(letter)).length;
  if (!sections.split(' ').includes('c')) return fixed;
  const plan = /^PLAN login=(\d+) chauthtok=(\d+)$/m.exec(output);
  assert.ok(plan, 'the suite printed no PLAN line');
  const login = Number(plan[1]);
  const chauthtok = Number(plan[2]);
  // open adds two keys, records and mounts, close records, unmounts and unlinks the keys
  if (points === 'all' || points === 'login') assert.ok(login >= 9, `only ${login} login kill points traced`);
  // a re-wrap writes a temp file, fsyncs it and renames it over the wrapped file
  if (points === 'all' || points === 'chauthtok') assert.ok(chauthtok >= 2, `only ${chauthtok} chauthtok kill points traced`);
  // the sample: the mount and the unmount, the rename
  if (points === 'sample') assert.ok(login === 2 && chauthtok === 1, `sample of ${login} login and ${chauthtok} chauthtok kill points`);
  return fixed + 3 * login + 5 * chauthtok;
}

/** Runs sections of stress-suite.sh in one fast-mode boot; reports its FIGURE lines. */
/** How section c injects its faults: through which transport, at which kill points. */
export interface FaultPlan {
  transport: 'spawn' | 'resident';
  points: 'all' | 'sample';
}

export async function runStressSections(t: TestContext, sections: string, timeoutMin: number, faults: FaultPlan = { transport: 'spawn', points: 'all' }): Promise<void> {
  const points: FaultPoints = BY_HAND ?? faults.points;
  const hold = buildPamHold();
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'stress-suite.sh'), 'utf8');
  const output = await runChecksInVm(t, {
    script: `REPO='${REPO}'\nHOLD='${hold}'\nN=${N}\nM=${M}\nSECTIONS='${sections}'\nTRANSPORT=${faults.transport}\nFAULT_POINTS=${points}\n${body}`,
    mode: 'fast',
    memoryMb: 4096,
    // the concurrency sections need two CPUs really running at once; the fault matrix is one
    // login at a time, traced and killed at fixed system calls
    cpus: sections.split(' ').some((x) => x === 'a' || x === 'b') ? 2 : 1,
    timeoutMs: timeoutMin * 60_000,
    expectedChecks: (out) => expectedStressChecks(body, sections, out, points),
  });
  for (const line of output.split('\n')) if (line.startsWith('FIGURE ')) t.diagnostic(line.slice(7));
}

