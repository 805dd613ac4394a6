// CLI: run one script in the VM and exit with its status.
//   node dist/test/vm/run.js [--systemd] [--timeout SECONDS] [--memory MB] script.sh
// The guest's console streams to stdout; timing and the accelerator go to stderr.

import { readFileSync } from 'node:fs';
import { runInVm, VmRunError, type VmMode } from './vm';

function usage(): never {
  process.stderr.write('usage: vm-run [--systemd] [--timeout SECONDS] [--memory MB] script.sh|-\n');
  process.exit(2);
}

/** CLI: runs one script file (or - for stdin) in the VM; exits with its status (125: VM failure). */
export async function cliMain(): Promise<void> {
  const argv = process.argv.slice(2);
  let mode: VmMode = 'fast';
  let timeoutMs = 300_000;
  let memoryMb: number | undefined;
  let file: string | undefined;
  while (argv.length > 0) {
    const a = argv.shift() as string;
    if (a === '--systemd') mode = 'systemd';
    else if (a === '--fast') mode = 'fast';
    else if (a === '--timeout') timeoutMs = Number(argv.shift() ?? usage()) * 1000;
    else if (a === '--memory') memoryMb = Number(argv.shift() ?? usage());
    else if (a.startsWith('-') && a !== '-') usage();
    else if (file === undefined) file = a;
    else usage();
  }
  if (file === undefined || !Number.isFinite(timeoutMs)) usage();
  const script = readFileSync(file === '-' ? 0 : file, 'utf8');
  try {
    const r = await runInVm({ script, mode, timeoutMs, memoryMb, onOutput: (c) => process.stdout.write(c) });
    process.stderr.write(`[vm] ${mode} mode, ${r.accel}: boot ${r.bootMs} ms, total ${r.totalMs} ms, exit ${r.exitCode}\n`);
    process.exit(r.exitCode);
  } catch (e) {
    if (e instanceof VmRunError) {
      process.stderr.write(`[vm] ${e.message}\n${e.console}\n`);
      process.exit(125);
    }
    throw e;
  }
}

if (require.main === module) void cliMain();
