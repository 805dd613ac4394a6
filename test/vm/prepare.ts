// Prepares the VM cache: Debian's own kernel (which ships ecryptfs.ko; the host kernel has no
// eCryptfs), an uncompressed vmlinux for PVH direct boot, a depmod-ed module tree and a busybox
// initramfs. The cache lives outside the repo (default /var/cache/ecryptfs-agent-vm, override
// with ECRYPTFS_AGENT_VM_CACHE) and is reused while its stamp matches.
//
// Usage as a CLI: node dist/test/vm/prepare.js   (or scripts/vm-prepare)

import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  INITRAMFS_MODULES, MASKED_UNITS, initScript, jobSystemdScript, stage2FastScript, systemdUnits,
} from './guest';

export const DEFAULT_CACHE_DIR = '/var/cache/ecryptfs-agent-vm';
const HOST_BUSYBOX = '/bin/busybox';
/** Bumped when the cache layout changes in a way the content hash cannot see. */
const LAYOUT_VERSION = 1;

/** Everything runInVm needs to boot. Paths are absolute host paths; the guest sees the same
 * paths through the 9p root. */
export interface VmImage {
  cacheDir: string;
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  kver: string;
  /** Uncompressed ELF kernel, booted directly through its PVH entry point. */
  vmlinux: string;
  initramfs: string;
  /** Directory holding lib/modules/KVER (with modules.dep). */
  modulesRoot: string;
}

export interface PrepareOptions {
  cacheDir?: string;
  /** Progress lines ("did X", "reused Y"); defaults to stderr. */
  log?: (line: string) => void;
}

export function cacheDirFromEnv(): string {
  return process.env.ECRYPTFS_AGENT_VM_CACHE || DEFAULT_CACHE_DIR;
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'buffer', maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.toString().trim()}`);
  }
  return r.stdout.toString();
}

/**
 * Debian packages for the guest to install itself (dpkg -i in the guest's overlay), kept in
 * CACHE/debs: installing them on the host would change the host's PAM stacks, which every guest
 * shares. Downloaded once; returns the .deb paths, in the order of `pkgs`.
 */
export function guestDebs(pkgs: readonly string[], cacheDir = cacheDirFromEnv()): string[] {
  const debDir = join(cacheDir, 'debs');
  mkdirSync(debDir, { recursive: true });
  const find = (pkg: string): string | undefined => readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  const missing = pkgs.filter((p) => find(p) === undefined);
  // apt drops privileges to _apt for downloads; a root-owned cache dir is fine, apt falls back
  if (missing.length > 0) run('apt-get', ['download', '-q', ...missing], { cwd: debDir });
  return pkgs.map((p) => {
    const f = find(p);
    if (f === undefined) throw new Error(`apt-get download ${p} left no .deb in ${debDir}`);
    return join(debDir, f);
  });
}

/** The versioned kernel package that the linux-image-amd64 metapackage depends on. */
function kernelPackage(log: (l: string) => void): string {
  const query = (): string | undefined => {
    const r = spawnSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
    const m = /Depends:\s*(linux-image-\d\S*-amd64)\b/.exec(r.stdout ?? '');
    return m?.[1];
  };
  let pkg = query();
  if (!pkg) {
    // A fresh CI container has empty apt lists; apt-cache then knows nothing.
    log('apt-cache knows no linux-image-amd64: running apt-get update');
    run('apt-get', ['update', '-q']);
    pkg = query();
  }
  if (!pkg) throw new Error('apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package');
  return pkg;
}

/** Hash of everything that ends up in the guest-side files, so a changed script rebuilds. */
function contentHash(kver: string, busybox: Buffer): string {
  const h = createHash('sha256');
  h.update(`layout ${LAYOUT_VERSION}\n${kver}\n`);
  for (const [name, text] of Object.entries(guestFiles('/CACHE', kver))) h.update(`${name}\n${text}\n`);
  h.update(INITRAMFS_MODULES.join(','));
  h.update(busybox);
  return h.digest('hex').slice(0, 16);
}

/** Files under CACHE/KVER/guest, keyed by relative path. */
function guestFiles(cacheDir: string, kver: string): Record<string, string> {
  const guestDir = join(cacheDir, kver, 'guest');
  const files: Record<string, string> = {
    'stage2-fast.sh': stage2FastScript(join(cacheDir, kver, 'busybox')),
    'job-systemd.sh': jobSystemdScript(),
    masked: MASKED_UNITS.join('\n') + '\n',
    init: initScript(),
  };
  for (const [name, text] of Object.entries(systemdUnits(guestDir))) files[`units/${name}`] = text;
  return files;
}

/**
 * Finds the compressed payload of a bzImage via the x86 boot protocol header (payload_offset and
 * payload_length, boot protocol ≥ 2.08) and decompresses it into the ELF vmlinux. The kernel build
 * appends the uncompressed size (le32) after the compressed stream; it is checked against the result.
 */
export function extractVmlinux(bzImage: Buffer): Buffer {
  if (bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error('not a bzImage (no HdrS)');
  const version = bzImage.readUInt16LE(0x206);
  if (version < 0x208) throw new Error(`boot protocol ${version.toString(16)} has no payload fields`);
  const setupSects = bzImage[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(0x248);
  const length = bzImage.readUInt32LE(0x24c);
  const payload = bzImage.subarray(start, start + length);
  const expectedSize = payload.readUInt32LE(payload.length - 4);
  const stream = payload.subarray(0, payload.length - 4);
  const magic = stream.subarray(0, 6);
  let out: Buffer;
  if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    out = execFileSync('xz', ['-dc', '--single-stream'], { input: stream, maxBuffer: 1 << 30 });
  } else if (magic[0] === 0x1f && magic[1] === 0x8b) {
    out = gunzipSync(stream);
  } else if (magic.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
    out = execFileSync('zstd', ['-dc'], { input: stream, maxBuffer: 1 << 30 });
  } else {
    throw new Error(`unsupported kernel compression (magic ${magic.toString('hex')})`);
  }
  if (out.readUInt32BE(0) !== 0x7f454c46) throw new Error('decompressed kernel is not ELF');
  if (out.length !== expectedSize) {
    throw new Error(`decompressed kernel is ${out.length} bytes, the bzImage says ${expectedSize}`);
  }
  return out;
}

/** Module files (relative to lib/modules/KVER), dependencies first, each once. */
function moduleChain(rootDir: string, kver: string): string[] {
  const modDir = join(rootDir, 'lib/modules', kver);
  const seen = new Set<string>();
  const order: string[] = [];
  for (const mod of INITRAMFS_MODULES) {
    const out = run('modprobe', ['-d', rootDir, '-S', kver, '--show-depends', mod]);
    for (const line of out.split('\n')) {
      const m = /^insmod (\S+)/.exec(line.trim());
      if (!m) {
        if (line.startsWith('builtin ')) continue; // built into this kernel: nothing to load
        if (line.trim() !== '') throw new Error(`unexpected modprobe output for ${mod}: ${line}`);
        continue;
      }
      const rel = m[1].slice(modDir.length + 1);
      if (!seen.has(rel)) {
        seen.add(rel);
        order.push(rel);
      }
    }
  }
  return order;
}

function buildInitramfs(kdir: string, rootDir: string, kver: string, init: string, out: string): number {
  const stage = join(kdir, 'initramfs.d');
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'lower', 'upper', 'newroot']) {
    mkdirSync(join(stage, d), { recursive: true });
  }
  copyFileSync(HOST_BUSYBOX, join(stage, 'bin/busybox'));
  chmodSync(join(stage, 'bin/busybox'), 0o755);
  writeFileSync(join(stage, 'init'), init, { mode: 0o755 });
  // The kernel opens /dev/console for init before anything is mounted.
  run('mknod', ['-m', '600', join(stage, 'dev/console'), 'c', '5', '1']);
  const chain = moduleChain(rootDir, kver);
  const names: string[] = [];
  for (const rel of chain) {
    copyFileSync(join(rootDir, 'lib/modules', kver, rel), join(stage, 'modules', basename(rel)));
    names.push(basename(rel));
  }
  writeFileSync(join(stage, 'modules/order'), names.join('\n') + '\n');
  // Uncompressed newc: the kernel unpacks it faster than it would gunzip it under TCG.
  const list = run('find', ['.', '-mindepth', '1'], { cwd: stage }).split('\n').filter(Boolean).sort().join('\n') + '\n';
  const cpio = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet', '-R', '0:0'], {
    cwd: stage, input: list, maxBuffer: 1 << 30,
  });
  if (cpio.status !== 0) throw new Error(`cpio failed: ${cpio.stderr.toString()}`);
  writeFileSync(out + '.tmp', cpio.stdout);
  renameSync(out + '.tmp', out);
  rmSync(stage, { recursive: true, force: true });
  return names.length;
}

interface Stamp {
  kver: string;
  pkg: string;
  hash: string;
}

/** Prepares (or reuses) the cache; idempotent, fast when warm. */
export async function prepareVm(opts: PrepareOptions = {}): Promise<VmImage> {
  const cacheDir = opts.cacheDir ?? cacheDirFromEnv();
  const log = opts.log ?? ((l: string) => process.stderr.write(`[vm-prepare] ${l}\n`));
  const t0 = Date.now();

  const pkg = kernelPackage(log);
  const kver = pkg.replace(/^linux-image-/, '');
  const kdir = join(cacheDir, kver);
  const rootDir = join(kdir, 'root');
  const image: VmImage = {
    cacheDir, kver, vmlinux: join(kdir, 'vmlinux'), initramfs: join(kdir, 'initramfs.cpio'), modulesRoot: rootDir,
  };
  const busybox = readFileSync(HOST_BUSYBOX);
  const hash = contentHash(kver, busybox);
  const stampFile = join(kdir, 'stamp.json');
  if (existsSync(stampFile)) {
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8')) as Stamp;
    if (stamp.kver === kver && stamp.hash === hash && existsSync(image.vmlinux) && existsSync(image.initramfs)) {
      log(`cache warm: ${kdir} (kernel ${kver}, stamp ${hash}), nothing to do (${Date.now() - t0} ms)`);
      return image;
    }
    log(`stamp ${stamp.kver}/${stamp.hash} differs from ${kver}/${hash}: rebuilding the guest files`);
  }
  mkdirSync(kdir, { recursive: true });

  // 1. Kernel package → CACHE/KVER/root (never the host's /boot).
  const vmlinuz = join(rootDir, 'boot', `vmlinuz-${kver}`);
  const ecryptfsKo = join(rootDir, 'lib/modules', kver, 'kernel/fs/ecryptfs/ecryptfs.ko');
  if (!existsSync(vmlinuz) || !existsSync(ecryptfsKo)) {
    const [deb] = guestDebs([pkg], cacheDir); // the same cache of .debs the guests install from
    log(`dpkg-deb -x ${basename(deb as string)}`);
    rmSync(rootDir, { recursive: true, force: true });
    run('dpkg-deb', ['-x', deb as string, rootDir]);
    if (!existsSync(ecryptfsKo)) throw new Error(`${pkg} ships no ecryptfs.ko`);
  } else {
    log(`kernel tree present: ${rootDir}`);
  }

  // 2. modules.dep (the .deb's postinst would have run depmod).
  if (!existsSync(join(rootDir, 'lib/modules', kver, 'modules.dep.bin'))) {
    log(`depmod -b ${rootDir} ${kver}`);
    run('depmod', ['-b', rootDir, kver]);
  }

  // 3. vmlinux for PVH direct boot: saves the guest ~2.5 s of xz under TCG.
  if (!existsSync(image.vmlinux)) {
    const t = Date.now();
    const elf = extractVmlinux(readFileSync(vmlinuz));
    writeFileSync(image.vmlinux + '.tmp', elf);
    renameSync(image.vmlinux + '.tmp', image.vmlinux);
    log(`extracted ${image.vmlinux} (${(elf.length / 1048576).toFixed(1)} MiB, ${Date.now() - t} ms)`);
  }

  // 4. Guest scripts and units (read by the guest through 9p), busybox for fast-mode PID 1.
  const guestDir = join(kdir, 'guest');
  rmSync(guestDir, { recursive: true, force: true });
  const files = guestFiles(cacheDir, kver);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(guestDir, rel, '..'), { recursive: true });
    writeFileSync(join(guestDir, rel), text, { mode: 0o755 });
  }
  copyFileSync(HOST_BUSYBOX, join(kdir, 'busybox'));
  chmodSync(join(kdir, 'busybox'), 0o755);

  // 5. initramfs.
  const n = buildInitramfs(kdir, rootDir, kver, files.init, image.initramfs);
  log(`built ${image.initramfs} (busybox + ${n} modules)`);

  const stamp: Stamp = { kver, pkg, hash };
  writeFileSync(stampFile, JSON.stringify(stamp, null, 2) + '\n');
  log(`cache ready: ${kdir} (stamp ${hash}, ${Date.now() - t0} ms)`);
  return image;
}

/** CLI: prepares the cache and prints the image paths as JSON. */
export function cliMain(): void {
  prepareVm().then(
    (img) => process.stdout.write(JSON.stringify(img, null, 2) + '\n'),
    (err: unknown) => {
      process.stderr.write(`vm-prepare: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) cliMain();
