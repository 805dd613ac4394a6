/**
 * `status` and `doctor`: read-only. Facts are gathered by src/actions/status.ts; doctor's rules are the
 * pure functions of src/formats/doctor.ts.
 */
import { escapeControls, escapeJsonControls } from '../formats/text';
import { lookupUser, lookupUid, type UserInfo } from '../os/credentials';
import { AgentError } from '../errors';
import { doctorExitCode, evaluateDoctor, renderFindings, renderFindingsJson } from '../formats/doctor';
import { gatherStatus, renderStatus } from '../actions/status';
import { gatherDoctorFacts } from '../actions/doctor-facts';
import { type CliIO, type Command, defineCommand } from './command';
import { NO_POSITIONALS, strict } from './args';

function fail(io: CliIO, cmd: string, e: unknown): number {
  const msg = e instanceof AgentError ? `${e.message}\nhint: ${e.hint}` : e instanceof Error ? e.message : String(e);
  io.err(`ecryptfs-agent ${cmd}: ${msg}\n`);
  return 1;
}

function whoFor(name: string | undefined): { user: UserInfo; root: boolean } {
  const me = lookupUid(process.getuid?.() ?? -1);
  const root = me.uid === 0;
  if (name === undefined) return { user: me, root };
  const user = lookupUser(name);
  if (!root && user.uid !== me.uid) throw new AgentError('PERMISSION', `only root can look at ${user.name}'s private directory`);
  return { user, root };
}

const STATUS_HELP = `Usage: ecryptfs-agent status [--json] [USER]

Shows the private directory of USER (default: you; other users: root only): the setup files
with their modes and owners, the sigs of Private.sig, whether the wrapped passphrase matches
them (not checked: that needs the passphrase; "unlock" checks it), whether the keys are in the
user keyring (@u), whether ~/Private is mounted, and, for root, the number of open PAM
sessions and the outcome of the last authentication.

Exit status:
  0  shown
  1  failed (no such user, not allowed)
  2  usage error`;

export const statusCommand = defineCommand({
  name: 'status',
  summary: 'show the state of a private directory: setup, keys, mount, sessions',
  help: STATUS_HELP,
  grammar: strict({ json: { type: 'boolean' } }, { max: 1, tooMany: 'too many arguments' }),
  async run({ positionals, options }, io) {
    try {
      const { user, root } = whoFor(positionals[0]);
      if (root && user.uid === 0) throw new AgentError('USAGE', 'root has no private directory here: name a user (ecryptfs-agent status USER)');
      const report = gatherStatus(user, { root });
      io.out(options.json === true ? escapeJsonControls(JSON.stringify(report, null, 1)) + '\n' : escapeControls(renderStatus(report), { keepNewlines: true }));
      return 0;
    } catch (e) {
      return fail(io, 'status', e);
    }
  },
});

const DOCTOR_HELP = `Usage: ecryptfs-agent doctor [--json] [-u USER]

Checks this system for what ecryptfs-agent needs, and says for each finding ok / WARN / FAIL,
why, and how to fix it:
  - the eCryptfs kernel module (loaded or loadable; filename-encryption support) and aes;
  - the PAM stacks of login, sshd and su (auth, session) and passwd (password), with their
    include, substack and @include lines followed: pam_ecryptfs_agent.so reached when the
    password is right, after pam_unix (not skipped by a jump, not after a sufficient
    pam_unix); no missing included file; no pam_ecryptfs.so acting as well;
  - swap: none, zram or dm-crypt is fine; unencrypted swap fails (decrypted data reaches disk);
  - modes and owners of the files of your setup (as root: of USER's with -u USER).

Exit status:
  0  no failure (warnings allowed)
  1  at least one failure
  2  usage error`;

export const doctorCommand = defineCommand({
  name: 'doctor',
  summary: 'check the kernel, PAM stacks, swap and file modes; say what to fix',
  help: DOCTOR_HELP,
  grammar: strict({ json: { type: 'boolean' }, username: { type: 'string', short: 'u' } }, NO_POSITIONALS),
  async run({ options }, io) {
    try {
      const { user, root } = whoFor(options.username);
      const facts = gatherDoctorFacts(root && user.uid === 0 ? undefined : user);
      const findings = evaluateDoctor(facts);
      io.out(options.json === true ? escapeJsonControls(renderFindingsJson(findings)) : escapeControls(renderFindings(findings), { keepNewlines: true }));
      return doctorExitCode(findings);
    } catch (e) {
      return fail(io, 'doctor', e);
    }
  },
});

export const diagnoseCommands: readonly Command[] = [statusCommand, doctorCommand];
