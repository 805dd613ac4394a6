/**
 * `recovery` and `recover` on the host: real users, the real keyring, the reference tools as
 * judges, and real lower files the kernel wrote (test/fixtures/recovery). The host kernel has no
 * eCryptfs, so `recover` gets as far as mount(2), which fails with ENODEV: everything before it
 * (which key, which checks, which mount flags and options) is proven here under strace, and so
 * is the rollback (keys added, then unlinked; the directory made, then removed). The successful
 * mounts are proven in the VM (test/vm/recovery.vm.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { lookupUser } from '../../src/os/credentials';
import { useNativeKdf } from '../../src/os/kdf-native';
import { newMountPassphrase, setupPrivate } from '../../src/actions/setup';
import { REPO } from '../helpers/agent';
import { asUserRun, createUser, deleteUser, setupPrivateWithUtils, type TestUser } from '../helpers/users';

useNativeKdf();
const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const FIXTURES = join(REPO, 'test', 'fixtures', 'recovery');

interface Fixture {
  mountPassphrase: string;
  fekSig: string;
  fnekSig?: string;
  entries: Array<{ path: string; type: 'dir' | 'file'; gzipBase64?: string }>;
}
const fixture = (name: 'fnek' | 'plain'): Fixture => JSON.parse(fs.readFileSync(join(FIXTURES, `lower-${name}.json`), 'utf8')) as Fixture;
const FNEK = fixture('fnek');
const PLAIN = fixture('plain');
const PASS = FNEK.mountPassphrase;
const SIGS = [FNEK.fekSig, FNEK.fnekSig as string];

const users: TestUser[] = [];
const scratch: string[] = [];
function user(prefix: string, password?: string): TestUser {
  const u = createUser(prefix, password);
  users.push(u);
  return u;
}
function tempDir(): string {
  const d = fs.mkdtempSync('/tmp/eat-recover-test-');
  scratch.push(d);
  return d;
}

/** Root's @u is shared by every root process: only our fixture sigs are looked at. */
function rootHasKey(sig: string): boolean {
  return spawnSync('keyctl', ['search', '@u', 'user', sig]).status === 0;
}
function purgeRootKeys(): void {
  for (const sig of SIGS) {
    const id = spawnSync('keyctl', ['search', '@u', 'user', sig], { encoding: 'utf8' }).stdout.trim();
    if (id !== '') spawnSync('keyctl', ['unlink', id, '@u']);
  }
}
const recoverDirs = (): string[] => fs.readdirSync('/tmp').filter((n) => n.startsWith('ecryptfs-recover-'));
const ecryptfsMounts = (): string[] => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => / - ecryptfs /.test(l));

before(() => purgeRootKeys());
after(() => {
  purgeRootKeys();
  for (const u of users) deleteUser(u);
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
});

/** Writes a fixture's lower files to DIR/.Private (as on the disk they came from). */
function copyLower(f: Fixture, dir: string): string {
  const lower = join(dir, '.Private');
  fs.mkdirSync(lower, { recursive: true, mode: 0o700 });
  for (const e of f.entries) {
    const p = join(lower, e.path);
    if (e.type === 'dir') fs.mkdirSync(p, { mode: 0o700 });
    else fs.writeFileSync(p, gunzipSync(Buffer.from(e.gzipBase64 as string, 'base64')), { mode: 0o600 });
  }
  fs.chownSync(lower, 4242, 4242); // a uid from the other system
  return lower;
}

/** A home copied from another disk: the fixture's .Private plus the .ecryptfs of a reference-tools setup of the same passphrase. */
function copiedHome(opts: { fnek: boolean; password?: string }): { dir: string; user: TestUser } {
  const u = user('eatrc', opts.password ?? `pw-${Math.random().toString(36).slice(2, 8)}`);
  setupPrivateWithUtils(u, { fnek: opts.fnek, mountPassphrase: PASS });
  const dir = tempDir();
  copyLower(opts.fnek ? FNEK : PLAIN, dir);
  fs.cpSync(join(u.home, '.ecryptfs'), join(dir, '.ecryptfs'), { recursive: true });
  return { dir, user: u };
}

interface Traced {
  status: number;
  stdout: string;
  stderr: string;
  trace: string;
}

/**
 * Runs the CLI (as root, or as a user through strace -u) under strace: key, mount, open, exec and
 * write system calls, with the path of every fd (-y).
 */
function traced(args: string[], input: string, as?: TestUser): Traced {
  const out = join(tempDir(), 'trace');
  const calls = 'execve,openat,write,writev,pwrite64,sendto,sendmsg,connect,add_key,keyctl,mount';
  const strace = ['-f', '-qq', '-y', '-v', '-s', '4096', '-e', `trace=${calls}`, '-o', out, ...(as ? ['-u', as.name] : []), CLI, ...args];
  const env = as ? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', HOME: as.home, USER: as.name } : { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
  const r = spawnSync('strace', strace, { input, cwd: '/', env });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), trace: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '' };
}

/** The path of the directory behind "/proc/self/fd/N" in a mount call: what openat returned as fd N. */
function mountTarget(trace: string, mountLine: string): string | undefined {
  const fd = /"\/proc\/self\/fd\/(\d+)"/.exec(mountLine)?.[1];
  const opens = [...trace.matchAll(new RegExp(`openat\\(.*O_DIRECTORY.*\\) = ${fd}<([^>]+)>`, 'g'))];
  return opens.pop()?.[1];
}

const mountCalls = (trace: string): string[] => trace.split('\n').filter((l) => /\bmount\("/.test(l));
const addKeyCalls = (trace: string): string[] => trace.split('\n').filter((l) => /\badd_key\("user"/.test(l));
/** Every place a secret could leak to: exec arguments and environment, writes other than stdout, sockets (syslog). */
function leaks(trace: string, secret: string, allowStdout = false): string[] {
  return trace.split('\n').filter((l) => l.includes(secret) && !(allowStdout && /\bwrite\(1</.test(l)));
}

// ------------------------------------------------------------------ recovery

describe('recovery: the mount passphrase, as ecryptfs-unwrap-passphrase prints it, checked', () => {
  const referenceUnwrap = (u: TestUser): string => {
    const r = asUserRun(u, ['ecryptfs-unwrap-passphrase', join(u.home, '.ecryptfs', 'wrapped-passphrase'), '-'], u.password);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  for (const fnek of [true, false]) {
    test(`reference setup (${fnek ? 'FNEK' : 'no FNEK'}): stdout byte-identical to ecryptfs-unwrap-passphrase, advice on stderr, as the user and as root -u`, () => {
      const u = user('eatry', `login-${fnek ? 'f' : 'n'}-4711`);
      const s = setupPrivateWithUtils(u, { fnek });
      const expected = referenceUnwrap(u);
      assert.equal(expected, `${s.mountPassphrase}\n`);
      const mine = traced(['recovery'], `${u.password}\n`, u);
      assert.equal(mine.status, 0, mine.stderr);
      assert.equal(mine.stdout, expected);
      assert.match(mine.stderr, /MOUNT PASSPHRASE of .*\/\.Private \(checked against Private\.sig\)/);
      assert.match(mine.stderr, /WRITE IT DOWN and keep it OFFLINE/);
      assert.match(mine.stderr, /never in your home directory/);
      assert.match(mine.stderr, /ecryptfs-agent recover --mount-passphrase /);
      assert.ok(!mine.stderr.includes(s.mountPassphrase) && !mine.stderr.includes(u.password));
      assert.deepEqual(leaks(mine.trace, s.mountPassphrase, true), [], 'the passphrase goes to stdout only');
      assert.deepEqual(leaks(mine.trace, u.password), [], 'the password goes nowhere');
      const root = traced(['recovery', '-u', u.name], `${u.password}\n`);
      assert.equal(root.status, 0, root.stderr);
      assert.equal(root.stdout, expected);
    });
  }

  test('a setup made by our setup-private: the same bytes as ecryptfs-unwrap-passphrase', () => {
    const u = user('eatry', 'ours-pw-9');
    const mp = newMountPassphrase();
    setupPrivate(lookupUser(u.name), mp, Buffer.from(u.password), { fnek: true, wrappingIndependent: false, autoMount: true, autoUmount: true, force: false });
    const r = asUserRun(u, [CLI, 'recovery'], `${u.password}\n`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, referenceUnwrap(u));
    assert.equal(r.stdout, `${mp.toString('latin1')}\n`);

    // a separate wrapping passphrase (setup-private -w): that is what it asks for, not the login password
    const w = user('eatry', 'login-pw-w');
    const wmp = newMountPassphrase();
    setupPrivate(lookupUser(w.name), wmp, Buffer.from('wrapping secret 5'), { fnek: false, wrappingIndependent: true, autoMount: true, autoUmount: true, force: false });
    const login = asUserRun(w, [CLI, 'recovery'], `${w.password}\n`);
    assert.equal(login.status, 1);
    assert.match(login.stderr, /wrong wrapping passphrase: it does not unwrap .*\nhint: Type the wrapping passphrase chosen at setup-private -w/);
    const wrapping = asUserRun(w, [CLI, 'recovery'], 'wrapping secret 5\n');
    assert.equal(wrapping.status, 0, wrapping.stderr);
    assert.equal(wrapping.stdout, `${wmp.toString('latin1')}\n`);
  });

  test('wrong password, missing or damaged files, a Private.sig of another setup: exit 1, a clear message, nothing on stdout', () => {
    const u = user('eatry', 'right-pw-1');
    const s = setupPrivateWithUtils(u, { fnek: true });
    const cfg = join(u.home, '.ecryptfs');
    const run = () => asUserRun(u, [CLI, 'recovery'], `${u.password}\n`);

    const wrong = asUserRun(u, [CLI, 'recovery'], 'wrong-pw\n');
    assert.equal(wrong.status, 1);
    assert.equal(wrong.stdout, '');
    assert.match(wrong.stderr, /^ecryptfs-agent recovery: wrong login passphrase: it does not unwrap .*wrapped-passphrase\nhint: /);

    const sig = fs.readFileSync(join(cfg, 'Private.sig'));
    fs.writeFileSync(join(cfg, 'Private.sig'), 'aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\n');
    const other = run();
    assert.equal(other.status, 1);
    assert.equal(other.stdout, '');
    assert.match(other.stderr, /does not match .*Private\.sig \(key sig [0-9a-f]{16}, expected aaaaaaaaaaaaaaaa\); not showing it/);
    assert.ok(!other.stderr.includes(s.mountPassphrase));
    fs.writeFileSync(join(cfg, 'Private.sig'), sig);

    const wp = fs.readFileSync(join(cfg, 'wrapped-passphrase'));
    fs.writeFileSync(join(cfg, 'wrapped-passphrase'), Buffer.from('garbage garbage garbage'));
    const damaged = run();
    assert.equal(damaged.status, 1);
    assert.match(damaged.stderr, /Not a wrapped passphrase file/);
    assert.match(damaged.stderr, /hint: The file is damaged/);
    fs.rmSync(join(cfg, 'wrapped-passphrase'));
    const missing = run();
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /wrapped-passphrase does not exist: the mount passphrase is not stored on this system/);
    fs.writeFileSync(join(cfg, 'wrapped-passphrase'), wp);
    fs.chownSync(join(cfg, 'wrapped-passphrase'), u.uid, u.gid);
    fs.rmSync(join(cfg, 'Private.sig'));
    const noSig = run();
    assert.equal(noSig.status, 1);
    assert.match(noSig.stderr, /Private\.sig is missing \(wrapped-passphrase and auto-mount are there\): the encrypted private directory cannot be unlocked\nhint: .*add-passphrase --fnek/);
    assert.match(noSig.stderr, /hint: .*unwrap-passphrase/);

    fs.writeFileSync(join(cfg, 'Private.sig'), sig);
    fs.chownSync(join(cfg, 'Private.sig'), u.uid, u.gid);
    const none = asUserRun(u, [CLI, 'recovery'], '');
    assert.equal(none.status, 1);
    assert.equal(none.stdout, '\n', 'end of input: the newline ecryptfs_get_passphrase prints, nothing else');
    assert.match(none.stderr, /no login passphrase given; nothing changed/);
    assert.equal(run().stdout, `${s.mountPassphrase}\n`, 'and with everything back in place it works');
  });

  test('usage: arguments are refused (exit 2); root without -u has no private directory (exit 1)', () => {
    const u = user('eatry');
    const extra = asUserRun(u, [CLI, 'recovery', 'my-password']);
    assert.equal(extra.status, 2);
    assert.match(extra.stderr, /unexpected argument: my-password/);
    assert.equal(asUserRun(u, [CLI, 'recovery', '--bogus']).status, 2);
    const root = spawnSync(CLI, ['recovery'], { input: 'x\n', encoding: 'utf8' });
    assert.equal(root.status, 1);
    assert.match(root.stderr, /root has no private directory here/);
  });
});

// ------------------------------------------------------------------ recover

describe('recover: a .Private copied from another disk (kernel without eCryptfs: mount(2) is the last step)', () => {
  test('wrapped file + login password (reference tools, FNEK): both keys added to root @u, mount(2) read-only with the right options, then everything taken back', () => {
    const { dir, user: u } = copiedHome({ fnek: true, password: 'old-login-pw-7' });
    const dirsBefore = recoverDirs();
    const r = traced(['recover', join(dir, '.Private')], `${u.password}\n`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`Using ${dir}/\\.ecryptfs/wrapped-passphrase: it is unwrapped with the login password`));
    assert.match(r.stderr, new RegExp(`ecryptfs-agent recover: cannot mount ${dir}/\\.Private: this kernel has no eCryptfs \\(ENODEV\\); nothing changed`));
    // FNEK first, then the file key, into root's user keyring
    const adds = addKeyCalls(r.trace);
    assert.equal(adds.length, 2, r.trace);
    assert.match(adds[0] as string, new RegExp(`add_key\\("user", "${FNEK.fnekSig}", .*KEY_SPEC_USER_KEYRING\\) = \\d+`));
    assert.match(adds[1] as string, new RegExp(`add_key\\("user", "${FNEK.fekSig}", .*KEY_SPEC_USER_KEYRING\\) = \\d+`));
    const ids = adds.map((l) => (/= (\d+)$/.exec(l) as RegExpExecArray)[1]);
    for (const id of ids) assert.match(r.trace, new RegExp(`keyctl\\(KEYCTL_UNLINK, ${id}, KEY_SPEC_USER_KEYRING\\) = 0`), `key ${id} unlinked again`);
    const mounts = mountCalls(r.trace);
    assert.equal(mounts.length, 1);
    const m = mounts[0] as string;
    assert.match(mountTarget(r.trace, m) ?? '', /^\/tmp\/ecryptfs-recover-[A-Za-z0-9]{6}\/Private$/);
    assert.match(m, new RegExp(`mount\\("${dir}/\\.Private", "/proc/self/fd/\\d+", "ecryptfs", MS_RDONLY\\|MS_NOSUID\\|MS_NODEV\\|MS_NOEXEC, "ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_sig=${FNEK.fekSig},ecryptfs_fnek_sig=${FNEK.fnekSig}"\\) = -1 ENODEV`));
    assert.ok(!/unlink_sigs|check_dev_ruid/.test(m), 'a copy owned by anyone, keys forgotten by --unmount');
    for (const sig of SIGS) assert.ok(!rootHasKey(sig), `no ${sig} left in root's keyring`);
    assert.deepEqual(recoverDirs(), dirsBefore, 'the directory it made is removed again');
    assert.deepEqual(ecryptfsMounts(), []);
    assert.deepEqual(leaks(r.trace, u.password), []);
    assert.deepEqual(leaks(r.trace, PASS), []);
  });

  test('mount passphrase, a home directory as DIR, --rw, non-FNEK: flags without MS_RDONLY, no filename key', () => {
    const { dir } = copiedHome({ fnek: false });
    const r = traced(['recover', '--rw', '-m', dir], `${PASS}\n`);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(!/Using .*wrapped-passphrase/.test(r.stderr));
    assert.deepEqual(addKeyCalls(r.trace).map((l) => (/"user", "([0-9a-f]{16})"/.exec(l) as RegExpExecArray)[1]), [PLAIN.fekSig]);
    const m = mountCalls(r.trace)[0] as string;
    assert.match(m, /"ecryptfs", MS_NOSUID\|MS_NODEV\|MS_NOEXEC, "ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_sig=[0-9a-f]{16}"\)/);
    assert.ok(!rootHasKey(PLAIN.fekSig));
  });

  test('FNEK without Private.sig: decided by the names in the directory (as ecryptfs-recover-private does); --fnek/--no-fnek force it', () => {
    const fnekOnly = tempDir();
    copyLower(FNEK, fnekOnly);
    const plainOnly = tempDir();
    copyLower(PLAIN, plainOnly);
    const fnekSigOf = (args: string[]): string | undefined => {
      const r = traced(['recover', ...args], `${PASS}\n`);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /No wrapped-passphrase file next to .*: the MOUNT passphrase recorded at setup is needed/);
      const m = mountCalls(r.trace)[0];
      assert.ok(m, r.stderr);
      return /ecryptfs_fnek_sig=([0-9a-f]{16})/.exec(m)?.[1];
    };
    assert.equal(fnekSigOf([join(fnekOnly, '.Private')]), FNEK.fnekSig);
    assert.equal(fnekSigOf([plainOnly]), undefined);
    assert.equal(fnekSigOf(['--no-fnek', fnekOnly]), undefined);
    assert.equal(fnekSigOf(['--fnek', plainOnly]), FNEK.fnekSig);
  });

  test('wrong passphrases are caught before anything changes: by Private.sig, by the file headers, by the encrypted names; a wrong login password by the wrapped file', () => {
    const { dir } = copiedHome({ fnek: true });
    const lowerOnly = tempDir();
    copyLower(FNEK, lowerOnly);
    const cases: Array<[string[], string, RegExp]> = [
      [[dir], 'not-the-login-password\n', /wrong password for .*wrapped-passphrase; nothing changed\nhint: .*--mount-passphrase/],
      [['-m', dir], 'fixture-mount-passphrase-0123456780\n', /wrong mount passphrase for .*\/\.Private: Private\.sig names key sig 489f3d10121e8ba8, this passphrase gives [0-9a-f]{16}; nothing changed/],
      [[lowerOnly], 'wrong-mount-passphrase\n', /wrong mount passphrase for .*: the header of .*\/ECRYPTFS_FNEK_ENCRYPTED\.\S+ names key sig 489f3d10121e8ba8/],
    ];
    for (const [args, input, message] of cases) {
      const r = traced(['recover', ...args], input);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /\nhint: /);
      assert.deepEqual(addKeyCalls(r.trace), [], 'no key added');
      assert.deepEqual(mountCalls(r.trace), [], 'no mount attempted');
      assert.deepEqual(leaks(r.trace, input.trim()), []);
    }
    // The names alone (a directory holding only encrypted names, no file yet) catch a wrong filename key.
    const namesOnly = tempDir();
    fs.mkdirSync(join(namesOnly, '.Private', (FNEK.entries.find((e) => e.type === 'dir') as { path: string }).path), { recursive: true });
    const byName = traced(['recover', namesOnly], 'wrong-mount-passphrase\n');
    assert.equal(byName.status, 1);
    assert.match(byName.stderr, /wrong mount passphrase .*: the encrypted name ECRYPTFS_FNEK_ENCRYPTED\.\S+… names the filename key sig 540ea8e6a2a94091/);
    assert.deepEqual(addKeyCalls(byName.trace), []);
    // Another user's wrapped file (--wrapped) that is not this directory's key: SIG_MISMATCH, nothing added.
    const stranger = user('eatrc', 'stranger-pw');
    setupPrivateWithUtils(stranger, { fnek: false });
    const foreign = traced(['recover', '--wrapped', join(stranger.home, '.ecryptfs', 'wrapped-passphrase'), lowerOnly], `${stranger.password}\n`);
    assert.equal(foreign.status, 1);
    assert.match(foreign.stderr, /the passphrase in .*stranger|is not the key of/);
    assert.match(foreign.stderr, /hint: That wrapped-passphrase file belongs to another setup/);
    assert.deepEqual(addKeyCalls(foreign.trace), []);
    for (const sig of SIGS) assert.ok(!rootHasKey(sig));
  });

  test('not an eCryptfs directory, missing, a file, a symlinked .Private, nothing on stdin: clear messages, exit 1, no prompt needed', () => {
    const empty = tempDir();
    const plainFiles = tempDir();
    fs.writeFileSync(join(plainFiles, 'notes.txt'), 'just a plain file\n');
    fs.mkdirSync(join(plainFiles, 'docs'));
    const homeWithLink = tempDir();
    fs.symlinkSync('/home/.ecryptfs/someone/.Private', join(homeWithLink, '.Private'));
    const disk = tempDir();
    copyLower(PLAIN, join(disk, 'home', 'alice'));
    copyLower(FNEK, join(disk, 'home', 'bob'));
    const cases: Array<[string[], RegExp]> = [
      [[empty], /holds no eCryptfs files: it is empty; nothing to recover there\nhint: Name the encrypted directory/],
      [[disk], new RegExp(`${disk} is not an encrypted directory, but holds some further down: (${disk}/home/(alice|bob)/\\.Private(, )?){2}\nhint: Recover them one at a time`)],
      [[plainFiles], /holds no eCryptfs files: 2 entries, none with an eCryptfs header or an encrypted name/],
      [[join(empty, 'nope')], /nope does not exist\nhint: Mount the other disk/],
      [[join(plainFiles, 'notes.txt')], /notes\.txt is not a directory/],
      [[homeWithLink], /\.Private is a symbolic link \(to \/home\/\.ecryptfs\/someone\/\.Private\), which meant a path on the disk it came from\nhint: Give the directory it pointed to/],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(CLI, ['recover', ...args], { input: '', encoding: 'utf8' });
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
    const lower = tempDir();
    copyLower(PLAIN, lower);
    const noInput = spawnSync(CLI, ['recover', lower], { input: '', encoding: 'utf8' });
    assert.equal(noInput.status, 1);
    assert.match(noInput.stderr, /no mount passphrase given; nothing changed/);
  });

  test('--mount-point must be an empty root-owned directory; --unmount refuses what is not a recovered eCryptfs mount', () => {
    const lower = tempDir();
    copyLower(PLAIN, lower);
    const busy = tempDir();
    fs.writeFileSync(join(busy, 'keep.txt'), 'x');
    const full = traced(['recover', '--mount-point', busy, lower], `${PASS}\n`);
    assert.equal(full.status, 1);
    assert.match(full.stderr, /is not empty: its files would be hidden/);
    assert.deepEqual(addKeyCalls(full.trace), []);
    const u = user('eatrc');
    const theirs = fs.mkdtempSync(join(u.home, 'mp-'));
    fs.chownSync(theirs, u.uid, u.gid);
    const notRoot = traced(['recover', '--mount-point', theirs, lower], `${PASS}\n`);
    assert.equal(notRoot.status, 1);
    assert.match(notRoot.stderr, /root does not own the mount point .*\nhint: Give a directory owned by root/);
    const noWrapped = spawnSync(CLI, ['recover', '--wrapped', join(lower, 'nope'), lower], { input: '', encoding: 'utf8' });
    assert.equal(noWrapped.status, 1);
    assert.match(noWrapped.stderr, /nope is not a wrapped-passphrase file/);
    const ok = tempDir();
    const given = traced(['recover', '--mount-point', ok, lower], `${PASS}\n`);
    assert.equal(given.status, 1);
    assert.equal(mountTarget(given.trace, mountCalls(given.trace)[0] as string), ok);
    assert.ok(fs.existsSync(ok), 'a given mount point is left in place');

    const notMounted = spawnSync(CLI, ['recover', '--unmount', ok], { encoding: 'utf8' });
    assert.equal(notMounted.status, 1);
    assert.match(notMounted.stderr, new RegExp(`${ok} is not an eCryptfs mount`));
  });

  test('usage errors exit 2; as a user: needs root (exit 1), nothing asked', () => {
    for (const args of [[], ['a', 'b'], ['--fnek', '--no-fnek', '/x'], ['-m', '--wrapped', '/w', '/x'], ['--unmount', '/m', '/x'], ['--unmount', '/m', '--rw'], ['--bogus', '/x'], ['--unmount']]) {
      const r = spawnSync(CLI, ['recover', ...args], { encoding: 'utf8', input: '' });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: ecryptfs-agent recover/);
    }
    const u = user('eatrc');
    const lower = tempDir();
    copyLower(PLAIN, lower);
    const r = asUserRun(u, [CLI, 'recover', lower], `${PASS}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /recover mounts and unmounts, which needs root\nhint: Run it with sudo/);
    assert.equal(asUserRun(u, [CLI, 'recover', '--unmount', '/tmp']).status, 1);
  });
});
