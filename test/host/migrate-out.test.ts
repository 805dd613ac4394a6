/**
 * `ecryptfs-agent migrate-out --to plain` as root for a real account whose private directory
 * was set up with the reference tools (ecryptfs-utils 111) and filled with files in eCryptfs's
 * format (test/helpers/ecryptfs-writer.ts, checked against the kernel's output): no kernel module
 * is needed, so the whole run, its refusals, and a SIGKILL at every step it takes (each rename:
 * the journal's and the switch's) are proven here. The VM suites prove the same files were
 * written by the kernel (export.vm.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadPrivateSetup } from '../../src/actions/private-setup';
import { journalPath, MIGRATE_OUT_STATE_DIR } from '../../src/actions/migrate-out';
import { DEFAULT_SALT, deriveKey, FNEK_SALT } from '../../src/formats/kdf';
import { WRITER_CIPHERS, writeLowerFile, writeLowerName } from '../helpers/ecryptfs-writer';
import { createUser, deleteUser, setupPrivateWithUtils, type TestUser } from '../helpers/users';

const REPO = join(__dirname, '..', '..', '..');
const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const asRoot = process.geteuid?.() === 0;
const skip = !asRoot && 'needs root (real accounts, usermod, /var/lib)';
const users: TestUser[] = [];
after(() => {
  for (const u of users) {
    deleteUser(u);
    fs.rmSync(journalPath(u.name), { force: true });
    fs.rmSync(join(MIGRATE_OUT_STATE_DIR, `${u.name}.lock`), { force: true });
  }
});

interface Account {
  u: TestUser;
  /** relative path → plaintext bytes (files), '->target' (symlinks), null (directories) */
  plain: Map<string, Buffer | string | null>;
}

/** A user with a reference setup (FNEK on) and a few files in ~/.Private, owned by them. */
function account(): Account {
  const u = createUser('eatmo');
  users.push(u);
  const mp = randomBytes(16).toString('hex');
  const setup = setupPrivateWithUtils(u, { fnek: true, mountPassphrase: mp });
  const fek = deriveKey(Buffer.from(mp), DEFAULT_SALT);
  const fnek = deriveKey(Buffer.from(mp), FNEK_SALT);
  assert.equal(fek.sig, setup.fekSig, 'the sig our KDF gives is the reference tools\'');
  const aes = WRITER_CIPHERS[0]!;
  const enc = (s: string): string => writeLowerName(Buffer.from(s), aes, fnek.key, fnek.sig);
  // a path's names one by one; a symlink's target as one string (as the kernel encrypts it)
  const name = (s: string): string => s.split('/').map(enc).join('/');
  const lower = join(u.home, '.Private');
  const plain = new Map<string, Buffer | string | null>([
    ['notes.txt', Buffer.from('my notes\n')],
    ['docs', null],
    ['docs/big.bin', randomBytes(300 * 1024)],
    ['docs/empty', Buffer.alloc(0)],
    ['latest', '->docs/big.bin'],
  ]);
  for (const [p, v] of plain) {
    const at = join(lower, name(p));
    if (v === null) fs.mkdirSync(at);
    else if (typeof v === 'string') fs.symlinkSync(enc(v.slice(2)), at);
    else fs.writeFileSync(at, writeLowerFile(v, aes, fek.key, fek.sig).lower, { mode: 0o600 });
    fs.lchownSync(at, u.uid, u.gid);
  }
  readmeLinks(u);
  return { u, plain };
}

/** What ecryptfs-setup-private leaves in the locked mount point: links telling how to unlock. */
function readmeLinks(u: TestUser): void {
  for (const [n, to] of [['README.txt', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.txt'], ['Access-Your-Private-Data.desktop', '/usr/share/ecryptfs-utils/ecryptfs-mount-private.desktop']] as const) {
    fs.symlinkSync(to, join(u.home, 'Private', n));
    fs.lchownSync(join(u.home, 'Private', n), u.uid, u.gid);
  }
}

const run = (u: TestUser, args: string[], input = `${u.password}\n`, wrap: string[] = []) => {
  const r = spawnSync(wrap[0] ?? CLI, [...wrap.slice(1), ...(wrap.length > 0 ? [CLI] : []), 'migrate-out', '-u', u.name, ...args], { input, encoding: 'utf8' });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
};
const expiry = (u: TestUser): string => (fs.readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(`${u.name}:`)) ?? '').split(':')[7] ?? '?';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** ~/Private holds exactly the plaintext, owned by the user; the switch is complete. */
function assertMigrated(a: Account): void {
  const { u } = a;
  const upper = join(u.home, 'Private');
  for (const [p, v] of a.plain) {
    const at = join(upper, p);
    const st = fs.lstatSync(at);
    assert.equal(st.uid, u.uid, `${p} is the user's`);
    if (v === null) assert.ok(st.isDirectory(), p);
    else if (typeof v === 'string') assert.equal(fs.readlinkSync(at), v.slice(2), p);
    else assert.equal(sha(fs.readFileSync(at)), sha(v), p);
  }
  assert.deepEqual(fs.readdirSync(upper).sort(), ['docs', 'latest', 'notes.txt']);
  assert.equal(fs.existsSync(join(u.home, '.ecryptfs')), false, '~/.ecryptfs moved aside');
  assert.ok(fs.existsSync(join(u.home, '.ecryptfs.migrated-out', 'wrapped-passphrase')), 'and kept');
  assert.equal(fs.readdirSync(join(u.home, '.Private')).length, 3, '~/.Private kept as it was');
  assert.equal(fs.existsSync(join(u.home, 'Private.migrate-out')), false);
  assert.equal(loadPrivateSetup(u), null, 'no setup left for the PAM module to act on');
  const j = JSON.parse(fs.readFileSync(journalPath(u.name), 'utf8')) as { phase: string; previousExpiry?: string };
  assert.equal(j.phase, 'switched');
  assert.equal(j.previousExpiry, undefined, 'the account lock ended');
}

test('without --yes: says what would happen and whether the disk is encrypted, and changes nothing', { skip }, () => {
  const a = account();
  const before = expiry(a.u);
  const r = run(a.u, ['--to', 'plain'], '');
  assert.equal(r.status, 1, r.err);
  assert.match(r.err, new RegExp(`Migrating ${a.u.name} out of eCryptfs: ${a.u.home}/.Private → ${a.u.home}/Private, unencrypted`));
  assert.match(r.err, /The filesystem holding .*\/Private .*(dm-crypt|NOT on an encrypted block device|could not be told)/);
  assert.match(r.err, /Nothing was changed\. Run again with --yes/);
  assert.equal(fs.existsSync(journalPath(a.u.name)), false);
  assert.equal(expiry(a.u), before);
  assert.deepEqual(fs.readdirSync(join(a.u.home, 'Private')).sort(), ['Access-Your-Private-Data.desktop', 'README.txt']);
});

test('a wrong password changes nothing, not even the journal or the account', { skip }, () => {
  const a = account();
  const before = expiry(a.u);
  const r = run(a.u, ['--to', 'plain', '--yes'], 'not the password\n');
  assert.equal(r.status, 1, r.err);
  assert.match(r.err, /wrong|password/i);
  assert.equal(fs.existsSync(journalPath(a.u.name)), false);
  assert.equal(expiry(a.u), before);
  assert.ok(fs.existsSync(join(a.u.home, '.ecryptfs', 'Private.sig')));
  assert.equal(fs.existsSync(join(a.u.home, 'Private.migrate-out')), false);
});

test('a process of the user refuses the run before the password is asked; ~/Private with files of its own too', { skip }, () => {
  const a = account();
  const sleeper = spawnSync('setpriv', [`--reuid=${a.u.uid}`, `--regid=${a.u.gid}`, '--init-groups', 'sh', '-c', 'sleep 60 > /dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
  try {
    const r = run(a.u, ['--to', 'plain', '--yes'], '');
    assert.equal(r.status, 1, r.err);
    assert.match(r.err, /is logged in or has processes running/);
    assert.match(r.err, /run migrate-out again/);
  } finally {
    const pid = sleeper.stdout.trim();
    spawnSync('kill', ['-KILL', pid]);
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) spawnSync('sleep', ['0.05']);
  }
  fs.writeFileSync(join(a.u.home, 'Private', 'written-while-locked'), 'x');
  const r = run(a.u, ['--to', 'plain', '--yes']);
  assert.equal(r.status, 1, r.err);
  assert.match(r.err, /is not the empty directory eCryptfs mounts on/);
  assert.equal(fs.existsSync(journalPath(a.u.name)), false);
});

test('the run: ~/Private holds the verified plaintext, ~/.ecryptfs and ~/.Private kept aside until --finish, the account unlocked again', { skip }, () => {
  const a = account();
  spawnSync('usermod', ['--expiredate', '30000', a.u.name]);
  const r = run(a.u, ['--to', 'plain', '--yes']);
  assert.equal(r.status, 0, r.out + r.err);
  assert.match(r.err, /LOCKED while the migration runs/);
  assert.match(r.out, /every file verified \(SHA-256\)/);
  assert.match(r.out, new RegExp(`migrate-out -u ${a.u.name} --finish`));
  assertMigrated(a);
  assert.equal(expiry(a.u), '30000', 'the expiry from before');
  const again = run(a.u, ['--to', 'plain', '--yes']);
  assert.equal(again.status, 1);
  assert.match(again.err, /was migrated out already/);
  const fin = run(a.u, ['--finish'], '');
  assert.equal(fin.status, 0, fin.err);
  assert.equal(fs.existsSync(join(a.u.home, '.Private')), false);
  assert.equal(fs.existsSync(join(a.u.home, '.ecryptfs.migrated-out')), false);
  assert.equal(fs.existsSync(journalPath(a.u.name)), false);
  assert.ok(fs.readFileSync(join(a.u.home, 'Private', 'notes.txt')).equals(a.plain.get('notes.txt') as Buffer));
});

test('SIGKILL at every rename the run makes (journal, switch): the next run ends where an unkilled run does, nothing lost on the way', { skip }, (t) => {
  // renames of one run: the journal (locked), exported, verified, ~/.ecryptfs aside, the copy into
  // place, switched, the journal (unlocked); usermod's own are in a child strace does not follow
  const a = account();
  const original = expiry(a.u);
  let killedAt = 0;
  for (let k = 1; ; k++) {
    const r = run(a.u, ['--to', 'plain', '--yes'], `${a.u.password}\n`, ['strace', '-qq', '-o', '/dev/null', '-e', 'trace=rename', '-e', `inject=rename:signal=KILL:when=${k}`, 'node']);
    if (r.signal !== 'SIGKILL' && r.status === 0) break; // fewer renames than k: the run finished
    assert.equal(r.status === null ? r.signal : r.status, 'SIGKILL', `kill point ${k}: ${r.err}`);
    killedAt = k;
    // nothing lost: the ciphertext whole, and the plaintext either not yet in place or all there
    assert.equal(fs.readdirSync(join(a.u.home, '.Private')).length, 3, `kill point ${k}: ~/.Private whole`);
    const cfg = fs.existsSync(join(a.u.home, '.ecryptfs')) || fs.existsSync(join(a.u.home, '.ecryptfs.migrated-out'));
    assert.ok(cfg, `kill point ${k}: the wrapped passphrase kept somewhere`);
    // between the switch's two steps the empty mount point may be gone and the copy not yet renamed
    const upper = join(a.u.home, 'Private');
    const entries = fs.existsSync(upper) ? fs.readdirSync(upper).sort().join(' ') : 'absent';
    assert.ok(['absent', 'Access-Your-Private-Data.desktop README.txt', 'docs latest notes.txt'].includes(entries), `kill point ${k}: ~/Private holds ${entries}`);
    const phase = fs.existsSync(journalPath(a.u.name)) ? (JSON.parse(fs.readFileSync(journalPath(a.u.name), 'utf8')) as { phase: string }).phase : 'no journal';
    const state = (p: string): string => (!fs.existsSync(p) ? 'absent' : fs.readdirSync(p).includes('notes.txt') ? 'the plaintext' : 'the locked mount point');
    t.diagnostic(`kill point ${k}: journal ${phase}; ~/Private: ${state(join(a.u.home, 'Private'))}, the copy: ${state(join(a.u.home, 'Private.migrate-out'))}, ~/.ecryptfs ${fs.existsSync(join(a.u.home, '.ecryptfs')) ? 'in place' : 'aside'}, expiry ${expiry(a.u) === '1' ? 'locked' : 'as before'}`);
    // resumed to the end
    const r2 = run(a.u, ['--to', 'plain', '--yes']);
    if (r2.status !== 0 && /was migrated out already/.test(r2.err)) {
      // killed after the journal said switched (the unlock's write): the next run of any kind
      // ends the left lock first
      assert.match(r2.err, /unlocked again/);
    } else {
      assert.equal(r2.status, 0, `kill point ${k}, resumed: ${r2.out}${r2.err}`);
    }
    assertMigrated(a);
    assert.equal(expiry(a.u), original, `kill point ${k}: the account's expiry as before, not left locked`);
    // start over for the next kill point: the same account, migrated back by hand
    fs.rmSync(join(a.u.home, 'Private'), { recursive: true });
    fs.mkdirSync(join(a.u.home, 'Private'), { mode: 0o500 });
    fs.chownSync(join(a.u.home, 'Private'), a.u.uid, a.u.gid);
    readmeLinks(a.u);
    fs.chmodSync(join(a.u.home, 'Private'), 0o500);
    fs.renameSync(join(a.u.home, '.ecryptfs.migrated-out'), join(a.u.home, '.ecryptfs'));
    fs.rmSync(journalPath(a.u.name));
  }
  assert.ok(killedAt >= 7, `only ${killedAt} renames were killed`);
});
