/**
 * Fuzzing of every parser that reads bytes a user (or anything else) can make hostile: the
 * wrapped-passphrase file, the per-user config files, the shim → agent request and
 * /proc/PID/mountinfo. Two sources of input:
 * fast-check arbitraries (structured and raw) and deterministic mutations (bit/byte flips,
 * truncation, extension, splicing of "interesting" tokens) of valid seeds. The contract: a parser
 * returns a well-formed value or throws an AgentError whose code is one of the expected ones;
 * never a TypeError/RangeError, never a hang. Round-trip properties check that valid input is
 * not misread. The total number of inputs is counted and asserted (≥ 100,000).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAliasConf, parseEcryptfsrcSalt, parsePrivateMnt, parsePrivateSig } from '../../src/formats/config';
import { AgentError, type ErrorCode } from '../../src/errors';
import { getKdfImplementation, setKdfImplementation } from '../../src/formats/kdf';
import { useNativeKdf } from '../../src/os/kdf-native';
import { parseMountInfo, unescapeMountField } from '../../src/formats/mountinfo';
import { MAX_PAM_PID, MAX_REQUEST_BYTES, parseRequest, renderRequest, type AgentRequest, type Phase } from '../../src/formats/protocol';
import { parseWrapped, unwrapPassphrase, wrapPassphrase, wrapPassphraseV1 } from '../../src/formats/wrapped-passphrase';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseEcryptfsHeader, parseLowerFileHeader } from '../../src/formats/lower-format';
import { unwrapFileKey } from '../../src/formats/ecryptfs-file';
import { decryptName, parseEncryptedName } from '../../src/formats/ecryptfs-name';
import { enableOpensslLegacyCiphers } from '../../src/os/ciphers';
import { WRITER_CIPHERS, writeLowerFile, writeLowerName } from '../helpers/ecryptfs-writer';

/**
 * fast-check 4's typings import `pure-rand/types/…` subpath exports, which this repo's
 * `moduleResolution: node10` cannot resolve (tsc fails on node_modules/fast-check/lib/fast-check.d.ts).
 * So the library is loaded with require() and typed here with the few combinators used.
 */
interface Arb<T> {
  map<U>(f: (t: T) => U): Arb<U>;
  filter(p: (t: T) => boolean): Arb<T>;
}
interface FastCheck {
  assert(property: unknown, opts?: { numRuns?: number; seed?: number }): void;
  property<A>(a: Arb<A>, f: (a: A) => void): unknown;
  property<A, B>(a: Arb<A>, b: Arb<B>, f: (a: A, b: B) => void): unknown;
  sample<T>(a: Arb<T>, opts: { numRuns: number; seed: number }): T[];
  uint8Array(o: { maxLength?: number }): Arb<Uint8Array>;
  string(o: { unit: 'binary'; minLength?: number; maxLength?: number }): Arb<string>;
  stringMatching(r: RegExp): Arb<string>;
  constant<T>(v: T): Arb<T>;
  constantFrom<T>(...v: T[]): Arb<T>;
  oneof<T>(...a: Arb<T>[]): Arb<T>;
  tuple<T extends unknown[]>(...a: { [K in keyof T]: Arb<T[K]> }): Arb<T>;
  record<T>(r: { [K in keyof T]: Arb<T[K]> }): Arb<T>;
  array<T>(a: Arb<T>, o?: { minLength?: number; maxLength?: number }): Arb<T[]>;
  option<T, N>(a: Arb<T>, o: { nil: N }): Arb<T | N>;
  boolean(): Arb<boolean>;
  integer(o: { min: number; max: number }): Arb<number>;
  nat(max: number): Arb<number>;
}
const fc = require('fast-check') as FastCheck;

const SEED = 0x9e3779b9;
const RUNS = 8000; // fast-check runs per generated property
const MUTANTS = 8000; // mutated inputs per parser
const counts = new Map<string, number>();
const count = (name: string, n = 1): void => void counts.set(name, (counts.get(name) ?? 0) + n);

/** Calls fn; an exception must be an AgentError with one of `codes`. Returns the value or undefined. */
function typed<T>(what: string, codes: readonly ErrorCode[], fn: () => T): T | undefined {
  count(what);
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof AgentError)) {
      throw new Error(`${what}: untyped ${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`);
    }
    if (!codes.includes(e.code)) throw new Error(`${what}: unexpected code ${e.code}: ${e.message}`);
    return undefined;
  }
}

// --- deterministic mutator (xorshift32) ------------------------------------------------------
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
const TOKENS = [
  '\n', '\0', '=', ':', ' ', '\t', '\r\n', '\\', '\\040', '\\134', '\\12', '-', ' - ', '/', '..', '/../', '\xff', '\xc3', '\xe2\x82',
  'end\n', 'secret authtok 512\n', 'secret authtok 9999\n', 'secret oldauthtok 0\n', 'pam_pid=0\n', 'phase=auth\n', 'user=\n',
  'session=../../x\n', 'ecryptfs', 'salt=', '#', ':\x02', ':\x03', '0123456789abcdef', 'ABCDEF0123456789', 'zz',
].map((t) => Buffer.from(t, 'latin1'));

function mutate(seed: Buffer, next: () => number): Buffer {
  let b = Buffer.from(seed);
  const ops = 1 + (next() % 4);
  for (let i = 0; i < ops; i++) {
    const at = b.length === 0 ? 0 : next() % (b.length + 1);
    switch (next() % 9) {
      case 0: // bit flip
        if (b.length) b[at % b.length] = (b[at % b.length] as number) ^ (1 << (next() % 8));
        break;
      case 1: // random byte
        if (b.length) b[at % b.length] = next() & 0xff;
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: // extend with random bytes
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + (next() % 40) }, () => next() & 0xff))]);
        break;
      case 4: // insert a token
        b = Buffer.concat([b.subarray(0, at), TOKENS[next() % TOKENS.length] as Buffer, b.subarray(at)]);
        break;
      case 5: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (next() % 8))]);
        break;
      case 6: // duplicate a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + (next() % 32)), b.subarray(at)]);
        break;
      case 7: // huge extension (size limits)
        if (next() % 16 === 0) b = Buffer.concat([b, Buffer.alloc(4096 + (next() % 200), 0x41)]);
        break;
      default: // replace with a token
        if (b.length) {
          const t = TOKENS[next() % TOKENS.length] as Buffer;
          b = Buffer.concat([b.subarray(0, at), t, b.subarray(Math.min(b.length, at + t.length))]);
        }
    }
  }
  return b;
}

function mutants(seeds: Buffer[], n: number, salt: number, check: (b: Buffer) => void): void {
  const next = rng(SEED ^ salt);
  for (let i = 0; i < n; i++) check(mutate(seeds[i % seeds.length] as Buffer, next));
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
/** Strings that survive a UTF-8 round trip (no lone surrogates). */
const text = (o: { minLength?: number; maxLength?: number } = {}) =>
  fc.string({ unit: 'binary', ...o }).filter((s) => Buffer.from(s, 'utf8').toString('utf8') === s);

// --- wrapped-passphrase --------------------------------------------------------------------
describe('wrapped-passphrase parser', () => {
  const WRAP_CODES: ErrorCode[] = ['CORRUPT_FILE', 'UNSUPPORTED_VERSION'];
  const UNWRAP_CODES: ErrorCode[] = [...WRAP_CODES, 'WRONG_PASSWORD', 'PASSPHRASE_EMPTY', 'PASSPHRASE_TOO_LONG', 'PASSPHRASE_NUL'];
  const before = getKdfImplementation();
  useNativeKdf(); // falls back to the JS loop without the addon; unwrap costs one KDF either way
  const PW = Buffer.from('wrapping pw');
  const salt = Buffer.from('a1b2c3d4e5f60718', 'hex');
  const seeds = [
    wrapPassphrase(Buffer.from('0123456789abcdef0123456789abcdef'), PW, salt),
    wrapPassphrase(Buffer.from('x'.repeat(64)), PW, salt),
    wrapPassphrase(Buffer.from('é'), PW, salt),
    wrapPassphraseV1(Buffer.from('mount passphrase 1'), PW),
  ];
  setKdfImplementation(before);

  const checkParsed = (b: Buffer): void => {
    const w = typed('parseWrapped', WRAP_CODES, () => parseWrapped(b));
    if (!w) return;
    assert.match(w.sig, /^[0-9a-fA-F]{16}$/);
    assert.ok(w.ciphertext.length >= 16 && w.ciphertext.length <= 64 && w.ciphertext.length % 16 === 0);
    if (w.version === 2) assert.equal(w.salt?.length, 8);
    else assert.equal(w.salt, undefined);
  };

  test('parseWrapped: raw bytes, v2-shaped and v1-shaped arbitraries', () => {
    fc.assert(fc.property(bytes(120), (b) => checkParsed(b)), { numRuns: RUNS, seed: SEED });
    const v2 = fc
      .tuple(fc.constantFrom(0, 1, 2, 3, 255), bytes(8), fc.stringMatching(/^[0-9a-fA-Fg:]{14,17}$/), bytes(90))
      .map(([v, s, sig, ct]) => Buffer.concat([Buffer.from([0x3a, v]), s, Buffer.from(sig, 'latin1'), ct]));
    fc.assert(fc.property(v2, (b) => checkParsed(b)), { numRuns: RUNS, seed: SEED + 1 });
    const v1 = fc
      .tuple(fc.stringMatching(/^[0-9a-fA-F]{16}$/), fc.integer({ min: 0, max: 6 }), bytes(16))
      .map(([sig, blocks, tail]) => Buffer.concat([Buffer.from(sig), Buffer.alloc(blocks * 16, 7), tail.subarray(0, blocks % 2 ? 0 : tail.length)]));
    fc.assert(fc.property(v1, (b) => checkParsed(b)), { numRuns: RUNS, seed: SEED + 2 });
  });

  test('parseWrapped: mutations of valid v1/v2 files', () => {
    mutants(seeds, MUTANTS * 2, 1, checkParsed);
  });

  test('unwrapPassphrase: a few hundred mutated files and passwords (each is one KDF)', () => {
    useNativeKdf();
    try {
      let kdfs = 0;
      let unwrapped = 0;
      const next = rng(SEED ^ 77);
      const passwords = [PW, Buffer.alloc(0), Buffer.alloc(65, 0x61), Buffer.from('a\0b'), Buffer.from('wrapping pw\n'), Buffer.from('Wrapping pw')];
      for (let i = 0; kdfs < 200 && i < 5000; i++) {
        const seed = seeds[i % seeds.length] as Buffer;
        // a third keep the file intact, the rest are mutated (mostly beyond the header, so the KDF runs)
        const file = i % 3 === 0 ? seed : mutate(seed, next);
        const pw = passwords[next() % passwords.length] as Buffer;
        const parses = (() => {
          try {
            parseWrapped(file);
            return pw.length > 0 && pw.length <= 64 && !pw.includes(0);
          } catch {
            return false;
          }
        })();
        if (parses) kdfs++;
        const out = typed('unwrapPassphrase', UNWRAP_CODES, () => unwrapPassphrase(file, pw));
        if (out) {
          unwrapped++;
          assert.ok(out.length >= 1 && out.length <= 64 && !out.includes(0), 'a C string of 1..64 bytes');
          if (file === seed && seed !== seeds[3]) assert.ok(pw.equals(PW));
        }
      }
      assert.ok(kdfs >= 200, `only ${kdfs} inputs reached the KDF`);
      assert.ok(unwrapped > 0, 'some inputs unwrap (no MAC: flipped ciphertext gives garbage, not an error)');
    } finally {
      setKdfImplementation(before);
    }
  });
});

// --- config files --------------------------------------------------------------------------
describe('config parsers', () => {
  const sigCheck = (b: Buffer): void => {
    const s = typed('parsePrivateSig', ['BAD_SIG', 'BAD_CONFIG'], () => parsePrivateSig(b));
    if (!s) return;
    assert.match(s.fekSig, /^[0-9a-fA-F]{16}$/);
    if (s.fnekSig !== undefined) assert.match(s.fnekSig, /^[0-9a-fA-F]{16}$/);
    assert.ok(b.length <= 4096);
  };
  const mntCheck = (b: Buffer): void => {
    const m = typed('parsePrivateMnt', ['BAD_CONFIG'], () => parsePrivateMnt(b, '/home/alice'));
    if (m === undefined) return;
    assert.ok(m.startsWith('/'), m);
    assert.doesNotMatch(m, /[\x00-\x1f\x7f]/);
  };
  const rcCheck = (b: Buffer): void => {
    const s = typed('parseEcryptfsrcSalt', ['BAD_CONFIG'], () => parseEcryptfsrcSalt(b));
    if (s !== undefined) assert.equal(s.length, 8);
  };
  const aliasCheck = (b: Buffer): void => {
    const a = typed('parseAliasConf', ['BAD_CONFIG'], () => parseAliasConf(b));
    if (!a) return;
    for (const p of [a.lower, a.upper]) {
      assert.ok(p.startsWith('/'), p);
      assert.doesNotMatch(p, /[\x00-\x1f\x7f]/);
    }
  };
  const HEX = fc.stringMatching(/^[0-9a-fA-F]{0,18}$/);
  const WS = fc.constantFrom('', ' ', '\t', '\r', '  x', '\v', '\xa0');

  test('Private.sig: generated and mutated', () => {
    const gen = fc.oneof(
      bytes(80),
      fc.array(fc.tuple(HEX, WS), { maxLength: 4 }).map((ls) => Buffer.from(ls.map(([h, w]) => h + w).join('\n'), 'latin1')),
    );
    fc.assert(fc.property(gen, sigCheck), { numRuns: RUNS, seed: SEED + 3 });
    // valid two-line files keep their sigs exactly (case kept)
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-fA-F]{16}$/), fc.stringMatching(/^[0-9a-fA-F]{16}$/), (a, b) => {
        count('parsePrivateSig');
        assert.deepEqual(parsePrivateSig(Buffer.from(`${a}\n${b}\n`)), { fekSig: a, fnekSig: b });
      }),
      { numRuns: 500, seed: SEED + 4 },
    );
    mutants([Buffer.from('0123456789abcdef\n'), Buffer.from('0123456789abcdef\nfedcba9876543210\n'), Buffer.from('ABCDEF0123456789\r\n\n')], MUTANTS, 3, sigCheck);
  });

  test('Private.mnt: generated and mutated', () => {
    fc.assert(fc.property(fc.oneof(bytes(120), text({ maxLength: 60 }).map((s) => Buffer.from('/' + s))), mntCheck), { numRuns: RUNS, seed: SEED + 5 });
    // absent file → $HOME/Private; a clean absolute first line is returned verbatim
    fc.assert(
      fc.property(text({ minLength: 1, maxLength: 40 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s)), (s) => {
        count('parsePrivateMnt');
        assert.equal(parsePrivateMnt(Buffer.from(`/${s}\nsecond line`), '/h'), `/${s}`);
      }),
      { numRuns: 500, seed: SEED + 6 },
    );
    mutants([Buffer.from('/home/alice/Private\n'), Buffer.from('/home/ålice/Prívate'), Buffer.from('/x\n/y\n')], MUTANTS, 5, mntCheck);
  });

  test('.ecryptfsrc salt: generated and mutated', () => {
    const line = fc.oneof(
      fc.stringMatching(/^ *salt *= *[0-9a-fA-Fx]{14,18} *$/),
      fc.constantFrom('# salt=zz', '', 'key=value', 'salt', '=salt', 'salt=', ' \t'),
      text({ maxLength: 30 }),
    );
    fc.assert(fc.property(fc.oneof(bytes(100), fc.array(line, { maxLength: 5 }).map((ls) => Buffer.from(ls.join('\n')))), rcCheck), { numRuns: RUNS, seed: SEED + 7 });
    mutants([Buffer.from('salt=0011223344556677\n'), Buffer.from('# c\nx=1\r\nsalt = AABBCCDDEEFF0011\n')], MUTANTS, 7, rcCheck);
  });

  test('alias.conf: generated and mutated', () => {
    const field = fc.oneof(text({ maxLength: 20 }), fc.constantFrom('/a', '/a\\040b', '/x\\012y', '\\134', 'ecryptfs', 'none', 'rw'));
    const gen = fc.oneof(bytes(100), fc.array(field, { maxLength: 6 }).map((fs) => Buffer.from(fs.join(' ') + '\n')));
    fc.assert(fc.property(gen, aliasCheck), { numRuns: RUNS, seed: SEED + 8 });
    mutants([Buffer.from('/home/a/.Private /home/a/Private ecryptfs\n'), Buffer.from('# c\n\n/s\\040x /d\\011y ecryptfs none\n')], MUTANTS, 8, aliasCheck);
  });
});

// --- protocol request ----------------------------------------------------------------------
describe('protocol request parser', () => {
  const PHASES: Phase[] = ['auth', 'open_session', 'close_session', 'chauthtok'];
  const field = text({ maxLength: 40 }).filter((s) => !s.includes('\n') && !s.includes('\0'));
  const request: Arb<AgentRequest> = fc
    .record({
      phase: fc.constantFrom(...PHASES),
      user: field.filter((s) => s !== ''),
      service: field,
      tty: field,
      rhost: field,
      ruser: field,
      pamPid: fc.integer({ min: 1, max: MAX_PAM_PID }),
      session: fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)),
      unwrap: fc.boolean(),
      debug: fc.boolean(),
      silent: fc.boolean(),
      authtok: fc.option(bytes(512), { nil: undefined }),
      oldauthtok: fc.option(bytes(512), { nil: undefined }),
    })
    .map((r) => {
      const out: AgentRequest = { ...r };
      if (r.authtok === undefined) delete out.authtok;
      if (r.oldauthtok === undefined) delete out.oldauthtok;
      return out;
    });
  const check = (b: Buffer): void => {
    const r = typed('parseRequest', ['USAGE'], () => parseRequest(b));
    if (!r) return;
    assert.ok(PHASES.includes(r.phase));
    assert.ok(r.user !== '' && !r.user.includes('\n'));
    assert.ok(Number.isSafeInteger(r.pamPid) && r.pamPid > 0);
    assert.ok(r.session === '' || /^[A-Za-z0-9_-]{1,64}$/.test(r.session));
    assert.ok((r.authtok?.length ?? 0) <= 512 && (r.oldauthtok?.length ?? 0) <= 512);
    // what was parsed renders and parses to the same thing
    assert.deepEqual(parseRequest(renderRequest(r)), r);
  };

  test('valid requests round-trip exactly (secrets byte for byte)', () => {
    fc.assert(
      fc.property(request, (r) => {
        count('parseRequest');
        assert.deepEqual(parseRequest(renderRequest(r)), r);
      }),
      { numRuns: RUNS, seed: SEED + 9 },
    );
  });

  test('raw bytes and line soups', () => {
    const line = fc.oneof(
      fc.stringMatching(/^[a-z_]{1,10}=[ -~]{0,12}$/),
      fc.constantFrom('phase=auth', 'phase=open_session', 'user=u', 'pam_pid=1', 'pam_pid=-0', 'pam_pid=1e3', 'end', 'secret authtok 3', 'secret x 0', 'session=a', 'ECRYPTFS-AGENT 1'),
      text({ maxLength: 12 }),
    );
    const soup = fc.array(line, { maxLength: 12 }).map((ls) => Buffer.from(['ECRYPTFS-AGENT 1', ...ls, ''].join('\n')));
    fc.assert(fc.property(fc.oneof(bytes(200), soup), check), { numRuns: RUNS, seed: SEED + 10 });
    // over the size limit: refused before anything else
    count('parseRequest');
    assert.throws(() => parseRequest(Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x0a)), (e) => e instanceof AgentError && e.code === 'USAGE');
  });

  test('mutations of valid requests', () => {
    const seeds = fc.sample(request, { numRuns: 40, seed: SEED + 11 }).map((r) => renderRequest(r));
    mutants(seeds, MUTANTS * 2, 11, check);
  });
});

// --- mountinfo -----------------------------------------------------------------------------
describe('mountinfo parser', () => {
  /** The kernel's mangle(): space, tab, newline and backslash as \ooo. */
  const esc = (s: string): string => s.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
  const path = text({ maxLength: 30 }).map((s) => '/' + s.replace(/\0/g, ''));
  const entry = fc.record({
    id: fc.nat(100000),
    parent: fc.nat(100000),
    major: fc.nat(4095),
    minor: fc.nat(1 << 20),
    root: path,
    mp: path,
    opts: fc.constantFrom('rw,relatime', 'ro,nosuid,nodev'),
    optional: fc.array(fc.constantFrom('shared:1', 'master:7', 'propagate_from:2', 'unbindable'), { maxLength: 3 }),
    fstype: fc.constantFrom('ext4', 'ecryptfs', 'fuse.sshfs', 'tmpfs'),
    source: path,
    superOpts: fc.constantFrom('rw', 'rw,ecryptfs_sig=0123456789abcdef,ecryptfs_cipher=aes', 'rw,errors=remount-ro'),
  });
  type Entry = typeof entry extends Arb<infer T> ? T : never;
  const render = (e: Entry): string =>
    [e.id, e.parent, `${e.major}:${e.minor}`, esc(e.root), esc(e.mp), e.opts, ...e.optional, '-', e.fstype, esc(e.source), e.superOpts].join(' ');
  const check = (s: string): void => {
    const out = typed('parseMountInfo', ['IO'], () => parseMountInfo(s));
    if (!out) return;
    for (const m of out) {
      assert.ok(Number.isInteger(m.mountId) && Number.isInteger(m.major));
      assert.equal(typeof m.mountPoint, 'string');
      assert.equal(typeof m.fsType, 'string');
    }
  };

  test('kernel-escaped entries parse back to the same paths', () => {
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 5 }), (es) => {
        count('parseMountInfo');
        const parsed = parseMountInfo(es.map(render).join('\n') + '\n');
        assert.equal(parsed.length, es.length);
        es.forEach((e, i) => {
          const p = parsed[i]!;
          assert.deepEqual(
            [p.mountId, p.parentId, p.major, p.minor, p.root, p.mountPoint, p.fsType, p.source, p.superOptions, p.optionalFields],
            [e.id, e.parent, e.major, e.minor, e.root, e.mp, e.fstype, e.source, e.superOpts, e.optional],
          );
        });
      }),
      { numRuns: RUNS / 2, seed: SEED + 12 },
    );
    fc.assert(
      fc.property(text({ maxLength: 30 }), (s) => {
        count('unescapeMountField');
        assert.equal(unescapeMountField(esc(s)), s);
      }),
      { numRuns: RUNS / 2, seed: SEED + 13 },
    );
  });

  test('raw text and mutations of real lines', () => {
    fc.assert(fc.property(fc.oneof(text({ maxLength: 200 }), bytes(200).map((b) => b.toString('utf8'))), check), { numRuns: RUNS, seed: SEED + 14 });
    const seeds = [
      '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '120 25 0:52 / /home/alice/Private rw,nosuid,nodev,relatime shared:70 - ecryptfs /home/alice/.Private rw,ecryptfs_fnek_sig=fedcba9876543210,ecryptfs_sig=0123456789abcdef,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlinks_sigs',
      '24 1 8:1 / / rw - ext4 /dev/sda1 rw\n25 24 0:5 /a\\040b /mnt/x\\011y rw - tmpfs none rw\n',
    ].map((s) => Buffer.from(s));
    mutants(seeds, MUTANTS, 14, (b) => check(b.toString('utf8')));
  });
});

// --- eCryptfs lower files: header and key packets, encrypted names ----------------------
describe('eCryptfs header and name parsers', () => {
  const FILE_CODES: ErrorCode[] = ['CORRUPT_FILE', 'CIPHER_UNAVAILABLE'];
  const NAME_CODES: ErrorCode[] = ['CORRUPT_FILE', 'CIPHER_UNAVAILABLE', 'WRONG_MOUNT_PASSPHRASE'];
  const fixtures = ['fnek', 'plain'].map(
    (n) => JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'recovery', `lower-${n}.json`), 'utf8')) as { entries: Array<{ path: string; gzipBase64?: string }> },
  );
  const files = fixtures.flatMap((f) => f.entries.filter((e) => e.gzipBase64 !== undefined));
  const sek = Buffer.alloc(64, 0x5a);
  enableOpensslLegacyCiphers();
  // the kernel's own first pages (cut after the key packets: the rest is zeros), and the writer's for every cipher
  const headerSeeds = [
    ...files.map((e) => gunzipSync(Buffer.from(e.gzipBase64 as string, 'base64')).subarray(0, 160)),
    ...WRITER_CIPHERS.map((c) => writeLowerFile(Buffer.from('x'), c, sek, '0011223344556677').header),
  ];
  const nameSeeds = [
    ...fixtures.flatMap((f) => f.entries.flatMap((e) => e.path.split('/'))),
    ...WRITER_CIPHERS.map((c, i) => writeLowerName(Buffer.from('n'.repeat(1 + i * 17)), c, sek, '8899aabbccddeeff')),
  ];
  let ecryptfsInputs = 0;

  const checkHeader = (b: Buffer): void => {
    ecryptfsInputs++;
    const h = typed('parseEcryptfsHeader', ['CORRUPT_FILE'], () => parseEcryptfsHeader(b, b.length < 4096));
    assert.equal(parseLowerFileHeader(b) === null || h !== undefined, true, 'the lenient parser accepts only what the strict one does');
    if (!h) return;
    assert.ok(h.keyPackets.length > 0 && h.fileVersion <= 3);
    for (const p of h.keyPackets) {
      assert.match(p.sig, /^[0-9a-f]{16}$/);
      if (p.kind === 'passphrase') typed('unwrapFileKey', FILE_CODES, () => unwrapFileKey(p, sek).key.fill(0));
    }
  };
  const checkName = (name: string): void => {
    ecryptfsInputs++;
    const enc = typed('parseEncryptedName', ['CORRUPT_FILE'], () => parseEncryptedName(name));
    if (!enc) return;
    const plain = typed('decryptName', NAME_CODES, () => decryptName(enc, sek));
    if (plain) assert.ok(plain.length > 0 && !plain.includes(0) && !plain.includes(0x2f));
  };

  test('parseEcryptfsHeader + unwrapFileKey: mutations of kernel-written and writer-made headers', () => {
    mutants(headerSeeds, 40_000, 101, checkHeader);
  });

  test('parseEcryptfsHeader: generated packet soups after valid fixed fields', () => {
    const fixed = (headerSeeds[0] as Buffer).subarray(0, 26);
    const packet = fc
      .tuple(fc.constantFrom(0x8c, 0xed, 0x01, 0x00, 0x46, 0xff), fc.oneof(fc.integer({ min: 0, max: 191 }), fc.integer({ min: 192, max: 8383 })), bytes(60))
      .map(([tag, len, body]) => Buffer.concat([Buffer.from([tag]), len < 192 ? Buffer.from([len]) : Buffer.from([Math.floor((len - 192) / 256) + 192, (len - 192) % 256]), body]));
    fc.assert(fc.property(fc.array(packet, { maxLength: 6 }), (ps) => checkHeader(Buffer.concat([fixed, ...ps]))), { numRuns: RUNS * 3, seed: SEED + 11 });
    fc.assert(fc.property(bytes(300), (b) => checkHeader(Buffer.concat([fixed, b]))), { numRuns: RUNS * 2, seed: SEED + 12 });
  });

  test('parseEncryptedName + decryptName: mutated and generated names', () => {
    mutants(nameSeeds.map((n) => Buffer.from(n, 'latin1')), 30_000, 103, (b) => checkName(b.toString('latin1')));
    const encoded = fc.stringMatching(/^[-.0-9A-Za-z]{0,120}$/).map((t) => `ECRYPTFS_FNEK_ENCRYPTED.${t}`);
    fc.assert(fc.property(encoded, (n) => checkName(n)), { numRuns: RUNS, seed: SEED + 13 });
  });

  test('at least 100,000 eCryptfs header and name inputs', (t) => {
    t.diagnostic(`eCryptfs inputs: ${ecryptfsInputs}`);
    assert.ok(ecryptfsInputs >= 100_000, `only ${ecryptfsInputs}`);
  });
});

test('at least 100,000 inputs in total', (t) => {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`fuzz inputs: total ${total} (${[...counts.entries()].map(([k, v]) => `${k}=${v}`).join(' ')})`);
  assert.ok(total >= 100_000, `only ${total} inputs`);
});
