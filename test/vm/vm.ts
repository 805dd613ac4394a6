// Boots Debian's kernel under qemu with the host root (read-only, 9p) under a tmpfs overlay and
// runs one bash script as root inside. See test/vm/README.md.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_FILE, JOB_SCRIPT, START_MARKER } from './guest';
import { prepareVm, type VmImage } from './prepare';

/** The repository root (this file is dist/test/vm/vm.js): the guest must see it at the same path. */
const REPO_ROOT = join(__dirname, '..', '..', '..');

export type VmMode = 'fast' | 'systemd';
export type Accel = 'kvm' | 'tcg';

export interface RunInVmOptions {
  /** bash script run as root inside the guest (cwd /root, stdin /dev/null). */
  script: string;
  /** fast: busybox PID 1 runs the script right after switch_root. systemd: systemd is PID 1 and
   * the script runs once dbus, logind and sshd are up. */
  mode: VmMode;
  /** Wall-clock limit for the whole VM run, boot included; qemu is killed when it passes.
   * Multiplied by ECRYPTFS_AGENT_VM_TIMEOUT_SCALE (default 1) for slow CI machines. */
  timeoutMs: number;
  /** Guest RAM, default 1024. */
  memoryMb?: number;
  /** Guest CPUs. Default: 2 under KVM, 1 under TCG, where two guests share the 2-core machine
   * and a one-vCPU guest ran the login suite twice as fast as a two-vCPU one beside it
   * (multi-threaded TCG's cost of keeping two vCPUs coherent). Suites whose point is true
   * parallelism (races, concurrent logins) ask for 2. */
  cpus?: number;
  /** Called with each chunk of guest console output (boot messages and the script's output). */
  onOutput?: (chunk: string) => void;
  /** Prepared image; default: prepareVm() (idempotent, cached). */
  image?: VmImage;
  /** Raw disk image files attached as virtio disks (/dev/vda, /dev/vdb, …), written through to
   * the host file, so what the guest had flushed survives a reset and a second boot. */
  disks?: string[];
  /** The script ends the VM by a reset (sysrq b: no sync, no unmount) on purpose: a run with no
   * exit status is then returned with `reset: true` instead of throwing. */
  expectReset?: boolean;
  /** Called with the host path of the per-run share (the guest's /vmshare) once the VM has
   * ended, before the share is removed: how a test takes files out of the guest. */
  collect?: (share: string) => void | Promise<void>;
}

export interface RunInVmResult {
  /** The script's exit status as recorded by the guest; -1 when it ended by a reset (`reset`). */
  exitCode: number;
  /** The VM ended without an exit status and `expectReset` was set. */
  reset: boolean;
  /** The script's output (stdout+stderr, interleaved as written; CRLF normalised to LF). */
  output: string;
  /** Milliseconds from spawning qemu to the job starting (in systemd mode: boot finished). */
  bootMs: number;
  accel: Accel;
  /** Milliseconds from spawning qemu to qemu's exit. */
  totalMs: number;
  /** Everything the guest printed: hvc0 boot chatter, the script's output, then the kernel's
   * serial log (ttyS0). For diagnosing failures. */
  console: string;
}

/** Thrown when the run produced no exit status: timeout, kernel panic, qemu failure. */
export class VmRunError extends Error {
  constructor(
    message: string,
    readonly reason: 'timeout' | 'no-exit-status' | 'qemu-failed',
    readonly console: string,
  ) {
    super(message);
    this.name = 'VmRunError';
  }
}

export interface AccelChoice {
  accel: Accel;
  why: string;
}

/**
 * KVM only where a real KVM exists. /dev/kvm backed by kvm-pvm (software nested virtualisation)
 * only runs PVM-built guest kernels: Debian's kernel aborts or triple-faults there, so TCG.
 * ECRYPTFS_AGENT_VM_ACCEL=tcg|kvm overrides.
 */
export function chooseAccel(): AccelChoice {
  const forced = process.env.ECRYPTFS_AGENT_VM_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return { accel: forced, why: 'ECRYPTFS_AGENT_VM_ACCEL' };
  if (existsSync('/sys/module/kvm_pvm')) return { accel: 'tcg', why: 'kvm-pvm loaded: it cannot run a stock kernel' };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', why: 'no /dev/kvm' };
  if (!existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) {
    return { accel: 'tcg', why: '/dev/kvm without kvm_intel/kvm_amd' };
  }
  return { accel: 'kvm', why: 'real KVM' };
}

const QBOOT = '/usr/share/qemu/qboot.rom';
let preparedImage: Promise<VmImage> | undefined;

/** prepareVm() once per process: it is idempotent, but asks apt-cache each time. */
function defaultImage(): Promise<VmImage> {
  preparedImage ??= prepareVm({ log: (l) => process.stderr.write(`[vm-prepare] ${l}\n`) });
  return preparedImage;
}

let announced = false;

export function qemuArgs(
  image: VmImage, accel: Accel, mode: VmMode, share: string, serialLog: string, memoryMb: number, disks: readonly string[] = [],
  cpus: number = accel === 'kvm' ? 2 : 1,
): string[] {
  const cmdline = [
    'console=ttyS0', 'quiet', 'loglevel=4', 'panic=-1', 'rdinit=/init',
    // Self-tests of every crypto algorithm cost seconds under TCG.
    'cryptomgr.notests',
    // No keyboard/mouse probing on the emulated i8042; PCI interrupts without ACPI link setup
    // (~0.15 s per virtio device under TCG).
    'i8042.noaux', 'i8042.nokbd', 'i8042.nopnp', '8250.nr_uarts=1', 'tsc=reliable', 'no_timer_check', 'pci=noacpi',
    // The emulated CPU has RDRAND: the CRNG is ready at once (ecryptfs-setup-private reads /dev/random).
    'random.trust_cpu=on', 'systemd.show_status=false', 'systemd.log_target=kmsg',
    `eatvm.mode=${mode}`, `eatvm.cache=${image.cacheDir}`, `eatvm.kver=${image.kver}`,
    ...(/\s/.test(REPO_ROOT) ? [] : [`eatvm.keep=${REPO_ROOT}`]),
  ].join(' ');
  return [
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    // qboot jumps straight to the kernel; SeaBIOS spends measurable time under TCG.
    '-machine', 'pc', ...(existsSync(QBOOT) ? ['-bios', QBOOT] : []),
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-m', String(memoryMb), '-smp', String(cpus),
    '-kernel', image.vmlinux, '-initrd', image.initramfs, '-append', cmdline,
    '-chardev', `file,id=ser0,path=${serialLog}`, '-serial', 'chardev:ser0',
    '-device', 'virtio-serial-pci',
    '-chardev', 'stdio,id=con0,signal=off', '-device', 'virtconsole,chardev=con0',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${share},mount_tag=vmshare,security_model=none,multidevs=remap`,
    ...disks.flatMap((file) => ['-drive', `file=${file},format=raw,if=virtio,cache=writeback`]),
  ];
}

function timeoutScale(): number {
  const raw = process.env.ECRYPTFS_AGENT_VM_TIMEOUT_SCALE;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`ECRYPTFS_AGENT_VM_TIMEOUT_SCALE must be a positive number, not ${JSON.stringify(raw)}`);
  return n;
}

export async function runInVm(opts: RunInVmOptions): Promise<RunInVmResult> {
  const image = opts.image ?? (await defaultImage());
  const { accel, why } = chooseAccel();
  if (!announced) {
    process.stderr.write(`[vm] accelerator: ${accel} (${why})\n`);
    announced = true;
  }
  const work = mkdtempSync(join(tmpdir(), 'eatvm-'));
  const share = join(work, 'share');
  const serialLog = join(work, 'serial.log');
  try {
    mkdirSync(share, { mode: 0o755 });
    writeFileSync(join(share, JOB_SCRIPT), opts.script, { mode: 0o755 });
    writeFileSync(serialLog, '');
    const timeoutMs = opts.timeoutMs * timeoutScale();
    const args = qemuArgs(image, accel, opts.mode, share, serialLog, opts.memoryMb ?? 1024, opts.disks, opts.cpus);
    const t0 = Date.now();
    const { consoleText, stderr, bootMs, timedOut, code, signal } = await new Promise<{
      consoleText: string; stderr: string; bootMs: number; timedOut: boolean; code: number | null;
      signal: NodeJS.Signals | null;
    }>((resolve, reject) => {
      // stdin stays an open pipe: the stdio chardev must not see EOF or a terminal.
      const qemu = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      let stderr = '';
      let bootAt = -1;
      let timedOut = false;
      let heldCr = false; // a chunk ending in \r may be half of a CRLF (hvc0 is a tty: onlcr)
      const timer = setTimeout(() => {
        timedOut = true;
        qemu.kill('SIGKILL');
      }, timeoutMs);
      // Never leave a VM behind when the test process dies first.
      const killOnExit = (): void => {
        qemu.kill('SIGKILL');
      };
      process.once('exit', killOnExit);
      qemu.stdout.setEncoding('utf8');
      qemu.stdout.on('data', (chunk: string) => {
        let c = (heldCr ? '\r' : '') + chunk;
        heldCr = c.endsWith('\r');
        if (heldCr) c = c.slice(0, -1);
        c = c.replace(/\r\n/g, '\n');
        text += c;
        if (bootAt < 0 && text.includes(START_MARKER)) bootAt = Date.now() - t0;
        opts.onOutput?.(c);
      });
      qemu.stderr.setEncoding('utf8');
      qemu.stderr.on('data', (c: string) => {
        stderr += c;
      });
      qemu.on('error', (e) => {
        clearTimeout(timer);
        process.removeListener('exit', killOnExit);
        reject(new VmRunError(`cannot start qemu: ${e.message}`, 'qemu-failed', ''));
      });
      qemu.on('close', (code, signal) => {
        clearTimeout(timer);
        process.removeListener('exit', killOnExit);
        if (heldCr) text += '\r';
        resolve({ consoleText: text, stderr, bootMs: bootAt, timedOut, code, signal });
      });
    });
    const totalMs = Date.now() - t0;
    const serial = readFileSync(serialLog, 'utf8').replace(/\r\n/g, '\n');
    let fullConsole = consoleText;
    if (serial.trim()) fullConsole += `\n[kernel serial log]\n${serial}`;
    if (stderr.trim()) fullConsole += `\n[qemu stderr]\n${stderr}`;
    if (timedOut) {
      throw new VmRunError(`VM timed out after ${timeoutMs} ms (${opts.mode} mode, ${accel})`, 'timeout', fullConsole);
    }
    const exitFile = join(share, EXIT_FILE);
    const markerAt = consoleText.indexOf(START_MARKER);
    const output = markerAt < 0 ? '' : consoleText.slice(markerAt + START_MARKER.length + 1);
    if (!existsSync(exitFile) && opts.expectReset && markerAt >= 0 && code === 0) {
      return { exitCode: -1, reset: true, output, bootMs, accel, totalMs, console: fullConsole };
    }
    if (!existsSync(exitFile)) {
      const how = signal ? `signal ${signal}` : `status ${code}`;
      throw new VmRunError(`VM ended (qemu ${how}) without an exit status from the script`, 'no-exit-status', fullConsole);
    }
    await opts.collect?.(share);
    const raw = readFileSync(exitFile, 'utf8').trim();
    if (!/^\d+$/.test(raw)) throw new VmRunError(`bad exit status file: ${JSON.stringify(raw)}`, 'no-exit-status', fullConsole);
    return { exitCode: Number(raw), reset: false, output, bootMs, accel, totalMs, console: fullConsole };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
