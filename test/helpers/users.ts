/**
 * Throwaway users and eCryptfs setups for host and VM tests, built with the REFERENCE tools
 * (ecryptfs-utils 111), never with our own code, so a test of ours against them means
 * something. Everything runs as root; user-side steps run as the user through setpriv (no
 * PAM stack involved).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  password: string;
}

export function createUser(prefix = 'eat', password = `pw-${randomBytes(6).toString('hex')} é`): TestUser {
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['-m', '-s', '/bin/bash', name]);
  const r = spawnSync('chpasswd', [], { input: `${name}:${password}\n` });
  if (r.status !== 0) throw new Error(`chpasswd failed: ${r.stderr}`);
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  const u = { name, uid, gid, home: `/home/${name}`, password };
  // useradd recycles the uids of deleted test users, and the kernel keeps a uid's user keyring
  // (_uid.N) with its keys: start from an empty one, and without the agent's notes about an
  // earlier holder of the uid (a run that was killed before its deleteUser).
  clearUserKeyring(u);
  removeAgentState(u.uid);
  return u;
}

/** The agent's per-uid files in /run/ecryptfs-agent (sessions, lock, last login, unlock failures …): uids are recycled. */
function removeAgentState(uid: number): void {
  const dir = '/run/ecryptfs-agent';
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(`${uid}.`)) rmSync(join(dir, n), { force: true });
}

export function clearUserKeyring(u: TestUser): void {
  asUserRun(u, ['keyctl', 'clear', '@u']);
}

export function deleteUser(u: TestUser): void {
  spawnSync('pkill', ['-KILL', '-u', u.name]);
  clearUserKeyring(u);
  spawnSync('userdel', ['-r', '-f', u.name], { stdio: 'ignore' });
  removeAgentState(u.uid);
}

/** Runs a command as the user with their groups, without PAM. */
export function asUserRun(u: TestUser, cmd: string[], input?: string | Buffer): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups', '--reset-env', ...cmd], {
    input,
    env: { HOME: u.home, USER: u.name, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    cwd: u.home,
  });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export interface UtilsSetup {
  mountPassphrase: string;
  fekSig: string;
  fnekSig?: string;
}

/**
 * The files `ecryptfs-setup-private` writes (it needs the kernel module, which the host lacks,
 * so the steps are done here with the same tools): wrapped-passphrase by
 * ecryptfs-wrap-passphrase, sigs as printed by ecryptfs-add-passphrase /
 * ecryptfs-insert-wrapped-passphrase-into-keyring in a throwaway session keyring.
 */
export function setupPrivateWithUtils(
  u: TestUser,
  opts: { fnek?: boolean; autoMount?: boolean; autoUmount?: boolean; mountPassphrase?: string } = {},
): UtilsSetup {
  const mountPassphrase = opts.mountPassphrase ?? randomBytes(16).toString('hex');
  const cfg = join(u.home, '.ecryptfs');
  for (const [dir, mode] of [[cfg, 0o700], [join(u.home, '.Private'), 0o700], [join(u.home, 'Private'), 0o500]] as const) {
    mkdirSync(dir, { mode });
    chownSync(dir, u.uid, u.gid);
  }
  const wrap = asUserRun(u, ['ecryptfs-wrap-passphrase', join(cfg, 'wrapped-passphrase'), '-'], `${mountPassphrase}\n${u.password}`);
  if (wrap.status !== 0) throw new Error(`ecryptfs-wrap-passphrase failed: ${wrap.stdout}${wrap.stderr}`);

  // In a throwaway session keyring as the user: insert both toks, read their descriptions back.
  const script = opts.fnek
    ? `printf '%s' "$1" | ecryptfs-insert-wrapped-passphrase-into-keyring "$2" - >/dev/null && keyctl rlist @u | tr ' ' '\\n' | while read id; do keyctl rdescribe "$id" | cut -d';' -f5; done; keyctl clear @u`
    : `printf '%s' "$3" | ecryptfs-add-passphrase - && keyctl clear @u`;
  const r = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', script, 'sh', u.password, join(cfg, 'wrapped-passphrase'), mountPassphrase]);
  if (r.status !== 0) throw new Error(`reference key insertion failed: ${r.stdout}${r.stderr}`);
  let fekSig: string;
  let fnekSig: string | undefined;
  if (opts.fnek) {
    // ecryptfs-insert-wrapped-passphrase-into-keyring adds the FNEK tok first, the main one second.
    const sigs = r.stdout.split('\n').filter((l) => /^[0-9a-f]{16}$/.test(l));
    if (sigs.length !== 2) throw new Error(`expected two sigs, got: ${r.stdout}`);
    // Tell which is which with the main sig from ecryptfs-add-passphrase (no module needed for it).
    const main = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `printf '%s' "$1" | ecryptfs-add-passphrase - && keyctl clear @u`, 'sh', mountPassphrase]);
    fekSig = /sig \[([0-9a-f]{16})\]/.exec(main.stdout)?.[1] ?? '';
    fnekSig = sigs.find((s) => s !== fekSig);
  } else {
    fekSig = /sig \[([0-9a-f]{16})\]/.exec(r.stdout)?.[1] ?? '';
  }
  if (!/^[0-9a-f]{16}$/.test(fekSig)) throw new Error(`no main sig in: ${r.stdout}`);
  const sigFile = fnekSig ? `${fekSig}\n${fnekSig}\n` : `${fekSig}\n`;
  const files: Array<[string, string]> = [
    ['Private.sig', sigFile],
    ['Private.mnt', `${u.home}/Private\n`],
  ];
  if (opts.autoMount ?? true) files.push(['auto-mount', '']);
  if (opts.autoUmount ?? true) files.push(['auto-umount', '']);
  for (const [name, content] of files) {
    writeFileSync(join(cfg, name), content, { mode: 0o600 });
    chownSync(join(cfg, name), u.uid, u.gid);
  }
  const out: UtilsSetup = { mountPassphrase, fekSig };
  if (fnekSig) out.fnekSig = fnekSig;
  return out;
}

export interface KernelKey {
  id: string;
  timeout: string;
  description: string;
}

/**
 * The `user` keys linked in the user's keyring (@u), as the kernel reports them to that user:
 * membership from `keyctl rlist @u` (exact; /proc/keys may still list an unlinked key until the
 * kernel's key garbage collector runs), expiry from /proc/keys.
 */
export function userKeys(u: TestUser): KernelKey[] {
  const script = 'keyctl link @u @s >/dev/null && for id in $(keyctl rlist @u); do printf "%x;%s\\n" "$id" "$(keyctl rdescribe "$id")"; done; echo; cat /proc/keys';
  const r = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', script]);
  const [linked = '', procKeys = ''] = r.stdout.split('\n\n');
  const timeouts = new Map<string, string>();
  // "0a0c4514 I--Q---     1 perm 3f010000  1000  1000 user      abcdef0123456789: 740"
  for (const f of procKeys.split('\n').map((l) => l.trim().split(/\s+/))) timeouts.set((f[0] ?? '').replace(/^0+/, ''), f[3] ?? '');
  return linked
    .split('\n')
    .map((l) => l.split(';'))
    .filter((f) => f[1] === 'user' && f[2] === String(u.uid))
    .map((f) => ({ id: f[0] as string, timeout: timeouts.get((f[0] as string).replace(/^0+/, '')) ?? '', description: f[5] as string }));
}
