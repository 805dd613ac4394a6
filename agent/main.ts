#!/usr/bin/env node
/**
 * The session agent: run by pam_ecryptfs_agent.so (as root, clean environment) once per PAM
 * phase. Reads one request on stdin (docs/protocol.md), does the phase's work through the
 * library in src/, writes one reply on stdout, exits. Never blocks, never throws past here:
 * any failure becomes `result=ignore` plus a line for the user and one for the log.
 */
import { readSync, writeSync } from 'node:fs';
import { asUser, hardenProcess, lookupUser } from '../src/credentials';
import { AgentError } from '../src/errors';
import { useNativeKdf } from '../src/kdf-native';
import { createLazyLogger } from '../src/log';
import { native } from '../src/native';
import { loadPrivateSetup } from '../src/private-setup';
import { MAX_REQUEST_BYTES, parseRequest, renderReply, wipeRequest, type AgentReply, type AgentRequest } from '../src/protocol';
import { SessionStore } from '../src/session';
import { possessUserKeyring } from '../src/unlock';
import { ignore, type PhaseContext, type PhaseHandler } from './context';
import { handleAuth } from './phases/auth';
import { handleChauthtok } from './phases/chauthtok';
import { handleCloseSession } from './phases/close-session';
import { handleOpenSession } from './phases/open-session';

const HANDLERS: Record<AgentRequest['phase'], PhaseHandler> = {
  auth: handleAuth,
  open_session: handleOpenSession,
  close_session: handleCloseSession,
  chauthtok: handleChauthtok,
};

function readRequest(): Buffer {
  const buf = Buffer.alloc(MAX_REQUEST_BYTES + 1);
  let len = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, len, buf.length - len, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw e;
    }
    if (n === 0) break;
    len += n;
    if (len >= buf.length) break;
  }
  const out = Buffer.alloc(len);
  buf.copy(out, 0, 0, len);
  buf.fill(0);
  return out;
}

function reply(r: AgentReply): void {
  const out = renderReply(r);
  let off = 0;
  while (off < out.length) off += writeSync(1, out, off);
}

function main(): number {
  if (process.argv[2] !== 'pam') {
    process.stderr.write('ecryptfs-agent session agent: run by pam_ecryptfs_agent.so only; use the ecryptfs-agent command\n');
    return 2;
  }
  // Before any secret is read: no core dump, no ptrace by the user, no swap of secret pages we lock.
  hardenProcess();
  useNativeKdf();
  let req: AgentRequest | undefined;
  let log = createLazyLogger({ debug: false, stderr: false });
  try {
    const raw = readRequest();
    try {
      req = parseRequest(raw);
    } finally {
      raw.fill(0);
    }
    log = createLazyLogger({ debug: req.debug, stderr: false });
    // Under a setuid application (su, passwd) the agent inherits ruid=caller, euid=0: become
    // root entirely, so every later switch to the user starts from and returns to root.
    if (process.geteuid?.() !== 0) throw new AgentError('PERMISSION', 'the agent must run as root (from the PAM module)');
    native().setresgid(0, 0, 0);
    native().setresuid(0, 0, 0);
    const user = lookupUser(req.user);
    const store = new SessionStore();
    const setup = asUser(user, () => loadPrivateSetup(user));
    if (setup) possessUserKeyring(user);
    const ctx: PhaseContext = { req, user, setup, log, store };
    if (!setup) log.debug('no eCryptfs private directory set up', { user: user.name, phase: req.phase });
    reply(HANDLERS[req.phase](ctx));
  } catch (e) {
    const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message ?? String(e));
    const quiet = err.code === 'NO_SUCH_USER';
    (quiet ? log.debug : log.error)(err.message, {
      user: req?.user,
      phase: req?.phase,
      outcome: 'failed',
      code: err.code,
      fix: err.hint,
    });
    const tellUser = !quiet && req !== undefined && req.phase !== 'auth';
    reply(ignore([], tellUser ? [`ecryptfs-agent: ${err.message}`, `Fix: ${err.hint}`] : []));
  } finally {
    if (req) wipeRequest(req);
  }
  return 0;
}

process.exitCode = main();
