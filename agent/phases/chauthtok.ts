/**
 * chauthtok (PAM_UPDATE_AUTHTOK): re-wrap ~/.ecryptfs/wrapped-passphrase with the new login
 * password, atomically. When the old password does not unwrap it, or there is no old password
 * (root reset), nothing changes and both the log and the person changing it are told what the
 * user must run. The password change itself is never blocked.
 */
import { AgentError } from '../../src/errors';
import type { AgentReply } from '../../src/protocol';
import { rewrapForNewPassword } from '../../src/unlock';
import { ignore, success, underUserLock, type PhaseContext } from '../context';

export function handleChauthtok(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log } = ctx;
  const base = { user: user.name, phase: 'chauthtok' };
  if (!setup || !setup.hasWrappedPassphrase) return ignore();
  if (setup.wrappingIndependent) {
    log.info('wrapping passphrase is independent of the login password; not re-wrapping', { ...base, outcome: 'skipped' });
    return ignore();
  }
  if (!req.authtok || req.authtok.length === 0) return ignore();
  const fix = `${user.name} must run: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase (old password, then new)`;
  if (!req.oldauthtok || req.oldauthtok.length === 0) {
    log.warning('password set without the old one; the wrapped passphrase keeps the old wrapping', { ...base, outcome: 'not-rewrapped', fix });
    return ignore([], [`The encrypted Private directory of ${user.name} is still wrapped with the old password. ${fix}`]);
  }
  try {
    underUserLock(ctx, () => rewrapForNewPassword(user, setup, req.oldauthtok as Buffer, req.authtok as Buffer));
  } catch (e) {
    const err = e instanceof AgentError ? e : new AgentError('IO', (e as Error).message);
    const why = err.code === 'WRONG_PASSWORD' ? 'the old password does not unwrap it' : err.message;
    log.error(`not re-wrapped: ${why}`, { ...base, outcome: 'not-rewrapped', code: err.code, fix });
    return ignore([], [`The wrapped passphrase was not updated (${why}); nothing was changed. ${fix}`]);
  }
  log.notice('wrapped passphrase re-wrapped with the new password', { ...base, outcome: 'rewrapped' });
  return success();
}
