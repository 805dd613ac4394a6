/**
 * Where secrets live. Pure code (formats, protocol, KDF) allocates every buffer that holds a
 * password, a mount passphrase or key material through allocSecret. By default that is
 * Buffer.alloc (tests, tools); a front-end that is about to read secrets calls
 * os/credentials.hardenProcess once, which hands this module the addon's allocator: from then on
 * each secret gets pages of its own: locked in RAM (never swapped out), left out of core dumps, and
 * wiped and unmapped when it is collected. Callers still zero a secret as soon as it is used.
 */
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

/** From now on, secrets come from `alloc` (os/credentials.hardenProcess: locked pages of their own). */
export function setSecretAllocator(alloc: (size: number) => Buffer): void {
  allocator = alloc;
}
