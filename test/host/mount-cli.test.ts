/**
 * `ecryptfs-agent mount` / `umount` as a command (spawned, as root and as a user) on the host:
 * what needs no eCryptfs module. Bad arguments and bad paths give a clear message and change
 * nothing: no mount, no key in root's keyring, no sig cache written. (Mounting is proven in the
 * VM suite, test/vm/mount.vm.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildPasswordAuthTok } from '../../src/formats/auth-tok';
import { DEFAULT_SALT } from '../../src/formats/kdf';
import { describeKey, KEY_SPEC, listKeyring } from '../../src/os/keyring';
import { findMountsAt } from '../../src/os/mount';
import { sigCachePath } from '../../src/actions/sig-cache';
import { REPO } from '../helpers/agent';
import { createUser, deleteUser } from '../helpers/users';

const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const base = mkdtempSync(join(tmpdir(), 'eat-mountcli-'));
const lower = join(base, 'lower');
const upper = join(base, 'upper');
mkdirSync(lower);
mkdirSync(upper);
writeFileSync(join(base, 'file'), 'x');
symlinkSync(upper, join(base, 'link'));
const user = createUser('eatmnt');
after(() => {
  deleteUser(user);
  rmSync(base, { recursive: true, force: true });
});

const PASSPHRASE = `mount-cli-${randomBytes(6).toString('hex')}`;
const SIG = buildPasswordAuthTok(Buffer.from(PASSPHRASE), DEFAULT_SALT).sig;
const ROOT_CACHE = sigCachePath('/root');
const FLAGS = ['--cipher', 'aes', '--key-bytes', '16', '--no-passthrough', '--no-fnek', '--passphrase-stdin'];

function run(args: string[], input = `${PASSPHRASE}\n`): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, args, { input, encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

/** root's @u holds a key with this description (read as the keyring's owner: no possession needed). */
function rootHasKey(sig: string): boolean {
  return listKeyring(KEY_SPEC.USER).some((id) => {
    try {
      return describeKey(id).description === sig;
    } catch {
      return false;
    }
  });
}

function assertNothingChanged(what: string, cacheBefore: string | null): void {
  assert.equal(findMountsAt(upper).length, 0, `${what}: nothing mounted`);
  assert.equal(rootHasKey(SIG), false, `${what}: no key left in root's keyring`);
  assert.equal(readOrNull(ROOT_CACHE), cacheBefore, `${what}: sig cache untouched`);
}

test('usage errors exit 2 with the reason and the usage text', () => {
  const cacheBefore = readOrNull(ROOT_CACHE);
  const cases: [string[], RegExp][] = [
    [[], /LOWER and UPPER are required/],
    [[lower], /LOWER and UPPER are required/],
    [[lower, upper, 'extra'], /unexpected argument: extra/],
    [[lower, upper, '--bogus'], /Unknown option '--bogus'/],
    [[lower, upper, '--key-bytes', 'sixteen'], /--key-bytes wants a number of bytes/],
    [[lower, upper, '--fnek', '--no-fnek'], /contradict/],
    [[lower, upper, '--cipher', 'serpent', ...FLAGS.slice(2)], /unknown cipher "serpent": choose one of aes, blowfish, des3_ede, twofish, cast6, cast5/],
    [[lower, upper, '--cipher', 'cast5', '--key-bytes', '32', ...FLAGS.slice(4)], /32 key bytes are not valid for cast5: use 16/],
    [[lower, upper, '--cipher', 'aes', '--passphrase-stdin'], /not a terminal, so nothing can be asked: give --key-bytes N, --passthrough or --no-passthrough, --fnek or --no-fnek/],
    [[lower, upper, ...FLAGS.slice(0, -1)], /give --passphrase-stdin/],
    [[lower, upper, '--fnek-sig', 'abc', ...FLAGS.slice(0, 4), '--passphrase-stdin'], /FNEK signature "abc" is not 16 hex digits/],
    [[lower, lower, ...FLAGS], /the lower directory and the mount point are the same directory/],
  ];
  for (const [args, why] of cases) {
    const r = run(['mount', ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why, args.join(' '));
    assertNothingChanged(args.join(' '), cacheBefore);
  }
  assert.equal(run(['umount']).status, 2);
  assert.match(run(['mount', '--help']).stdout, /Usage: ecryptfs-agent mount LOWER UPPER/);
});

test('bad paths are refused before the passphrase is read: exit 1, the path named', () => {
  const cacheBefore = readOrNull(ROOT_CACHE);
  const cases: [string, string, RegExp][] = [
    [join(base, 'missing'), upper, /lower directory .*missing does not exist/],
    [lower, join(base, 'missing'), /mount point .*missing does not exist/],
    [lower, join(base, 'link'), /link is a symbolic link; the mount point itself must be a real directory/],
    [join(base, 'link'), lower, /link is a symbolic link; the lower directory itself must be a real directory/],
    [join(base, 'file'), upper, /file is not a directory/],
    [lower, '/proc/self', /symbolic link|unapproved filesystem type/],
    [lower, '/proc/sys', /refusing to mount over an unapproved filesystem type: 0x9fa0/],
  ];
  for (const [l, u, why] of cases) {
    const r = run(['mount', l, u, ...FLAGS]);
    assert.equal(r.status, 1, `${l} ${u}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /\nhint: /);
    assert.doesNotMatch(r.stdout, /Attempting to mount/, 'refused before any key was made');
    assertNothingChanged(`${l} ${u}`, cacheBefore);
  }
});

test('umount refuses what is not an eCryptfs mount, a symlink, a missing path', () => {
  const cases: [string, RegExp][] = [
    [upper, /upper is not an eCryptfs mount; nothing changed/],
    ['/proc', /\/proc is not an eCryptfs mount \(it is a proc mount\)/],
    [join(base, 'link'), /link is a symbolic link; name the mount point itself/],
    [join(base, 'missing'), /missing does not exist/],
  ];
  for (const [p, why] of cases) {
    const r = run(['umount', p], '');
    assert.equal(r.status, 1, `${p}: ${r.stderr}`);
    assert.match(r.stderr, why);
  }
  assert.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(' /proc '), '/proc is still mounted');
});

test('not root: both commands say they need root, and do nothing', () => {
  for (const args of [['mount', lower, upper, ...FLAGS], ['umount', upper]]) {
    const r = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--reset-env', CLI, ...args], { input: `${PASSPHRASE}\n`, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`ecryptfs-agent ${args[0]}: ${args[0]} needs root, as mount -t ecryptfs does\\nhint: Run it with sudo`));
  }
  assertNothingChanged('as a user', readOrNull(ROOT_CACHE));
});
