/**
 * `ecryptfs-agent status`: what a user's setup, keys, mount, extra mounts and sessions are now.
 * Read-only; the rendering is a pure function (renderStatus).
 */
import { AgentError, isAgentError } from '../errors';
import type { FileFact } from '../formats/doctor';
import { sigsOfMount } from '../formats/mountinfo';
import { asUser, type UserRef } from '../os/credentials';
import { userFileFacts } from './doctor-facts';
import { gatherExtraMountStatus, type ExtraMountStatus } from './extra-mounts';
import { keysPresent, possessUserKeyring } from './keys';
import { findPrivateMount } from './private-mount';
import { loadPrivateSetup, type PrivateSetup } from './private-setup';
import { type LastLogin, SessionStore } from './session';

export interface StatusReport {
  user: string;
  uid: number;
  /** null: no private directory set up */
  setup: Pick<PrivateSetup, 'configDir' | 'lower' | 'upper' | 'fekSig' | 'fnekSig' | 'autoMount' | 'autoUmount' | 'wrappingIndependent' | 'hasWrappedPassphrase'> | null;
  /** why the setup could not be read (bad owner, bad Private.sig ...) */
  setupError?: string;
  files: FileFact[];
  keys: { present: string[]; missing: string[] } | { error: string };
  mounted: { mountPoint: string; source: string; sigs: string[] } | null;
  /** live PAM sessions (root only: null otherwise) */
  sessions: number | null;
  /** how the last login's open_session ended (root only) */
  lastLogin: LastLogin | null;
  /** extra mounts (docs/extra-mounts.md); absent without a setup */
  extraMounts?: { entries: ExtraMountStatus[]; problems: string[] } | { error: string };
}

export function gatherStatus(user: UserRef, opts: { root: boolean; store?: SessionStore }): StatusReport {
  let setup: PrivateSetup | null = null;
  let setupError: string | undefined;
  try {
    setup = asUser(user, () => loadPrivateSetup(user));
  } catch (e) {
    setupError = isAgentError(e) ? `${e.message} (${e.code})` : (e as Error).message;
  }
  const report: StatusReport = {
    user: user.name,
    uid: user.uid,
    setup: null,
    files: userFileFacts(user, setup?.upper).files,
    keys: { error: 'no setup' },
    mounted: null,
    sessions: null,
    lastLogin: null,
  };
  if (setupError !== undefined) report.setupError = setupError;
  if (setup) {
    const s: NonNullable<StatusReport['setup']> = {
      configDir: setup.configDir,
      lower: setup.lower,
      upper: setup.upper,
      fekSig: setup.fekSig,
      autoMount: setup.autoMount,
      autoUmount: setup.autoUmount,
      wrappingIndependent: setup.wrappingIndependent,
      hasWrappedPassphrase: setup.hasWrappedPassphrase,
    };
    if (setup.fnekSig !== undefined) s.fnekSig = setup.fnekSig;
    report.setup = s;
    try {
      report.keys = keysPresent(possessUserKeyring(user), setup);
    } catch (e) {
      report.keys = { error: (e as Error).message };
    }
    const m = findPrivateMount(setup);
    if (m) report.mounted = { mountPoint: m.mountPoint, source: m.source, sigs: sigsOfMount(m) };
    try {
      report.extraMounts = gatherExtraMountStatus(user);
    } catch (e) {
      report.extraMounts = { error: (e as Error).message };
    }
  }
  if (opts.root) {
    const store = opts.store ?? new SessionStore();
    try {
      report.sessions = store.withUserLock(user.uid, () => store.load(user.uid).live.length);
    } catch (e) {
      if (!(e instanceof AgentError)) throw e;
    }
    report.lastLogin = store.lastLogin(user.uid);
  }
  return report;
}

export function renderStatus(r: StatusReport, now = Date.now()): string {
  const L: string[] = [`User ${r.user} (uid ${r.uid})`];
  if (r.setupError !== undefined) L.push(`  setup:        UNUSABLE: ${r.setupError}`);
  else if (r.setup === null) L.push('  setup:        none (no ~/.ecryptfs/Private.sig); create one with: ecryptfs-agent setup-private');
  else {
    const s = r.setup;
    L.push(`  setup:        ${s.lower} -> ${s.upper}`);
    L.push(`  sigs:         ${s.fekSig} (files)${s.fnekSig ? `, ${s.fnekSig} (file names)` : ', no filename encryption'}`);
    L.push(`  wrapped file: ${s.hasWrappedPassphrase ? 'present' : 'MISSING'}; matches Private.sig: not checked (needs the passphrase; "ecryptfs-agent unlock" checks it)`);
    L.push(`  unlocks with: ${s.wrappingIndependent ? 'a separate wrapping passphrase (ecryptfs-agent unlock)' : 'the login password'}`);
    L.push(`  at login:     ${s.autoMount ? 'mounted (auto-mount)' : 'not mounted (no auto-mount)'}; at last logout: ${s.autoUmount ? 'locked (auto-umount)' : 'kept (no auto-umount)'}`);
  }
  for (const f of r.files) {
    const desc = f.kind === 'missing' ? 'missing' : `${f.kind}, mode ${f.mode.toString(8).padStart(4, '0')}, uid ${f.uid}${f.kind === 'file' ? `, ${f.size} bytes` : ''}`;
    L.push(`  file ${f.role.padEnd(19)}${f.path}: ${desc}`);
  }
  if (r.setup !== null) {
    if ('error' in r.keys) L.push(`  keys in @u:   unknown (${r.keys.error})`);
    else L.push(`  keys in @u:   ${r.keys.missing.length === 0 ? 'all present' : r.keys.present.length === 0 ? 'none' : 'some'}${r.keys.present.length ? ` [present: ${r.keys.present.join(', ')}]` : ''}${r.keys.missing.length ? ` [missing: ${r.keys.missing.join(', ')}]` : ''}`);
    L.push(`  mounted:      ${r.mounted ? `yes, ${r.mounted.source} on ${r.mounted.mountPoint} (sigs ${r.mounted.sigs.join(', ')})` : 'no (locked)'}`);
    const x = r.extraMounts;
    if (x !== undefined && 'error' in x) L.push(`  extra mounts: unknown (${x.error})`);
    else if (x !== undefined) {
      L.push(`  extra mounts: ${x.entries.length === 0 && x.problems.length === 0 ? 'none' : `${x.entries.length} (/etc/fstab user,noauto lines and ~/.ecryptfs/extra-mounts)`}`);
      for (const e of x.entries) L.push(`    ${e.lower} -> ${e.upper}: ${e.mounted ? 'mounted' : 'not mounted'} [${e.where}]`);
      for (const p of x.problems) L.push(`    REFUSED ${p}`);
    }
  }
  L.push(`  sessions:     ${r.sessions === null ? 'not shown (root only)' : `${r.sessions} open PAM session(s)`}`);
  if (r.lastLogin) L.push(`  last login:   ${r.lastLogin.outcome}${r.lastLogin.code ? ` (${r.lastLogin.code})` : ''} via ${r.lastLogin.service}, ${Math.round((now - r.lastLogin.time) / 1000)} s ago`);
  else L.push(`  last login:   ${r.sessions === null ? 'not shown (root only)' : 'none recorded'}`);
  return L.join('\n') + '\n';
}
