/**
 * Preloaded (`--require`) into every test process by scripts/run-tests.js. The whole run uses two
 * test processes at a time so that a VM suite (qemu, mostly one busy core) runs beside the rest;
 * but the host suite's files share the machine's keyring, /run/ecryptfs-agent, PAM stacks and
 * syslog, so each host file holds one machine-wide lock for its whole run: they stay serial
 * among themselves. The runner's own process (not a test file) takes nothing.
 */
import { openSync } from 'node:fs';
import { native } from '../../src/os/native';

const LOCK_EX = 2;
export const HOST_SUITE_LOCK = '/run/lock/ecryptfs-agent-host-tests.lock';

const file = process.argv[1] ?? '';
if (process.env.NODE_TEST_CONTEXT !== undefined && /[/]dist[/]test[/]host[/]/.test(file)) {
  // Kept open (and locked) until this test process exits; the kernel releases it then.
  const fd = openSync(HOST_SUITE_LOCK, 'a', 0o600);
  native().flock(fd, LOCK_EX);
}
