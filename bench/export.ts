/**
 * Throughput of `export`'s reader (src/actions/export.ts exportTree: read, decrypt extent by
 * extent, write) against `openssl enc -d` decrypting the same ciphertext bytes as one CBC
 * stream (no per-extent IVs, no file walk): the floor for the same amount of AES work.
 * One lower file made by the test writer (the kernel's format, checked against kernel-written
 * files in test/unit/export.test.ts). Prints figures, never asserts.
 * Run: node dist/bench/export.js [MiB] [cipher: aes-128|aes-256|des3|bf]
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportKeysOf, exportTree } from '../src/actions/export';
import { enableOpensslLegacyCiphers } from '../src/os/ciphers';
import { DEFAULT_SALT } from '../src/formats/kdf';
import { WRITER_CIPHERS, writeLowerFile } from '../test/helpers/ecryptfs-writer';

const MIB = Math.max(1, Number(process.argv[2] ?? 64));
const WHICH: Record<string, { index: number; openssl: string }> = {
  'aes-128': { index: 0, openssl: 'aes-128-cbc' },
  'aes-256': { index: 2, openssl: 'aes-256-cbc' },
  des3: { index: 3, openssl: 'des-ede3-cbc' },
  bf: { index: 4, openssl: 'bf-cbc' },
};
const pick = WHICH[process.argv[3] ?? 'aes-128'] ?? WHICH['aes-128']!;
const cipher = WRITER_CIPHERS[pick.index]!;
enableOpensslLegacyCiphers();

const work = fs.mkdtempSync(join(tmpdir(), 'bench-export-'));
try {
  const keys = exportKeysOf(Buffer.from('bench mount passphrase'), DEFAULT_SALT);
  const fek = crypto.randomBytes(cipher.keyBytes);
  const plain = crypto.randomBytes(MIB * 1024 * 1024);
  const lowerDir = join(work, 'lower');
  fs.mkdirSync(lowerDir);
  const { lower } = writeLowerFile(plain, cipher, keys.fekSek, keys.fekSig, { fek });
  fs.writeFileSync(join(lowerDir, 'file'), lower);
  const ciphertext = join(work, 'ciphertext');
  fs.writeFileSync(ciphertext, lower.subarray(8192));

  const runs = 3;
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    fs.rmSync(join(work, 'out'), { recursive: true, force: true });
    let t = process.hrtime.bigint();
    const s = exportTree(lowerDir, join(work, 'out'), keys);
    ours.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (s.problems.length > 0 || !fs.readFileSync(join(work, 'out', 'file')).equals(plain)) throw new Error('export did not give the plaintext back');
    t = process.hrtime.bigint();
    const args = ['enc', '-d', `-${pick.openssl}`, '-nopad', '-K', fek.toString('hex'), '-iv', '00'.repeat(cipher.block), '-in', ciphertext, '-out', join(work, 'openssl.out')];
    if (pick.openssl === 'bf-cbc') args.splice(1, 0, '-provider', 'legacy', '-provider', 'default');
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    theirs.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  }
  const best = (xs: number[]): number => Math.min(...xs);
  const mbps = (ms: number): string => ((MIB * 1.048576) / (ms / 1000)).toFixed(0);
  console.log(`export reader vs openssl enc -d, ${MIB} MiB, ${cipher.cbc} (${cipher.keyBytes}-byte key), best of ${runs}:`);
  console.log(`  ecryptfs-agent exportTree  ${best(ours).toFixed(0)} ms  ${mbps(best(ours))} MB/s`);
  console.log(`  openssl enc -d (one CBC)   ${best(theirs).toFixed(0)} ms  ${mbps(best(theirs))} MB/s`);
  console.log(`  ratio ours/openssl         ${(best(ours) / best(theirs)).toFixed(2)}`);
  keys.wipe();
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
