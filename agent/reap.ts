/**
 * A session that ended without close_session (its PAM application was killed: a dropped sshd
 * connection, a crashed display manager, the OOM killer): the resident agent's master watches
 * each counted session's process through a pidfd and, when it exits with the session still
 * recorded, starts this as a fresh process. It runs that session's close exactly as PAM would
 * (agent/phases/close-session.ts): the last one locks ~/Private and unlinks the keys.
 *
 * argv: UID SESSION-ID PID START (the record as the master read it; re-checked under the lock).
 */
import { joinSessionKeyring } from '../src/os/keyring';
import { lookupUid } from '../src/os/credentials';
import { createLazyLogger } from '../src/os/log';
import { SESSION_ID_RE, type AgentRequest } from '../src/formats/protocol';
import { processStart } from '../src/actions/session';
import { handleCloseSession } from './phases/close-session';
import { phaseContext } from './serve';

export const REAPER_SERVICE = 'ecryptfs-agent-reaper';

export function reapSession(args: readonly string[]): number {
  const [uidText, id, pidText, start] = args;
  const log = createLazyLogger();
  const uid = Number(uidText);
  const pid = Number(pidText);
  if (!/^[0-9]+$/.test(uidText ?? '') || !/^[0-9]+$/.test(pidText ?? '') || !SESSION_ID_RE.test(id ?? '') || !/^[0-9]+$/.test(start ?? '') || uid === 0) {
    log.error('reap: bad arguments', { args: args.join(' ') });
    return 2;
  }
  if (processStart(pid) === start) {
    log.warning('reap: the session process is still alive; nothing done', { uid, session: id, pid });
    return 0;
  }
  try {
    joinSessionKeyring();
    const user = lookupUid(uid);
    log.notice('session ended without close_session (its process is gone): closing it', { user: user.name, session: id, pid });
    const req: AgentRequest = {
      phase: 'close_session',
      user: user.name,
      service: REAPER_SERVICE,
      tty: '',
      rhost: '',
      ruser: '',
      pamPid: pid,
      session: id as string,
      unwrap: false,
      debug: false,
      silent: true,
    };
    handleCloseSession(phaseContext(req, user, log));
  } catch (e) {
    log.error(`reap: ${(e as Error).message}`, { uid, session: id });
    return 1;
  }
  return 0;
}
