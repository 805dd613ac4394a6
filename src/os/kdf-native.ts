/**
 * The eCryptfs KDF's hot loop (65536 × SHA-512) in the native addon: ~3× faster than Node's
 * crypto per round (npm run bench: bench/kdf.ts), and every login pays it three times (wrapping
 * key, FEK, FNEK). src/formats/kdf.ts keeps the JavaScript loop as the reference and the fallback.
 */
import { setKdfImplementation } from '../formats/kdf';
import { native } from './native';

/** Plugs the native loop in; returns false (JS loop stays) when the addon cannot be loaded. */
export function useNativeKdf(): boolean {
  try {
    const n = native();
    setKdfImplementation((first, rounds) => n.sha512Iterate(first, rounds));
    return true;
  } catch {
    return false;
  }
}
