/** The shapes doctor's checks share (src/formats/doctor.ts, pam-doctor.ts): a finding, and the PAM facts. */

/** info: said once, never a problem (it changes neither the counts nor the exit code) */
export type Severity = 'ok' | 'info' | 'warn' | 'fail';

export interface Finding {
  /** stable id, e.g. "kernel.ecryptfs", "pam.auth.login", "swap", "files.wrapped-passphrase" */
  id: string;
  status: Severity;
  /** what was found, one line */
  why: string;
  /** what to do, one line ('' when nothing) */
  fix: string;
}

export interface PamStackFile {
  /** e.g. /etc/pam.d/common-auth */
  path: string;
  text: string;
}

/** What doctor reads of PAM: the service files and every file they include, as found on disk. */
export interface PamFacts {
  /** /etc/pam.d, or a test root's */
  dir: string;
  /** files that exist; an include naming a file not here is a missing include */
  files: PamStackFile[];
  /** /etc/os-release, to tell the distribution's layout */
  osRelease: string | null;
}
