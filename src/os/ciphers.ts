/**
 * The ciphers `ecryptfs-agent mount` offers, and what the kernel says of them.
 *
 * The catalogue is mount.ecryptfs's (ecryptfs-utils 111, libecryptfs/module_mgr.c): its
 * cipher_descriptors table (the six block ciphers eCryptfs has OpenPGP codes for, in its menu
 * order, with the blocksize/keysize line it prints) and its supported_key_bytes table (key sizes
 * per cipher, in its menu order). 111 prints that list whatever the kernel has; we offer a cipher
 * only when the kernel has it (/proc/crypto, "type : cipher") or can load it (`modprobe
 * crypto-NAME`, the alias the crypto API itself asks for), and a key size only within the
 * kernel's min..max keysize for it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AgentError } from '../errors';
import { native } from './native';

export interface CipherDescriptor {
  name: string;
  blocksize: number;
  minKeysize: number;
  maxKeysize: number;
  /** key sizes mount.ecryptfs offers for it, in its order (the first is its suggestion) */
  keyBytes: readonly number[];
}

export const CIPHERS: readonly CipherDescriptor[] = [
  { name: 'aes', blocksize: 16, minKeysize: 16, maxKeysize: 32, keyBytes: [16, 32, 24] },
  { name: 'blowfish', blocksize: 8, minKeysize: 16, maxKeysize: 56, keyBytes: [16, 32, 56] },
  { name: 'des3_ede', blocksize: 8, minKeysize: 24, maxKeysize: 24, keyBytes: [24] },
  { name: 'twofish', blocksize: 16, minKeysize: 16, maxKeysize: 32, keyBytes: [16, 32] },
  { name: 'cast6', blocksize: 16, minKeysize: 16, maxKeysize: 32, keyBytes: [16, 32] },
  { name: 'cast5', blocksize: 8, minKeysize: 5, maxKeysize: 16, keyBytes: [16] },
];

/** The menu line mount.ecryptfs prints for a cipher. */
export function describeCipher(c: CipherDescriptor): string {
  return `${c.name}: blocksize = ${c.blocksize}; min keysize = ${c.minKeysize}; max keysize = ${c.maxKeysize}`;
}

export function cipherByName(name: string): CipherDescriptor {
  const c = CIPHERS.find((d) => d.name === name);
  if (c === undefined) {
    throw new AgentError('BAD_CIPHER', `unknown cipher "${name.slice(0, 40)}": choose one of ${CIPHERS.map((d) => d.name).join(', ')}`);
  }
  return c;
}

/** `n` must be one of `offered` (the catalogue's sizes for the cipher, or those the kernel allows of them). */
export function checkKeyBytes(c: CipherDescriptor, n: number, offered: readonly number[] = c.keyBytes): number {
  if (!offered.includes(n)) {
    const list = offered.length === 1 ? `${offered[0]}` : `${offered.slice(0, -1).join(', ')} or ${offered[offered.length - 1]}`;
    throw new AgentError('BAD_CIPHER', `${Number.isFinite(n) ? n : 'that'} key bytes are not valid for ${c.name}: use ${list}`);
  }
  return n;
}

// ------------------------------------------------------------------ /proc/crypto

export interface ProcCryptoEntry {
  name: string;
  driver: string;
  module: string;
  /** "cipher" for a single-block cipher, "skcipher", "shash", … */
  type: string;
  blocksize?: number;
  minKeysize?: number;
  maxKeysize?: number;
}

/** /proc/crypto: blank-line separated records of "key : value" lines. Records without name or type are skipped. */
export function parseProcCrypto(text: string): ProcCryptoEntry[] {
  const out: ProcCryptoEntry[] = [];
  for (const record of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of record.split('\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const name = fields.get('name');
    const type = fields.get('type');
    if (!name || !type) continue;
    const entry: ProcCryptoEntry = { name, type, driver: fields.get('driver') ?? '', module: fields.get('module') ?? '' };
    const num = (key: string): number | undefined => {
      const v = fields.get(key);
      return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
    };
    const blocksize = num('blocksize');
    const minKeysize = num('min keysize');
    const maxKeysize = num('max keysize');
    if (blocksize !== undefined) entry.blocksize = blocksize;
    if (minKeysize !== undefined) entry.minKeysize = minKeysize;
    if (maxKeysize !== undefined) entry.maxKeysize = maxKeysize;
    out.push(entry);
  }
  return out;
}

export interface KernelCipher {
  name: string;
  minKeysize: number;
  maxKeysize: number;
  drivers: string[];
}

/**
 * The single-block cipher `name` as /proc/crypto lists it (eCryptfs builds "ecb(NAME)" and
 * "cbc(NAME)" from it), or undefined. With several drivers (generic, asm…) the key range is
 * the one every driver accepts.
 */
export function findKernelCipher(entries: ProcCryptoEntry[], name: string): KernelCipher | undefined {
  const drivers = entries.filter((e) => e.name === name && e.type === 'cipher' && e.minKeysize !== undefined && e.maxKeysize !== undefined);
  if (drivers.length === 0) return undefined;
  return {
    name,
    minKeysize: Math.max(...drivers.map((d) => d.minKeysize as number)),
    maxKeysize: Math.min(...drivers.map((d) => d.maxKeysize as number)),
    drivers: drivers.map((d) => d.driver),
  };
}

/** The catalogue's key sizes for `c` that the kernel's implementation accepts, in the catalogue's order. */
export function keyBytesOffered(c: CipherDescriptor, k: KernelCipher): number[] {
  return c.keyBytes.filter((n) => n >= k.minKeysize && n <= k.maxKeysize);
}

// ------------------------------------------------------------------ the running kernel (edge)

export interface KernelCiphers {
  /** Catalogue ciphers the kernel has or can load, in catalogue order. */
  available(): CipherDescriptor[];
  /** Makes sure the kernel has the cipher (loading its module when needed); CIPHER_UNAVAILABLE otherwise. */
  load(name: string): KernelCipher;
}

const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

function runModprobe(args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('modprobe', args, { env: { PATH: SYSTEM_PATH }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  const output = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.trim();
  return { ok: r.status === 0, output: r.error ? r.error.message : output };
}

function readProcCrypto(path: string): ProcCryptoEntry[] {
  try {
    return parseProcCrypto(readFileSync(path, 'utf8'));
  } catch {
    return []; // no /proc: nothing is known to be there
  }
}

/**
 * The kernel's ciphers: /proc/crypto, and `modprobe crypto-NAME` for one that is not loaded yet
 * (a dry run `-n` to list it, a real load once it is chosen — the kernel would load it at mount
 * time anyway, but we need its key range before that). Names come from the catalogue only.
 */
export function systemKernelCiphers(procCrypto = '/proc/crypto'): KernelCiphers {
  return {
    available() {
      const entries = readProcCrypto(procCrypto);
      return CIPHERS.filter((c) => findKernelCipher(entries, c.name) !== undefined || runModprobe(['-n', '-q', `crypto-${c.name}`]).ok);
    },
    load(name) {
      const c = cipherByName(name);
      const present = findKernelCipher(readProcCrypto(procCrypto), c.name);
      if (present !== undefined) return present;
      const r = runModprobe(['-q', `crypto-${c.name}`]);
      const loaded = findKernelCipher(readProcCrypto(procCrypto), c.name);
      if (loaded === undefined) {
        throw new AgentError('CIPHER_UNAVAILABLE', `this kernel does not offer the ${c.name} cipher (not in /proc/crypto; modprobe crypto-${c.name} ${r.ok ? 'loaded nothing' : `failed${r.output ? `: ${r.output}` : ''}`})`, {
          hint: `Choose a cipher this kernel offers (${this.available().map((d) => d.name).join(', ') || 'none found'}), or install the kernel modules for ${c.name}`,
        });
      }
      return loaded;
    },
  };
}

// ------------------------------------------------------------------ OpenSSL's ciphers (edge)

let legacyLoaded: boolean | undefined;

/**
 * Loads OpenSSL's legacy provider into Node's crypto (once), for the eCryptfs ciphers only it
 * has: blowfish and cast5. False when this OpenSSL has no legacy module (those ciphers then fail
 * with a typed CIPHER_UNAVAILABLE where they are used).
 */
export function enableOpensslLegacyCiphers(): boolean {
  if (legacyLoaded === undefined) {
    try {
      legacyLoaded = native().loadOpensslProvider('legacy');
    } catch {
      legacyLoaded = false;
    }
  }
  return legacyLoaded;
}
