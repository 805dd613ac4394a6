/**
 * setup-private / unlock / lock / status on the host: real files, the real keyring, throwaway
 * users, the reference tools as judges. The host kernel has no eCryptfs: the CLI's setup-private
 * must refuse clearly, and unlock must load the keys and then take them back when the mount
 * fails (nothing changed). Mounting is proven in the VM (test/vm/private.vm.test.ts).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { asUser, lookupUser } from '../../src/os/credentials';
import { type AgentError } from '../../src/errors';
import { useNativeKdf } from '../../src/os/kdf-native';
import { mountRaw, readMountInfo, unmount } from '../../src/os/mount';
import { MS } from '../../src/formats/mountinfo';
import { loadPrivateSetup } from '../../src/actions/private-setup';
import { newMountPassphrase, setupPrivate, type SetupPrivateOptions } from '../../src/actions/setup';
import { processesUsingMount } from '../../src/os/processes';
import { forgetKeys, insertDerivedKeys, possessUserKeyring } from '../../src/actions/keys';
import { prepareKeys, releaseKeys } from '../../src/actions/login';
import { REPO } from '../helpers/agent';
import { asUserRun, clearUserKeyring, createUser, deleteUser, setupPrivateWithUtils, type TestUser, userKeys } from '../helpers/users';

useNativeKdf();
const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const users: TestUser[] = [];
after(() => {
  for (const u of users) {
    deleteUser(u);
    fs.rmSync(`/dev/shm/ecryptfs-${u.name}-Private`, { force: true });
  }
});
function user(prefix: string): TestUser {
  const u = createUser(prefix);
  users.push(u);
  return u;
}
const ref = (u: TestUser) => lookupUser(u.name);
const OPTS: SetupPrivateOptions = { fnek: true, wrappingIndependent: false, autoMount: true, autoUmount: true, force: false };
const modeOwner = (p: string): string => {
  const st = fs.lstatSync(p);
  return `${(st.mode & 0o7777).toString(8)} ${st.uid}`;
};
/** Every path under dir with mode, owner, size and content hash: "nothing changed" is equality of this. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    const h = st.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : '';
    out.push(`${p} ${st.mode.toString(8)} ${st.uid} ${st.size} ${h}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(join(p, n));
  };
  walk(dir);
  return out.join('\n');
}
const code = (c: string) => (e: unknown) => (e as AgentError).code === c;
const cliAsRoot = (args: string[], input?: string) => {
  const r = spawnSync(CLI, args, { input, cwd: '/' });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
};
const cliAsUser = (u: TestUser, args: string[], input?: string) => asUserRun(u, ['keyctl', 'session', '-', CLI, ...args], input);

describe('setup-private (library, as root for the user): ecryptfs-setup-private layout', () => {
  test('FNEK: files, modes, owners and bytes; the reference tools agree on passphrase and sigs; our unlock path reads it', () => {
    const u = user('eatsp');
    const mp = newMountPassphrase();
    const mountPass = mp.toString('latin1');
    assert.match(mountPass, /^[0-9a-f]{32}$/);
    const r = setupPrivate(ref(u), mp, Buffer.from(u.password), OPTS);
    const cfg = join(u.home, '.ecryptfs');
    assert.equal(modeOwner(cfg), `700 ${u.uid}`);
    assert.equal(modeOwner(join(u.home, '.Private')), `700 ${u.uid}`);
    assert.equal(modeOwner(join(u.home, 'Private')), `500 ${u.uid}`);
    assert.equal(modeOwner(join(cfg, 'wrapped-passphrase')), `600 ${u.uid}`);
    for (const f of ['Private.sig', 'Private.mnt', 'auto-mount', 'auto-umount']) assert.equal(fs.lstatSync(join(cfg, f)).uid, u.uid, f);
    assert.ok(!fs.existsSync(join(cfg, 'wrapping-independent')));
    assert.equal(fs.readFileSync(join(cfg, 'Private.sig'), 'latin1'), `${r.fekSig}\n${r.fnekSig}\n`);
    assert.equal(fs.readFileSync(join(cfg, 'Private.mnt'), 'utf8'), `${u.home}/Private\n`);
    assert.equal(fs.readFileSync(join(cfg, 'auto-mount')).length, 0);
    assert.equal(fs.readFileSync(join(cfg, 'wrapped-passphrase')).subarray(0, 1).toString('hex'), '3a', 'v2 marker');
    // ecryptfs-unwrap-passphrase returns the mount passphrase; its insert tool adds exactly our two sigs.
    const unwrapped = asUserRun(u, ['ecryptfs-unwrap-passphrase', join(cfg, 'wrapped-passphrase'), '-'], u.password);
    assert.equal(unwrapped.stdout.trim(), mountPass, unwrapped.stderr);
    const ins = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `printf '%s' "$1" | ecryptfs-insert-wrapped-passphrase-into-keyring "$2" -`, 'sh', u.password, join(cfg, 'wrapped-passphrase')]);
    assert.equal(ins.status, 0, ins.stderr);
    assert.deepEqual(userKeys(u).map((k) => k.description).sort(), [r.fekSig, r.fnekSig].sort());
    clearUserKeyring(u);
    // What the agent reads and unlocks with.
    const setup = asUser(ref(u), () => loadPrivateSetup(ref(u)));
    assert.ok(setup);
    assert.equal(setup.fnekSig, r.fnekSig);
    assert.ok(setup.autoMount && setup.autoUmount && !setup.wrappingIndependent);
    const ring = possessUserKeyring(ref(u));
    const prepared = prepareKeys(ref(u), setup, Buffer.from(u.password), 'login-password');
    assert.ok('keys' in prepared, JSON.stringify(prepared));
    const loaded = insertDerivedKeys(ring, prepared.keys);
    releaseKeys(prepared);
    assert.deepEqual(loaded.added, [r.fnekSig, r.fekSig]);
    assert.deepEqual(forgetKeys(ring, loaded.added).sort(), [r.fekSig, r.fnekSig].sort());
    assert.deepEqual(userKeys(u), []);
  });

  test('no FNEK, separate wrapping passphrase, no auto files: one sig (= ecryptfs-add-passphrase), wrapping-independent', () => {
    const u = user('eatsp');
    const mp = newMountPassphrase();
    const r = setupPrivate(ref(u), mp, Buffer.from('wrap-it 42'), { ...OPTS, fnek: false, wrappingIndependent: true, autoMount: false, autoUmount: false });
    const cfg = join(u.home, '.ecryptfs');
    assert.equal(r.fnekSig, undefined);
    assert.equal(fs.readFileSync(join(cfg, 'Private.sig'), 'latin1'), `${r.fekSig}\n`);
    assert.ok(fs.existsSync(join(cfg, 'wrapping-independent')));
    assert.ok(!fs.existsSync(join(cfg, 'auto-mount')) && !fs.existsSync(join(cfg, 'auto-umount')));
    const add = asUserRun(u, ['keyctl', 'session', '-', 'sh', '-c', `printf '%s' "$1" | ecryptfs-add-passphrase - && keyctl clear @u`, 'sh', mp.toString('latin1')]);
    assert.match(add.stdout, new RegExp(`sig \\[${r.fekSig}\\]`));
    const unwrapped = asUserRun(u, ['ecryptfs-unwrap-passphrase', join(cfg, 'wrapped-passphrase'), '-'], 'wrap-it 42');
    assert.equal(unwrapped.stdout.trim(), mp.toString('latin1'));
  });

  test('refuses to clobber (typed error, nothing changed): existing setup, non-empty ~/Private or ~/.Private, symlinked ~/.ecryptfs', () => {
    const u = user('eatsp');
    setupPrivate(ref(u), newMountPassphrase(), Buffer.from(u.password), OPTS);
    const before = snapshot(u.home);
    assert.throws(() => setupPrivate(ref(u), newMountPassphrase(), Buffer.from(u.password), OPTS), (e: unknown) => code('ALREADY_EXISTS')(e) && /already set up/.test((e as Error).message) && /--force/.test((e as AgentError).hint));
    assert.equal(snapshot(u.home), before);

    const v = user('eatsp');
    asUserRun(v, ['sh', '-c', `mkdir ${v.home}/Private && echo mine > ${v.home}/Private/keep.txt`]);
    const vBefore = snapshot(v.home);
    assert.throws(() => setupPrivate(ref(v), newMountPassphrase(), Buffer.from(v.password), OPTS), (e: unknown) => code('ALREADY_EXISTS')(e) && /Private must be empty.*keep\.txt/.test((e as Error).message));
    assert.equal(snapshot(v.home), vBefore);
    asUserRun(v, ['sh', '-c', `rm -r ${v.home}/Private && mkdir ${v.home}/.Private && touch ${v.home}/.Private/x`]);
    assert.throws(() => setupPrivate(ref(v), newMountPassphrase(), Buffer.from(v.password), OPTS), (e: unknown) => code('ALREADY_EXISTS')(e) && /\.Private must be empty/.test((e as Error).message));
    assert.ok(!fs.existsSync(join(v.home, '.ecryptfs')));
    asUserRun(v, ['sh', '-c', `rm -r ${v.home}/.Private && mkdir /tmp/eat-elsewhere-${v.uid} && ln -s /tmp/eat-elsewhere-${v.uid} ${v.home}/.ecryptfs`]);
    assert.throws(() => setupPrivate(ref(v), newMountPassphrase(), Buffer.from(v.password), OPTS), code('SYMLINK_REFUSED'));
    assert.deepEqual(fs.readdirSync(`/tmp/eat-elsewhere-${v.uid}`), []);
    fs.rmSync(`/tmp/eat-elsewhere-${v.uid}`, { recursive: true });
    fs.rmSync(join(v.home, '.ecryptfs'));
    // ~/Private holding only symlinks (ecryptfs-setup-private's README links) counts as empty.
    asUserRun(v, ['sh', '-c', `mkdir ${v.home}/Private && ln -s /nonexistent ${v.home}/Private/README.txt`]);
    const r = setupPrivate(ref(v), newMountPassphrase(), Buffer.from(v.password), OPTS);
    assert.match(r.fekSig, /^[0-9a-f]{16}$/);
  });

  test('--force moves the old wrapped-passphrase and Private.sig aside (NAME.YYYYmmddHHMMSS) and writes new ones', () => {
    const u = user('eatsp');
    const first = setupPrivate(ref(u), newMountPassphrase(), Buffer.from(u.password), OPTS);
    const cfg = join(u.home, '.ecryptfs');
    const oldWrapped = fs.readFileSync(join(cfg, 'wrapped-passphrase'));
    const second = setupPrivate(ref(u), newMountPassphrase(), Buffer.from(u.password), { ...OPTS, force: true, now: new Date(2026, 0, 2, 3, 4, 5) });
    assert.deepEqual(second.backups, [join(cfg, 'wrapped-passphrase.20260102030405'), join(cfg, 'Private.sig.20260102030405')]);
    assert.deepEqual(fs.readFileSync(join(cfg, 'wrapped-passphrase.20260102030405')), oldWrapped);
    assert.equal(fs.readFileSync(join(cfg, 'Private.sig.20260102030405'), 'latin1').split('\n')[0], first.fekSig);
    assert.notEqual(second.fekSig, first.fekSig);
  });
});

describe('the CLI on a kernel without eCryptfs', () => {
  test('setup-private refuses clearly (module not loaded) as the user and as root -u; nothing is created', () => {
    const u = user('eatcl');
    const before = snapshot(u.home);
    const asRoot = cliAsRoot(['setup-private', '-u', u.name], `${u.password}\n`);
    assert.equal(asRoot.status, 1);
    assert.match(asRoot.stderr, /ecryptfs kernel module loaded\?\nhint: Load the module: modprobe ecryptfs/);
    const asSelf = cliAsUser(u, ['setup-private'], `${u.password}\n`);
    assert.equal(asSelf.status, 1);
    assert.match(asSelf.stderr, /kernel module/);
    assert.doesNotMatch(asSelf.stdout, /MOUNT PASSPHRASE/);
    assert.equal(snapshot(u.home), before);
  });

  test('usage errors exit 2; a user cannot act for another; root needs -u', () => {
    const u = user('eatcl');
    assert.equal(cliAsRoot(['unlock', '--bogus']).status, 2);
    assert.equal(cliAsRoot(['setup-private', 'extra']).status, 2);
    assert.equal(cliAsRoot(['lock', '-u']).status, 2);
    const other = cliAsUser(u, ['unlock', '-u', 'root']);
    assert.equal(other.status, 1);
    const root = cliAsRoot(['unlock']);
    assert.equal(root.status, 1);
    assert.match(root.stderr, /run as the user, or as root with -u USER/);
    const st = cliAsUser(u, ['status', 'root']);
    assert.equal(st.status, 1);
    assert.match(st.stderr, /only root/);
  });

  test('unlock without a setup says how to make one', () => {
    const u = user('eatcl');
    const r = cliAsUser(u, ['unlock'], 'x\n');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /has no private directory set up.*\nhint: Set one up: ecryptfs-agent setup-private/);
  });

  test('unlock as the user (reference-made setup): wrong password → nothing changed; right one → keys, then the failed mount takes them back', () => {
    const u = user('eatcl');
    setupPrivateWithUtils(u, { fnek: true });
    const wrong = cliAsUser(u, ['unlock'], 'not-the-password\n');
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /wrong login passphrase: it does not unwrap ~\/\.ecryptfs\/wrapped-passphrase; nothing changed/);
    assert.deepEqual(userKeys(u), []);
    const right = cliAsUser(u, ['unlock'], `${u.password}\n`);
    assert.equal(right.status, 1);
    assert.match(right.stderr, /\/sbin\/mount\.ecryptfs_private did not mount ~\/Private: mount: No such device/);
    assert.deepEqual(userKeys(u), [], 'keys added by this unlock are taken back');
  });

  test('unlock -u as root: the keys go to the user, the mount fails (ENODEV), the keys are taken back; no session is recorded', () => {
    const u = user('eatcl');
    setupPrivateWithUtils(u, { fnek: false });
    const r = cliAsRoot(['unlock', '-u', u.name], `${u.password}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /No such device \(ENODEV\)\nhint: Load the module/);
    assert.deepEqual(userKeys(u), []);
    assert.ok(!fs.existsSync(`/run/ecryptfs-agent/${u.uid}.sessions`), 'a manual unlock is not a PAM session');
  });

  test('keys already present are used without asking; lock when not mounted removes them', () => {
    const u = user('eatcl');
    const s = setupPrivateWithUtils(u, { fnek: true });
    const ins = asUserRun(u, ['sh', '-c', `printf '%s' "$1" | ecryptfs-insert-wrapped-passphrase-into-keyring "$2" -`, 'sh', u.password, join(u.home, '.ecryptfs', 'wrapped-passphrase')]);
    assert.equal(ins.status, 0, ins.stderr);
    assert.equal(userKeys(u).length, 2);
    const st = cliAsUser(u, ['status']);
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, /keys in @u: +all present/);
    assert.match(st.stdout, /matches Private\.sig: not checked/);
    const json = JSON.parse(cliAsRoot(['status', '--json', u.name]).stdout) as { keys: { present: string[] }; sessions: number; setup: { fekSig: string } };
    assert.equal(json.setup.fekSig, s.fekSig);
    assert.equal(json.keys.present.length, 2);
    assert.equal(json.sessions, 0);
    const lock = cliAsUser(u, ['lock']);
    assert.equal(lock.status, 0, lock.stderr);
    assert.match(lock.stdout, /~\/Private is not mounted; removed its keys/);
    assert.deepEqual(userKeys(u), []);
  });
});

describe('who uses a mount (the fuser -vm scan behind lock)', () => {
  test('finds a process by its cwd and one by an open file on a tmpfs; not processes elsewhere; root sees all', async () => {
    const base = fs.mkdtempSync(join(tmpdir(), 'eat-holders-'));
    const mnt = join(base, 'm');
    fs.mkdirSync(mnt);
    mountRaw('eat-holders', mnt, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m');
    fs.writeFileSync(join(mnt, 'f'), 'x');
    const cwdHolder = spawn('sleep', ['60'], { cwd: mnt, stdio: 'ignore' });
    const fdHolder = spawn('sh', ['-c', `exec 3<${mnt}/f; exec sleep 60`], { cwd: '/', stdio: 'ignore' });
    const bystander = spawn('sleep', ['60'], { cwd: '/', stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const entry = readMountInfo().find((m) => m.mountPoint === mnt);
      assert.ok(entry);
      const { holders, uninspected } = processesUsingMount(entry);
      const by = new Map(holders.map((h) => [h.pid, h]));
      assert.equal(by.get(cwdHolder.pid!)?.access, 'c');
      assert.equal(by.get(cwdHolder.pid!)?.comm, 'sleep');
      assert.equal(by.get(cwdHolder.pid!)?.user, 'root');
      assert.equal(by.get(fdHolder.pid!)?.access, 'f');
      assert.ok(!by.has(bystander.pid!));
      assert.ok(!by.has(process.pid), 'ourselves excluded');
      assert.ok(uninspected <= 1, 'root inspects every process (pid 1 of this sandbox excepted)');
      // As a user, root's processes cannot be inspected: counted, not silently missed.
      const u = user('eatfu');
      const asU = asUser(ref(u), () => processesUsingMount(entry), {});
      assert.ok(asU.uninspected > 1);
      assert.ok(!asU.holders.some((h) => h.pid === cwdHolder.pid), 'a root-owned cwd is not visible to the user');
    } finally {
      for (const c of [cwdHolder, fdHolder, bystander]) c.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      unmount(mnt, { lazy: true });
      fs.rmSync(base, { recursive: true });
    }
  });
});
