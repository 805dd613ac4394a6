#!/usr/bin/env node
/**
 * The session agent's entry points (docs/protocol.md, docs/resident-agent.md), all as root:
 *  - `pam`: spawned by pam_ecryptfs_agent.so for one PAM phase: request on fd 0, reply on fd 1;
 *  - `worker`: started ahead of time by the resident agent (agent/master.ts); waits, loaded and
 *    ready, for one connection on the sockets it inherited, serves it, exits;
 *  - `reap UID SESSION PID START`: started by the resident agent when the process that opened a
 *    counted session has died without close_session: that session's close, as PAM would run it.
 */
import { hardenProcess, resetInheritedState } from '../src/os/credentials';
import { useNativeKdf } from '../src/os/kdf-native';
import { reapSession } from './reap';
import { serveRequest } from './serve';
import { runWorker } from './worker';

const ENTRIES = new Set(['pam', 'worker', 'reap']);

function main(argv: readonly string[]): number {
  if (!ENTRIES.has(argv[0] ?? '')) {
    process.stderr.write('ecryptfs-agent session agent: run by pam_ecryptfs_agent.so or ecryptfs-agent.service only; use the ecryptfs-agent command\n');
    return 2;
  }
  // Before any secret is read: full root, limits and priority of our own (not the setuid
  // caller's), no core dump, no ptrace by the user.
  const notReset = resetInheritedState();
  hardenProcess();
  useNativeKdf();
  switch (argv[0]) {
    case 'pam':
      serveRequest(0, 1, notReset);
      return 0;
    case 'worker':
      return runWorker(notReset, argv.slice(1));
    default:
      return reapSession(argv.slice(1));
  }
}

process.exitCode = main(process.argv.slice(2));
