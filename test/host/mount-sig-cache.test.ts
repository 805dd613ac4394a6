/**
 * The sig cache and the keyring around `ecryptfs-agent mount`, on the host (no eCryptfs module,
 * so every mount(2) ends in ENODEV — the end of what can be shown here):
 *  - our command in-process, its home a temp dir: warning logic, --yes, the interactive
 *    questions, keys taken back, nothing recorded unless the mount worked;
 *  - the reference helper (/sbin/mount.ecryptfs, 111) in a private mount namespace (its home
 *    /root bind-mounted to a temp dir, a fake /sys/fs/ecryptfs/version so it gets as far as its
 *    sig check): it reads what we record and we read what it records.
 * Keys land in root's user keyring, as with the reference; each one is removed again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildPasswordAuthTok } from '../../src/formats/auth-tok';
import { systemKernelCiphers } from '../../src/os/ciphers';
import type { CliIO } from '../../src/cli/command';
import { runCommand } from '../../src/cli/main';
import { createMountCommand } from '../../src/cli/mount-commands';
import { DEFAULT_SALT } from '../../src/formats/kdf';
import { describeKey, insertAuthTok, KEY_SPEC, listKeyring, possessUserKeyring, unlinkKey } from '../../src/os/keyring';
import { findMountsAt } from '../../src/os/mount';
import type { PassphraseReader } from '../../src/os/passphrase-input';
import { appendToSigCache, isSigCached, sigCachePath } from '../../src/actions/sig-cache';

const base = mkdtempSync(join(tmpdir(), 'eat-sigcache-'));
const lower = join(base, 'lower');
const upper = join(base, 'upper');
mkdirSync(lower);
mkdirSync(upper);
const hostHasEcryptfs = readFileSync('/proc/filesystems', 'utf8').includes('ecryptfs') || existsSync('/sys/module/ecryptfs');

const tag = randomBytes(4).toString('hex');
const PW = { a: `sigA-${tag}`, b: `sigB-${tag}`, c: `sigC-${tag}` };
const sigOf = (pw: string): string => buildPasswordAuthTok(Buffer.from(pw), DEFAULT_SALT).sig;
const SIG = { a: sigOf(PW.a), b: sigOf(PW.b), c: sigOf(PW.c) };

function rootKeyIds(sig: string): number[] {
  return listKeyring(KEY_SPEC.USER).filter((id) => {
    try {
      return describeKey(id).description === sig;
    } catch {
      return false;
    }
  });
}
const rootHasKey = (sig: string): boolean => rootKeyIds(sig).length > 0;
function removeRootKey(sig: string): void {
  for (const id of rootKeyIds(sig)) unlinkKey(id, KEY_SPEC.USER);
}

after(() => {
  for (const s of Object.values(SIG)) removeRootKey(s);
  rmSync(base, { recursive: true, force: true });
});

/** A CliIO whose home is `home` and whose stdin is `lines` (one per read). */
function scriptedIO(home: string, lines: string[]): CliIO & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  const queue = [...lines];
  const passphrases: PassphraseReader = {
    async read(prompt?: string) {
      if (prompt !== undefined) out += `${prompt}: `;
      const l = queue.shift();
      return l === undefined ? null : Buffer.from(l);
    },
  };
  return {
    out: (t) => {
      out += t.toString();
    },
    err: (t) => {
      err += t;
    },
    passphrases,
    home: () => home,
    stdout: () => out,
    stderr: () => err,
  };
}

async function ourMount(home: string, lines: string[], flags: string[], interactive = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = createMountCommand({ kernel: systemKernelCiphers(), interactive: () => interactive, isRoot: () => true });
  const io = scriptedIO(home, lines);
  const code = await runCommand(cmd, [lower, upper, ...flags], io);
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

const SCRIPT = ['--cipher', 'aes', '--key-bytes', '16', '--no-passthrough', '--no-fnek', '--passphrase-stdin'];

describe('our mount command, up to the mount call', { skip: hostHasEcryptfs && 'this host has eCryptfs: these cases expect mount(2) to fail with ENODEV (the VM suite mounts)' }, () => {
  test('a new sig without a terminal: refused with the warning\'s reason; no key, no cache', async () => {
    const home = join(base, 'h1');
    mkdirSync(home);
    const r = await ourMount(home, [PW.a], SCRIPT);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`signature ${SIG.a} is not in ${home}/.ecryptfs/sig-cache.txt: you have never mounted with this key before, which could mean a mistyped passphrase; nothing changed`));
    assert.match(r.stderr, /hint: .*--yes/);
    assert.equal(rootHasKey(SIG.a), false);
    assert.equal(existsSync(join(home, '.ecryptfs')), false, 'not even ~/.ecryptfs is created');
  });

  test('--yes goes on to the mount; it fails (ENODEV): the key is taken back and nothing is recorded', async () => {
    const home = join(base, 'h2');
    mkdirSync(home);
    const r = await ourMount(home, [PW.a], [...SCRIPT, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`Attempting to mount with the following options:\\n  ecryptfs_cipher=aes\\n  ecryptfs_key_bytes=16\\n  ecryptfs_unlink_sigs\\n  ecryptfs_sig=${SIG.a}\\n`));
    assert.match(r.stderr, new RegExp(`cannot mount ${lower} on ${upper}: No such device \\(ENODEV\\)`));
    assert.equal(rootHasKey(SIG.a), false, 'the key this run added is gone');
    assert.equal(existsSync(sigCachePath(home)), false, 'a sig is recorded only after a mount that worked');
    assert.equal(findMountsAt(upper).length, 0);
  });

  test('a key that was in root\'s keyring before stays there after the failed mount', async () => {
    const home = join(base, 'h3');
    mkdirSync(home);
    const tok = buildPasswordAuthTok(Buffer.from(PW.b), DEFAULT_SALT);
    possessUserKeyring();
    assert.equal(insertAuthTok(tok.sig, tok.payload, KEY_SPEC.USER).added, true);
    const r = await ourMount(home, [PW.b], [...SCRIPT, '--no-sig-cache']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ENODEV/);
    assert.equal(rootHasKey(SIG.b), true, 'not ours to remove');
    removeRootKey(SIG.b);
  });

  test('a sig in the cache (reference format): no warning, straight to the mount', async () => {
    const home = join(base, 'h4');
    mkdirSync(join(home, '.ecryptfs'), { recursive: true, mode: 0o700 });
    writeFileSync(sigCachePath(home), `${SIG.b}\n${SIG.a}\n`, { mode: 0o600 });
    const r = await ourMount(home, [PW.a], SCRIPT);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stdout + r.stderr, /WARNING|never mounted/);
    assert.match(r.stderr, /ENODEV/);
  });

  test('on a terminal: the dialog, the warning, "no" aborts with nothing changed; yes/yes still records nothing when the mount fails', async () => {
    const home = join(base, 'h5');
    mkdirSync(home);
    const no = await ourMount(home, ['', PW.c, '1', '', '', '', 'no'], [], true);
    assert.equal(no.code, 1);
    assert.ok(no.stdout.startsWith('Select key type to use for newly created files: \n 1) passphrase\nSelection [passphrase]: Passphrase: Select cipher: \n 1) aes: '), no.stdout);
    assert.match(no.stdout, new RegExp(`WARNING: Based on the contents of \\[${home}/.ecryptfs/sig-cache.txt\\],\\nit looks like you have never mounted with this key \\n`));
    assert.match(no.stdout, /Would you like to proceed with the mount \(yes\/no\)\? : Aborting mount\.\n$/);
    assert.match(no.stderr, /mount aborted; nothing changed/);
    assert.equal(rootHasKey(SIG.c), false);
    const yes = await ourMount(home, ['', PW.c, '', '', '', '', 'yes', 'yes'], [], true);
    assert.equal(yes.code, 1);
    assert.match(yes.stdout, /in order to avoid this warning in the future \(yes\/no\)\? : /);
    assert.match(yes.stderr, /ENODEV/);
    assert.equal(existsSync(sigCachePath(home)), false);
    assert.equal(rootHasKey(SIG.c), false);
  });
});

/** Runs /sbin/mount.ecryptfs (111) with `home` as root's home and eCryptfs pretending to be loaded. */
function referenceMount(home: string, passphrase: string, answers: string): { status: number | null; out: string } {
  const opts = `key=passphrase:passphrase_passwd=${passphrase},ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_passthrough=n,ecryptfs_enable_filename_crypto=n`;
  const script =
    'mount --bind "$1" /root && mount -t tmpfs eat-fake-sysfs /sys/fs && mkdir /sys/fs/ecryptfs && echo 375 > /sys/fs/ecryptfs/version && ' +
    'exec /sbin/mount.ecryptfs "$2" "$3" -o "$4"';
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', home, lower, upper, opts], { input: answers, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('compatibility with mount.ecryptfs\'s sig cache (ecryptfs-utils 111)', () => {
  test('its file is read by us, ours by it; the warning shows for the same sigs; same modes', async () => {
    const refHome = join(base, 'ref');
    mkdirSync(refHome);
    const first = referenceMount(refHome, PW.a, 'yes\nyes\n');
    assert.match(first.out, new RegExp(`ecryptfs_sig=${SIG.a}\\n`), 'it derives the same sig as we do');
    assert.match(first.out, /WARNING: Based on the contents of \[\/root\/.ecryptfs\/sig-cache.txt\]/);
    assert.match(first.out, /Successfully appended new sig to user sig cache file/);
    const path = sigCachePath(refHome);
    assert.equal(readFileSync(path, 'latin1'), `${SIG.a}\n`);
    assert.equal(isSigCached(path, SIG.a), true, 'we read its record');
    assert.equal(isSigCached(path, SIG.b), false);

    appendToSigCache(path, SIG.b);
    const second = referenceMount(refHome, PW.b, '');
    assert.doesNotMatch(second.out, /WARNING/, 'it reads our record: no warning');
    assert.match(second.out, new RegExp(`ecryptfs_sig=${SIG.b}\\n`));
    const control = referenceMount(refHome, PW.c, 'no\n');
    assert.match(control.out, /WARNING: Based on the contents/, 'an unknown sig still warns');
    assert.match(control.out, /Aborting mount\./);
    assert.equal(readFileSync(path, 'latin1'), `${SIG.a}\n${SIG.b}\n`);

    const ourHome = join(base, 'ours');
    mkdirSync(ourHome);
    appendToSigCache(sigCachePath(ourHome), SIG.a);
    assert.equal(readFileSync(sigCachePath(ourHome), 'latin1'), `${SIG.a}\n`, 'our record is byte-identical');
    for (const rel of ['.ecryptfs', '.ecryptfs/sig-cache.txt']) {
      const mode = (h: string) => statSync(join(h, rel)).mode & 0o7777;
      assert.equal(mode(ourHome), mode(refHome), rel);
    }
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});
