/**
 * chauthtok (PAM_UPDATE_AUTHTOK): re-wrap ~/.ecryptfs/wrapped-passphrase with the new login
 * password, atomically. When the old password does not unwrap it, or there is no old password
 * (root reset), nothing changes and both the log and the person changing it are told what the
 * user must run. The password change itself is never blocked.
 */
import { changeLoginPassword } from '../../src/actions/login';
import type { AgentReply } from '../../src/formats/protocol';
import { ignore, success, type PhaseContext } from '../context';

export function handleChauthtok(ctx: PhaseContext): AgentReply {
  const { req, user, setup, log, store } = ctx;
  const base = { user: user.name, phase: 'chauthtok' };
  if (!setup || !req.authtok || req.authtok.length === 0) return ignore();
  log.load(); // before the user's lock
  const o = changeLoginPassword(user, setup, store, req.oldauthtok, req.authtok);
  const fix = `${user.name} must run: ecryptfs-agent rewrap-passphrase ~/.ecryptfs/wrapped-passphrase (old password, then new)`;
  switch (o.kind) {
    case 'rewrapped':
      log.notice('wrapped passphrase re-wrapped with the new password', { ...base, outcome: 'rewrapped' });
      return success();
    case 'not-wrapped-with-login-password':
      if (setup.wrappingIndependent) log.info('wrapping passphrase is independent of the login password; not re-wrapping', { ...base, outcome: 'skipped' });
      return ignore();
    case 'not-rewrapped':
      if (o.reason === 'no-old-password') {
        log.warning('password set without the old one; the wrapped passphrase keeps the old wrapping', { ...base, outcome: 'not-rewrapped', fix });
        return ignore([], [`The encrypted Private directory of ${user.name} is still wrapped with the old password. ${fix}`]);
      }
      {
        const err = o.error!;
        const why = err.code === 'WRONG_PASSWORD' ? 'the old password does not unwrap it' : err.message;
        log.error(`not re-wrapped: ${why}`, { ...base, outcome: 'not-rewrapped', code: err.code, fix });
        return ignore([], [`The wrapped passphrase was not updated (${why}); nothing was changed. ${fix}`]);
      }
  }
}
