/**
 * Where secrets live. Pure code (formats, protocol, KDF) allocates every buffer that holds a
 * password, a mount passphrase or key material through allocSecret. By default that is
 * Buffer.alloc (tests, tools); a front-end that is about to read secrets calls
 * useLockedSecretMemory() once (credentials.hardenProcess does), and from then on each secret gets
 * pages of its own from the addon: locked in RAM (never swapped out), left out of core dumps, and
 * wiped and unmapped when it is collected. Callers still zero a secret as soon as it is used.
 */
import { native } from './native';

let allocator: (size: number) => Buffer = (size) => Buffer.alloc(size);

/** A zeroed buffer for a secret. */
export function allocSecret(size: number): Buffer {
  return allocator(size);
}

/** A copy of `src` in secret memory (the caller still zeroes `src` when it is a secret too). */
export function copySecret(src: Buffer): Buffer {
  const out = allocSecret(src.length);
  src.copy(out);
  return out;
}

/** From now on, secrets go to locked pages of their own (best effort: mlock may be refused). */
export function useLockedSecretMemory(): void {
  const n = native();
  allocator = (size) => n.secretBuffer(size);
}
