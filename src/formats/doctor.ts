/**
 * `ecryptfs-agent doctor`: pure evaluation. Every check takes facts gathered elsewhere
 * (src/actions/doctor-facts.ts gatherDoctorFacts: /proc, /sys, /etc/pam.d, /etc/crypttab, lstat of the
 * user's files) and returns findings: ok / warn / fail, one line why, one line fix. No I/O
 * here, so every rule is unit-tested with hand-made facts.
 */
import type { Finding, PamFacts, Severity } from './doctor-finding';
import { checkPam } from './pam-doctor';

export type { Finding, PamFacts, PamStackFile, Severity } from './doctor-finding';

export interface KernelFacts {
  /** content of /proc/filesystems, null when unreadable */
  procFilesystems: string | null;
  /** /sys/fs/ecryptfs/version, null when absent (module not loaded) */
  ecryptfsVersion: number | null;
  /**
   * ecryptfs in modules.builtin / modules.dep of the running kernel; 'file-missing': modules.dep
   * names a module file that is not there (modprobe fails although the index lists it)
   */
  moduleAvailable: 'builtin' | 'module' | 'file-missing' | 'absent' | 'unknown';
  /** the module file modules.dep names, when it does */
  moduleFile?: string;
  release: string;
  /** content of /proc/crypto, null when unreadable */
  procCrypto: string | null;
}

export interface SwapFact {
  /** first column of /proc/swaps */
  path: string;
  /** partition | file */
  type: string;
  /** what backs it, found through /sys/block (dm slaves followed) */
  backing: 'zram' | 'dm-crypt' | 'plain' | 'unknown';
  /** name of the dm-crypt device (/sys/block/dm-N/dm/name), when backing is dm-crypt */
  cryptName?: string;
  /** dm uuid of the crypt device, e.g. CRYPT-PLAIN-cryptswap / CRYPT-LUKS2-... */
  cryptUuid?: string;
}

export interface FileFact {
  /** role in the setup */
  role: 'config-dir' | 'wrapped-passphrase' | 'Private.sig' | 'Private.mnt' | 'lower' | 'upper';
  path: string;
  kind: 'missing' | 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  size: number;
}

export interface UserFacts {
  name: string;
  uid: number;
  files: FileFact[];
}

export interface DoctorFacts {
  kernel: KernelFacts;
  pam: PamFacts;
  swaps: SwapFact[] | null;
  crypttab: string | null;
  /** absent: no user chosen (root without -u) */
  user?: UserFacts;
}

export { OUR_MODULE, REFERENCE_MODULE, checkPam } from './pam-doctor';
const ok = (id: string, why: string): Finding => ({ id, status: 'ok', why, fix: '' });

// ------------------------------------------------------------------ kernel

export function procHasFilesystem(procFilesystems: string, fs: string): boolean {
  return procFilesystems.split('\n').some((l) => l.trim().split(/\s+/).pop() === fs);
}

/** Names of the algorithms /proc/crypto lists ("name : aes"). */
export function procCryptoNames(procCrypto: string): Set<string> {
  const names = new Set<string>();
  for (const l of procCrypto.split('\n')) {
    const m = /^name\s*:\s*(\S+)/.exec(l);
    if (m) names.add(m[1] as string);
  }
  return names;
}

/** The ecryptfs module file that modules.dep lists (a path relative to /lib/modules/RELEASE), or null. */
export function ecryptfsModuleInDep(modulesDep: string): string | null {
  const m = /^((?:\S*\/)?ecryptfs\.ko(?:\.[a-z]+)?):/m.exec(modulesDep);
  return m ? (m[1] as string) : null;
}

export function checkKernel(k: KernelFacts): Finding[] {
  const out: Finding[] = [];
  const loaded = (k.procFilesystems !== null && procHasFilesystem(k.procFilesystems, 'ecryptfs')) || k.ecryptfsVersion !== null;
  if (loaded) {
    out.push(ok('kernel.ecryptfs', `eCryptfs is available in kernel ${k.release}${k.ecryptfsVersion !== null ? ` (version ${k.ecryptfsVersion})` : ''}`));
    if (k.ecryptfsVersion === null) {
      out.push({ id: 'kernel.fnek', status: 'warn', why: '/sys/fs/ecryptfs/version is missing: filename-encryption support unknown', fix: 'Mount sysfs at /sys' });
    } else if ((k.ecryptfsVersion & 0x100) !== 0) {
      out.push(ok('kernel.fnek', 'the kernel supports filename encryption (FNEK)'));
    } else {
      out.push({
        id: 'kernel.fnek',
        status: 'warn',
        why: 'the kernel does not support filename encryption: new setups store file names in clear',
        fix: 'Use a kernel >= 2.6.29 with eCryptfs filename encryption',
      });
    }
  } else if (k.moduleAvailable === 'module' || k.moduleAvailable === 'builtin') {
    out.push({
      id: 'kernel.ecryptfs',
      status: 'warn',
      why: `eCryptfs is not loaded, but kernel ${k.release} has the module (mount loads it on demand; setup-private needs it loaded)`,
      fix: 'modprobe ecryptfs && echo ecryptfs > /etc/modules-load.d/ecryptfs.conf',
    });
  } else if (k.moduleAvailable === 'file-missing') {
    out.push({
      id: 'kernel.ecryptfs',
      status: 'fail',
      why: `eCryptfs module missing: modules.dep of kernel ${k.release} lists ${k.moduleFile ?? 'ecryptfs.ko'}, but the file is not there (modprobe ecryptfs fails)`,
      fix: `Reinstall the kernel's modules (Debian: apt-get install --reinstall linux-image-${k.release}), then depmod -a and modprobe ecryptfs`,
    });
  } else {
    out.push({
      id: 'kernel.ecryptfs',
      status: 'fail',
      why: `eCryptfs module missing: kernel ${k.release} cannot mount eCryptfs (not in /proc/filesystems${k.moduleAvailable === 'absent' ? ', no ecryptfs.ko' : ''})`,
      fix: 'Boot a kernel built with CONFIG_ECRYPT_FS (Debian: linux-image-amd64), then modprobe ecryptfs',
    });
  }
  const names = k.procCrypto === null ? null : procCryptoNames(k.procCrypto);
  if (names?.has('aes')) out.push(ok('kernel.aes', 'the aes cipher is registered (/proc/crypto)'));
  else {
    out.push({
      id: 'kernel.aes',
      status: 'warn',
      why: names === null ? '/proc/crypto is unreadable: cannot tell whether aes is available' : 'aes is not in /proc/crypto yet (the crypto API may load it on demand)',
      fix: 'modprobe aes (or aesni_intel / aes_generic); eCryptfs mounts use ecryptfs_cipher=aes',
    });
  }
  return out;
}

// ------------------------------------------------------------------ swap

export interface CrypttabEntry {
  name: string;
  device: string;
  key: string;
  options: string[];
}

export function parseCrypttab(text: string): CrypttabEntry[] {
  const out: CrypttabEntry[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*$/, '').trim();
    if (l === '') continue;
    const [name, device, key, opts] = l.split(/\s+/);
    if (name === undefined || device === undefined) continue;
    out.push({ name, device, key: key ?? 'none', options: (opts ?? '').split(',').filter((o) => o !== '') });
  }
  return out;
}

/** /proc/swaps: Filename Type Size Used Priority (the path's spaces are escaped as \040). */
export function parseProcSwaps(text: string): Array<{ path: string; type: string }> {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map((f) => ({ path: (f[0] as string).replace(/\\040/g, ' '), type: f[1] as string }));
}

const RANDOM_KEYS = new Set(['/dev/urandom', '/dev/random']);

export function checkSwap(swaps: SwapFact[] | null, crypttab: string | null): Finding[] {
  const id = 'swap';
  if (swaps === null) return [{ id, status: 'warn', why: '/proc/swaps is unreadable', fix: 'Mount /proc' }];
  if (swaps.length === 0) return [ok(id, 'no swap in use: decrypted pages and keys cannot be written to disk')];
  const entries = crypttab === null ? [] : parseCrypttab(crypttab);
  const out: Finding[] = [];
  for (const s of swaps) {
    if (s.backing === 'zram') {
      out.push(ok(id, `${s.path} is zram (compressed RAM, never written to disk)`));
    } else if (s.backing === 'dm-crypt') {
      const e = entries.find((x) => x.name === s.cryptName);
      const random = e !== undefined && (RANDOM_KEYS.has(e.key) || e.options.includes('swap'));
      const plainRandom = e === undefined && s.cryptUuid?.startsWith('CRYPT-PLAIN') === true;
      out.push(
        ok(
          id,
          random || plainRandom
            ? `${s.path} is encrypted with dm-crypt (${s.cryptName ?? '?'}) using a random key per boot`
            : `${s.path} is on dm-crypt (${s.cryptName ?? '?'}) with a persistent key (encrypted at rest)`,
        ),
      );
    } else {
      out.push({
        id,
        status: s.backing === 'unknown' ? 'warn' : 'fail',
        why:
          s.backing === 'unknown'
            ? `cannot tell whether swap ${s.path} is encrypted`
            : `swap ${s.path} is not encrypted: decrypted file pages and keys can be written to disk in clear`,
        fix: `Encrypt it with a random key per boot: in /etc/crypttab "cryptswap ${s.path} /dev/urandom swap,cipher=aes-xts-plain64,size=256", use /dev/mapper/cryptswap in /etc/fstab (or ecryptfs-setup-swap); or use zram`,
      });
    }
  }
  return out;
}

// ------------------------------------------------------------------ the user's files

export function checkUserFiles(u: UserFacts | undefined): Finding[] {
  if (u === undefined) return [];
  const f = (role: FileFact['role']): FileFact | undefined => u.files.find((x) => x.role === role);
  const cfg = f('config-dir');
  if (cfg === undefined || cfg.kind === 'missing') return [ok('files', `${u.name} has no ~/.ecryptfs: no private directory set up`)];
  const out: Finding[] = [];
  const oct = (m: number): string => (m & 0o7777).toString(8).padStart(4, '0');
  const chown = (p: string): string => `chown ${u.name}: ${p}`;
  // ~/.ecryptfs
  if (cfg.kind === 'symlink') out.push(ok('files.config-dir', `${cfg.path} is a symbolic link (encrypted-home layout); its target is checked when used`));
  else if (cfg.kind !== 'dir') out.push({ id: 'files.config-dir', status: 'fail', why: `${cfg.path} is not a directory`, fix: `Move it away and set up again` });
  else if (cfg.uid !== u.uid) out.push({ id: 'files.config-dir', status: 'fail', why: `${cfg.path} is owned by uid ${cfg.uid}, not ${u.name}: the agent refuses it`, fix: chown(cfg.path) });
  else if ((cfg.mode & 0o022) !== 0) out.push({ id: 'files.config-dir', status: 'fail', why: `${cfg.path} is writable by others (mode ${oct(cfg.mode)}): they could replace your key files`, fix: `chmod 700 ${cfg.path}` });
  else if ((cfg.mode & 0o077) !== 0) out.push({ id: 'files.config-dir', status: 'warn', why: `${cfg.path} is readable by others (mode ${oct(cfg.mode)})`, fix: `chmod 700 ${cfg.path}` });
  else out.push(ok('files.config-dir', `${cfg.path} is ${u.name}'s, mode ${oct(cfg.mode)}`));

  const sig = f('Private.sig');
  if (sig === undefined || sig.kind === 'missing') {
    out.push(ok('files.Private.sig', `no ${cfg.path}/Private.sig: no private directory set up`));
    return out;
  }
  // the key file: the wrapping only protects it as much as the password does
  const wp = f('wrapped-passphrase');
  if (wp === undefined || wp.kind === 'missing') {
    out.push({ id: 'files.wrapped-passphrase', status: 'warn', why: `${cfg.path}/wrapped-passphrase is missing: logins cannot unlock`, fix: 'Wrap your recorded mount passphrase: ecryptfs-agent wrap-passphrase ~/.ecryptfs/wrapped-passphrase' });
  } else if (wp.kind !== 'file') {
    out.push({ id: 'files.wrapped-passphrase', status: 'fail', why: `${wp.path} is not a regular file`, fix: 'Replace it with the real file from a backup' });
  } else if (wp.uid !== u.uid) {
    out.push({ id: 'files.wrapped-passphrase', status: 'fail', why: `${wp.path} is owned by uid ${wp.uid}, not ${u.name}`, fix: chown(wp.path) });
  } else if ((wp.mode & 0o077) !== 0) {
    out.push({ id: 'files.wrapped-passphrase', status: 'fail', why: `${wp.path} is accessible to others (mode ${oct(wp.mode)}): they can attack your password offline`, fix: `chmod 600 ${wp.path}` });
  } else {
    out.push(ok('files.wrapped-passphrase', `${wp.path} is ${u.name}'s, mode ${oct(wp.mode)}`));
  }
  for (const role of ['Private.sig', 'Private.mnt'] as const) {
    const x = f(role);
    const id = `files.${role}`;
    if (x === undefined || x.kind === 'missing') {
      if (role === 'Private.mnt') out.push(ok(id, `no ${role}: the mount point is ~/Private`));
      continue;
    }
    if (x.kind !== 'file') out.push({ id, status: 'fail', why: `${x.path} is not a regular file (the agent refuses symbolic links)`, fix: 'Replace it with a regular file' });
    else if (x.uid !== u.uid && x.uid !== 0) out.push({ id, status: 'fail', why: `${x.path} is owned by uid ${x.uid}: the agent refuses it`, fix: chown(x.path) });
    else if ((x.mode & 0o022) !== 0) out.push({ id, status: 'fail', why: `${x.path} is writable by others (mode ${oct(x.mode)})`, fix: `chmod 600 ${x.path}` });
    else out.push(ok(id, `${x.path} is ${x.uid === 0 ? 'root' : u.name}'s, mode ${oct(x.mode)}`));
  }
  for (const role of ['lower', 'upper'] as const) {
    const x = f(role);
    const id = `files.${role === 'lower' ? 'Private-lower' : 'Private-mountpoint'}`;
    if (x === undefined) continue;
    const what = role === 'lower' ? 'the encrypted directory' : 'the mount point';
    if (x.kind === 'missing') out.push({ id, status: 'fail', why: `${what} ${x.path} does not exist`, fix: role === 'lower' ? 'Restore ~/.Private from a backup' : `mkdir -m 500 ${x.path} (as ${u.name})` });
    else if (x.kind !== 'dir' && !(role === 'lower' && x.kind === 'symlink')) out.push({ id, status: 'fail', why: `${what} ${x.path} is not a directory`, fix: 'Move it away and restore the directory' });
    else if (x.uid !== u.uid && x.kind !== 'symlink') out.push({ id, status: 'fail', why: `${what} ${x.path} is owned by uid ${x.uid}: mounting is refused`, fix: chown(x.path) });
    else if (role === 'lower' && x.kind === 'dir' && (x.mode & 0o077) !== 0) out.push({ id, status: 'warn', why: `${x.path} is accessible to others (mode ${oct(x.mode)}): they can see file sizes and times`, fix: `chmod 700 ${x.path}` });
    else out.push(ok(id, `${what} ${x.path} is ${u.name}'s${x.kind === 'dir' ? `, mode ${oct(x.mode)}` : ''}`));
  }
  return out;
}

// ------------------------------------------------------------------ all

/** The way off eCryptfs, said once as information: never a warning, nothing to fix. */
export const LEAVING_ECRYPTFS: Finding = {
  id: 'ecryptfs.leaving',
  status: 'info',
  why: 'eCryptfs is in maintenance only upstream; `ecryptfs-agent export` reads ~/.Private without the kernel module, and `migrate-out` moves a user off it, verified: `--to fscrypt` (ext4 encryption, unlocked at login by pam_fscrypt) or `--to plain` where the disk is encrypted as a whole (docs/leaving-ecryptfs.md)',
  fix: '',
};

export function evaluateDoctor(facts: DoctorFacts): Finding[] {
  return [...checkKernel(facts.kernel), ...checkPam(facts.pam), ...checkSwap(facts.swaps, facts.crypttab), ...checkUserFiles(facts.user), LEAVING_ECRYPTFS];
}

export function doctorExitCode(findings: Finding[]): number {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}

export function renderFindings(findings: Finding[]): string {
  const tag: Record<Severity, string> = { ok: 'ok  ', info: 'info', warn: 'WARN', fail: 'FAIL' };
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`[${tag[f.status]}] ${f.id}: ${f.why}`);
    if (f.fix !== '') lines.push(`       fix: ${f.fix}`);
  }
  const n = (s: Severity): number => findings.filter((f) => f.status === s).length;
  lines.push(`${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failure(s)`);
  return lines.join('\n') + '\n';
}

export function renderFindingsJson(findings: Finding[]): string {
  return JSON.stringify({ ok: doctorExitCode(findings) === 0, findings }, null, 1) + '\n';
}
