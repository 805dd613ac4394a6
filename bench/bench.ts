/**
 * `npm run bench`: every figure in one go (figures, not assertions).
 *   1. the KDF alternatives: bench/kdf.ts, run as it is (node dist/bench/kdf.js RUNS)
 *   2. agent start-up and peak RSS on the host (bench/login.ts)
 *   3. login latency in the VM, one fast-mode boot (bench/login.ts); skipped with --no-vm
 * Options: --no-vm, --runs N (KDF and start-up runs, default 15; VM iterations max(2, N/5), after a warm-up).
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { benchRss, benchStartup, benchVm } from './login';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const noVm = args.includes('--no-vm');
  const ri = args.indexOf('--runs');
  const runs = ri >= 0 ? Math.max(3, Number(args[ri + 1]) || 15) : 15;
  console.log(`ecryptfs-agent bench — node ${process.version}, ${process.arch}`);

  console.log('\n## KDF (bench/kdf.ts)');
  const kdf = spawnSync(process.execPath, [join(__dirname, 'kdf.js'), String(runs)], { encoding: 'utf8' });
  process.stdout.write(kdf.stdout);
  if (kdf.status !== 0) console.log(`kdf bench failed (${kdf.status}): ${kdf.stderr}`);

  console.log('\n## Agent start-up');
  for (const l of benchStartup(runs)) console.log(l);
  console.log('\n## Agent peak RSS');
  for (const l of benchRss()) console.log(l);

  if (noVm) {
    console.log('\n## Login latency: skipped (--no-vm)');
    return 0;
  }
  console.log('\n## Login latency (VM)');
  // The machine is shared: the load says how much the TCG figures are stretched.
  const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`host load average before the VM run: ${load()}`);
  try {
    for (const l of await benchVm(Math.max(2, Math.round(runs / 5)))) console.log(l);
    console.log(`host load average after the VM run: ${load()}`);
  } catch (e) {
    console.log(`VM bench failed: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
