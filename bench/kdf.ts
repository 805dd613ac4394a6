/**
 * eCryptfs KDF hot loop (65536 x SHA-512) three ways; prints ms per derivation (median of N)
 * and fails unless all variants give the same digest. Run: node dist/bench/kdf.js [runs]
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { native } from '../src/os/native';

const ROUNDS = 65536;
const RUNS = Math.max(3, Number(process.argv[2] ?? 15));
// first input as in generate_passphrase_sig: salt || passphrase
const first = Buffer.concat([Buffer.from('0011223344556677', 'hex'), Buffer.from('testpass')]);

function createHashLoop(input: Buffer, rounds: number): Buffer {
  let d = crypto.createHash('sha512').update(input).digest();
  for (let i = 1; i < rounds; i++) d = crypto.createHash('sha512').update(d).digest();
  return d;
}

type HashFn = (alg: string, data: Buffer, enc: 'buffer') => Buffer;
const oneShot = (crypto as unknown as { hash?: HashFn }).hash;

function hashLoop(input: Buffer, rounds: number): Buffer {
  const h = oneShot!;
  let d = h('sha512', input, 'buffer');
  for (let i = 1; i < rounds; i++) d = h('sha512', d, 'buffer');
  return d;
}

const variants: [string, (b: Buffer, r: number) => Buffer][] = [['crypto.createHash loop', createHashLoop]];
if (typeof oneShot === 'function') variants.push(['crypto.hash loop', hashLoop]);
variants.push(['native sha512Iterate', (b, r) => native().sha512Iterate(b, r)]);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: { variant: string; median: number; min: number; digest: string }[] = [];
for (const [name, fn] of variants) {
  fn(first, ROUNDS);
  fn(first, ROUNDS); // warm-up
  const times: number[] = [];
  let digest = '';
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    digest = fn(first, ROUNDS).toString('hex');
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  rows.push({ variant: name, median: median(times), min: Math.min(...times), digest });
}
console.log(`node ${process.version}, ${ROUNDS} rounds, median of ${RUNS} runs`);
console.log('| variant | median ms | min ms | ns/hash |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.variant} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${((r.median * 1e6) / ROUNDS).toFixed(0)} |`);
for (const r of rows) assert.equal(r.digest, rows[0]!.digest, `${r.variant} differs`);
// fekek of passphrase "testpass" seen in a key added by ecryptfs-add-passphrase (payload offset 648)
assert.ok(rows[0]!.digest.startsWith('e4e6eac3631766d57505c42104d8544b'), 'digest differs from the ecryptfs-utils vector');
console.log(`all ${rows.length} variants agree: ${rows[0]!.digest.slice(0, 32)}…`);
