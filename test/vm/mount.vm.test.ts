/**
 * `ecryptfs-agent mount` / `umount` (mounting any directory, as root) on Debian's kernel (eCryptfs
 * module) in one fast-mode boot: every cipher × key size the kernel offers mounts and round-trips
 * a file (and the file's header names that cipher); interop with the reference `mount -t
 * ecryptfs` both ways (aes and blowfish, filename encryption); the sig-cache warning for a new
 * sig and not after recording (ours and the reference's); the interactive dialog through a pty;
 * two mounts sharing one key; `keys` / `forget [--force]` with a mount using the key;
 * `umount --force` on a busy mount; `add-passphrase --fnek` keys used by `mount -i` and by ours;
 * passthrough; bad input changes nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChecksInVm } from './checks';

const REPO = join(__dirname, '..', '..', '..');

/** Checks the script runs in loops: one per cipher × key size (the suite asserts the kernel offers these 12), two interop rounds. */
const CIPHER_KEY_SIZES = 12;
const INTEROP_ROUNDS = 2;

test('mount/umount: ciphers, interop with mount -t ecryptfs, sig cache, shared keys, keys/forget, --force, add-passphrase --fnek, bad input', { timeout: 20 * 60_000 }, async (t) => {
  const body = readFileSync(join(REPO, 'test', 'vm', 'scripts', 'mount-suite.sh'), 'utf8');
  const lines = body.split('\n');
  const plain = lines.filter((l) => /^\s*check [a-z]\.[a-z0-9.-]+ /.test(l)).length;
  const interop = lines.filter((l) => /^\s*check i\.\$c-[a-z-]+ /.test(l)).length;
  await runChecksInVm(t, {
    script: `REPO='${REPO}'\n${body}`,
    mode: 'fast',
    timeoutMs: 18 * 60_000,
    expectedChecks: plain + interop * INTEROP_ROUNDS + CIPHER_KEY_SIZES,
  });
});
