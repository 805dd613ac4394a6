/**
 * `ecryptfs-agent export` against Debian's kernel, in one fast-mode boot: the guest half
 * (test/vm/scripts/export-suite.sh) has the kernel write lower directories for every cipher and
 * key size with and without filename encryption, records what the mount shows and copies the
 * lower directories to the share; this host half runs `export` on those copies here, where the
 * kernel has no eCryptfs at all, and compares every file byte for byte (sha256), type, mode,
 * mtime and link target. Ciphers OpenSSL has (aes 16/24/32, des3_ede, blowfish 16/56 and cast5
 * through the legacy provider) must export completely; twofish and cast6 must fail with the
 * typed "not supported yet" error and write no garbage. In the same boot, `migrate-out --to plain`
 * of a private directory set up by ecryptfs-setup-private, whose files the kernel wrote through a
 * login: the same files in ~/Private afterwards, and a login that unlocks nothing; and
 * `migrate-out --to fscrypt` of such a directory on an ext4 image, with Debian's fscrypt and
 * libpam-fscrypt installed in the guest (their .debs downloaded here, never installed on the host,
 * whose PAM stacks every guest shares): a console login through pam_fscrypt shows the same files.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';
import { guestDebs } from './prepare';
import { deriveMountKeys } from '../../src/formats/auth-tok';
import { DEFAULT_SALT } from '../../src/formats/kdf';

const REPO = join(__dirname, '..', '..', '..');
const CLI = join(REPO, 'bin', 'ecryptfs-agent');
const PW = 'vm-export-mount-passphrase';
const UNSUPPORTED = ['twofish', 'cast6'];

interface Outcome {
  name: string;
  status: number | null;
  stderr: string;
  sums?: [want: string, got: string];
  meta?: [want: string, got: string];
  files?: string[];
  /** size-4097 and its hard link sub/hardlink-4097 are one file in the export */
  linked?: boolean;
}

/** What the guest's record() prints, computed the same way on the exported tree. */
function describeTree(dir: string): { sums: string; meta: string } {
  const sums = execFileSync('bash', ['-c', 'find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum'], { cwd: dir, encoding: 'utf8' });
  const meta = execFileSync('bash', ['-c', "find . -mindepth 1 -printf '%p %y %m %Ts %l\\n' | LC_ALL=C sort"], { cwd: dir, encoding: 'utf8' });
  return { sums, meta };
}

test('export: every kernel-written cipher/key size, names encrypted or not, read back here without the module; migrate-out --to plain and --to fscrypt of a kernel-written private directory', { timeout: 10 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'export-suite.sh'), 'utf8');
  const specs = (/^SPECS='([^']*)'/m.exec(body)?.[1] ?? '').split(' ').filter(Boolean);
  const literal = body.split('\n').filter((l) => /^check [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  const keys = deriveMountKeys(Buffer.from(PW), DEFAULT_SALT, true);
  const toks = `SIG=${keys.fek.sig} FNEK=${keys.fnek?.sig} FEK_TOK=${keys.fek.payload.toString('base64')} FNEK_TOK=${keys.fnek?.payload.toString('base64')}`;
  const outcomes: Outcome[] = [];
  const work = mkdtempSync(join(tmpdir(), 'export-vm-'));
  try {
    await runChecksInVm(t, {
      script: `REPO='${REPO}'\nFSCRYPT_DEBS='${guestDebs(['fscrypt', 'libpam-fscrypt']).join(' ')}'\n${toks}\n${body}`,
      mode: 'fast',
      // the ext4 image of section f, the kernel-written trees and fscrypt's Argon2 (64 MiB a hash) share the guest's RAM
      memoryMb: 2048,
      timeoutMs: 8 * 60_000,
      expectedChecks: literal + specs.length * 2,
      collect: (share) => {
        const out = join(share, 'export');
        if (!existsSync(out)) return;
        for (const lower of readdirSync(out).filter((n) => n.endsWith('.lower')).sort()) {
          const name = lower.slice(0, -'.lower'.length);
          const dest = join(work, name);
          const r = spawnSync(CLI, ['export', '-m', join(out, lower), dest], { input: `${PW}\n`, encoding: 'utf8', timeout: 120_000 });
          const o: Outcome = { name, status: r.status, stderr: r.stderr };
          if (existsSync(dest)) {
            const got = describeTree(dest);
            o.sums = [readFileSync(join(out, `${name}.sums`), 'utf8'), got.sums];
            o.meta = [readFileSync(join(out, `${name}.meta`), 'utf8'), got.meta];
            o.files = readdirSync(dest);
            o.linked = existsSync(join(dest, 'size-4097')) && statSync(join(dest, 'size-4097')).ino === statSync(join(dest, 'sub', 'hardlink-4097'), { throwIfNoEntry: false })?.ino;
          }
          outcomes.push(o);
        }
      },
    });
    await t.test('the host exported all 18 lower directories', () => assert.equal(outcomes.length, specs.length * 2));
    for (const o of outcomes) {
      const cipher = o.name.split('-')[0] as string;
      if (UNSUPPORTED.includes(cipher)) {
        await t.test(`host export ${o.name}: typed "not supported yet", no garbage written`, () => {
          assert.equal(o.status, 1, o.stderr);
          assert.match(o.stderr, new RegExp(`cannot decrypt ${cipher}.*OpenSSL has no such cipher`));
          assert.match(o.stderr, /not implemented yet/);
          // only the plaintext passthrough file (and, without name encryption, the directory and the symlink) can come out
          const allowed = o.name.endsWith('-fnek') ? ['passthrough.txt'] : ['passthrough.txt', 'sub', 'link'];
          assert.deepEqual((o.files ?? []).filter((f) => !allowed.includes(f)), []);
        });
        continue;
      }
      await t.test(`host export ${o.name}: every file byte for byte, modes, times, symlink, hard link, long name, sparse${o.name.endsWith('-plain') ? ', passthrough' : ''}`, () => {
        assert.equal(o.status, 0, o.stderr);
        assert.ok(o.sums && o.meta, 'DEST was written');
        assert.equal(o.sums[1], o.sums[0]);
        assert.equal(o.meta[1], o.meta[0]);
        if (o.name.endsWith('-plain')) assert.match(o.sums[0], /\.\/passthrough\.txt\n/);
        assert.equal(o.linked, true, 'size-4097 and sub/hardlink-4097 one file, as in the lower directory');
        assert.match(o.sums[0], new RegExp(`\\./${'n'.repeat(143)}\\n`));
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
