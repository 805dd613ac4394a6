/**
 * Helpers for the root-only host tests of the native layer: throwaway users, shell
 * commands, and node children in their own anonymous session keyring
 * (`keyctl session - node -e …`) so no test leaves keys in the runner's keyrings.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** dist/src of the compiled library, for require() in child scripts. */
export const DIST_SRC = join(__dirname, '..', '..', 'src');

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

export function sh(cmd: string, input?: string | Buffer): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', cmd], { input, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function mustSh(cmd: string, input?: string | Buffer): string {
  const r = sh(cmd, input);
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export function createUser(): TestUser {
  const name = `eat_${randomBytes(4).toString('hex')}`;
  mustSh(`useradd -M -s /usr/sbin/nologin ${name}`);
  return { name, uid: Number(mustSh(`id -u ${name}`)), gid: Number(mustSh(`id -g ${name}`)) };
}

/** Empties the user's @u (it outlives the account and would be inherited by a reused uid), then deletes it. */
export function deleteUser(u: TestUser): void {
  sh(`runuser -u ${u.name} -- keyctl session - keyctl clear @u`);
  sh(`userdel ${u.name}`);
}

/** As the user, in a new session keyring that links @u (what pam_keyinit gives a login). */
export function asUserKeyctl(u: TestUser, script: string): { status: number; stdout: string; stderr: string } {
  return sh(`runuser -u ${u.name} -- keyctl session - sh -c 'keyctl link @u @s >/dev/null && ${script}'`);
}

/**
 * Runs `body` (JS source; may use k=keyring, c=credentials, n=native addon, m=mount,
 * T(fn) → value or {err: errno|code}, asFullUser(user, fn)) in a fresh node under `keyctl session -`;
 * the value of the last `out(x)` call is returned (JSON).
 */
export function inSession<R = unknown>(body: string, args: string[] = []): R {
  const prelude = `
    const k = require(${JSON.stringify(join(DIST_SRC, 'os', 'keyring.js'))});
    const c = require(${JSON.stringify(join(DIST_SRC, 'os', 'credentials.js'))});
    const m = require(${JSON.stringify(join(DIST_SRC, 'os', 'mount.js'))});
    const n = require(${JSON.stringify(join(DIST_SRC, 'os', 'native.js'))}).native();
    const T = (f) => { try { const v = f(); return v === undefined ? null : v; } catch (e) { return { err: typeof e.errno === 'string' ? e.errno : e.code, code: e.code }; } };
    // the user's real and effective ids (the agent never takes the real one: tests of what the
    // kernel does for the user herself); saved uid 0, so root comes back afterwards
    const asFullUser = (user, fn) => {
      const groups = n.getgroups();
      n.setgroups(n.getgrouplist(user.name, user.gid)); n.setresgid(user.gid, user.gid, 0); n.setresuid(user.uid, user.uid, 0);
      try { return fn(); } finally { n.setresuid(0, 0, 0); n.setgroups(groups); n.setresgid(0, 0, 0); }
    };
    let result;
    const out = (x) => { result = x; };
    const argv = process.argv.slice(1);
  `;
  const code = `${prelude}\n${body}\nprocess.stdout.write('\\n@@RESULT ' + JSON.stringify(result) + '\\n');`;
  const r = spawnSync('keyctl', ['session', '-', process.execPath, '-e', code, ...args], { encoding: 'utf8' });
  const line = r.stdout.split('\n').find((l) => l.startsWith('@@RESULT '));
  if (r.status !== 0 || line === undefined) throw new Error(`child failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return JSON.parse(line.slice('@@RESULT '.length)) as R;
}

/** A syntactically valid 740-byte auth tok for sig (version 04 00, sig at 712, fill byte elsewhere). */
export function fakeAuthTok(sig: string, fill = 0x5a): Buffer {
  const b = Buffer.alloc(740);
  b.fill(fill, 648, 712);
  b[0] = 4;
  b[1] = 0;
  b.write(sig, 712, 'latin1');
  b[728] = 0;
  return b;
}

export function randomSig(): string {
  return randomBytes(8).toString('hex');
}

/** /proc/keys lines visible to the user (root without possession does not see a user's keys). */
export function procKeysAs(u: TestUser, needle: string): string[] {
  return sh(`runuser -u ${u.name} -- cat /proc/keys`)
    .stdout.split('\n')
    .filter((l) => l.includes(needle));
}
