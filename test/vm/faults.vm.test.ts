/**
 * The agent-kill fault matrix (test/vm/scripts/stress-suite.sh section c): the steps of
 * a clean auth / open_session / close_session / chauthtok are traced, then the agent is SIGKILLed
 * on entry to each state-changing system call in turn; after each kill the login proceeds and the
 * user is told, the next login unlocks with one session counted, and its logout leaves nothing
 * behind. Through the resident agent: each phase served by one of its master's workers.
 */
import { test } from 'node:test';
import { runStressSections } from './stress';

test('SIGKILL of the resident agent’s worker at every step of every phase, in the VM', { timeout: 45 * 60_000 }, async (t) => {
  await runStressSections(t, 'c', 40, { transport: 'resident', points: 'all' });
});
