/**
 * The mount dialog driven with scripted answers: prompts, order and defaults as mount.ecryptfs
 * 111 shows them (transcripts taken from the reference helper in the VM), flags instead of
 * questions, what the kernel offers, retries, and the sig-cache questions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildPasswordAuthTok } from '../../src/formats/auth-tok';
import { CIPHERS, type KernelCipher, type KernelCiphers, cipherByName } from '../../src/os/ciphers';
import { AgentError, isAgentError } from '../../src/errors';
import { DEFAULT_SALT } from '../../src/formats/kdf';
import { decideAboutNewSig, type GivenChoices, type Prompter, runMountDialog } from '../../src/actions/manual-mount';

const PW = 'secret3';
// Printed by the reference helper in the VM for "secret3" (default salt).
const PW_SIG = 'a1a5358798c8f119';
const OTHER_SIG = '0123456789abcdef';

/** A terminal that answers from a script and records everything shown (prompts end in ": "). */
function scripted(answers: (string | null)[]): Prompter & { transcript: string; secrets: Buffer[]; left: () => number } {
  const queue = [...answers];
  const secrets: Buffer[] = [];
  const p = {
    transcript: '',
    secrets,
    left: () => queue.length,
    say(text: string) {
      p.transcript += text;
    },
    async ask(prompt: string) {
      p.transcript += `${prompt}: `;
      if (queue.length === 0) throw new Error(`unexpected question: ${prompt}`);
      const a = queue.shift() as string | null;
      p.transcript += a === null ? '<EOF>\n' : `${a}\n`;
      return a;
    },
    async askSecret(prompt: string) {
      p.transcript += `${prompt}: `;
      if (queue.length === 0) throw new Error(`unexpected secret question: ${prompt}`);
      const a = queue.shift() as string | null;
      p.transcript += '\n';
      if (a === null) return null;
      const b = Buffer.from(a);
      secrets.push(b);
      return b;
    },
  };
  return p;
}

/** A kernel that has `names` with the catalogue's key ranges (or the ones given). */
function fakeKernel(names: string[], ranges: Record<string, [number, number]> = {}): KernelCiphers & { loads: string[] } {
  const loads: string[] = [];
  return {
    loads,
    available: () => CIPHERS.filter((c) => names.includes(c.name)),
    load(name: string): KernelCipher {
      loads.push(name);
      if (!names.includes(name)) throw new AgentError('CIPHER_UNAVAILABLE', `this kernel does not offer the ${name} cipher`);
      const c = cipherByName(name);
      const [min, max] = ranges[name] ?? [c.minKeysize, c.maxKeysize];
      return { name, minKeysize: min, maxKeysize: max, drivers: [`${name}-generic`] };
    },
  };
}

const ALL = CIPHERS.map((c) => c.name);
const CIPHER_MENU =
  'Select cipher: \n' +
  ' 1) aes: blocksize = 16; min keysize = 16; max keysize = 32\n' +
  ' 2) blowfish: blocksize = 8; min keysize = 16; max keysize = 56\n' +
  ' 3) des3_ede: blocksize = 8; min keysize = 24; max keysize = 24\n' +
  ' 4) twofish: blocksize = 16; min keysize = 16; max keysize = 32\n' +
  ' 5) cast6: blocksize = 16; min keysize = 16; max keysize = 32\n' +
  ' 6) cast5: blocksize = 8; min keysize = 5; max keysize = 16\n' +
  'Selection [aes]: ';

async function dialog(answers: (string | null)[], given: GivenChoices = {}, kernel = fakeKernel(ALL)) {
  const p = scripted(answers);
  const r = await runMountDialog({ prompter: p, kernel, given, salt: DEFAULT_SALT });
  r.authTok.payload.fill(0);
  return { ...r, p, kernel };
}

test('every question in mount.ecryptfs\'s order and words; Enter takes each suggestion', async () => {
  const { choices, authTok, p } = await dialog(['', PW, '', '', '', '']);
  assert.deepEqual(choices, { cipher: 'aes', keyBytes: 16, passthrough: false, fnek: false });
  assert.equal(authTok.sig, PW_SIG);
  assert.equal(authTok.sig, buildPasswordAuthTok(Buffer.from(PW), DEFAULT_SALT).sig);
  assert.equal(
    p.transcript,
    'Select key type to use for newly created files: \n 1) passphrase\nSelection [passphrase]: \n' +
      'Passphrase: \n' +
      `${CIPHER_MENU}\n` +
      'Select key bytes: \n 1) 16\n 2) 32\n 3) 24\nSelection [16]: \n' +
      'Enable plaintext passthrough (y/n) [n]: \n' +
      'Enable filename encryption (y/n) [n]: \n',
  );
  assert.ok(p.secrets.every((b) => b.every((x) => x === 0)), 'the typed passphrase is zeroed');
});

test('the reference transcript: blowfish, 56 key bytes, filename encryption with the file key', async () => {
  const { choices, p, kernel } = await dialog(['1', PW, '2', '3', '', 'y', '']);
  assert.deepEqual(choices, { cipher: 'blowfish', keyBytes: 56, passthrough: false, fnek: true });
  assert.ok(p.transcript.includes('Select key bytes: \n 1) 16\n 2) 32\n 3) 56\nSelection [16]: 3\n'));
  assert.ok(p.transcript.endsWith(`Enable filename encryption (y/n) [n]: y\nFilename Encryption Key (FNEK) Signature [${PW_SIG}]: \n`));
  assert.deepEqual(kernel.loads, ['blowfish'], 'the chosen cipher is loaded, once');
});

test('wrong answers are asked again (menu redrawn); values work as well as numbers', async () => {
  const { choices, p } = await dialog(['passphrase', PW, 'bogus', '7', '', '24', 'maybe', 'n', 'yes', 'xyz', OTHER_SIG]);
  assert.deepEqual(choices, { cipher: 'aes', keyBytes: 24, passthrough: false, fnek: true, fnekSig: OTHER_SIG });
  assert.equal(p.transcript.split(CIPHER_MENU).length - 1, 3, 'the cipher menu is shown three times');
  assert.equal(p.transcript.split('Enable plaintext passthrough').length - 1, 2);
  assert.ok(p.transcript.includes('A signature is 16 hexadecimal digits'));
});

test('only what the kernel offers: ciphers it has, key sizes within its range', async () => {
  const kernel = fakeKernel(['aes', 'twofish'], { twofish: [16, 24] });
  const { choices, p } = await dialog(['', PW, '2', '', 'y', 'n'], {}, kernel);
  assert.deepEqual(choices, { cipher: 'twofish', keyBytes: 16, passthrough: true, fnek: false });
  assert.ok(p.transcript.includes('Select cipher: \n 1) aes: blocksize = 16; min keysize = 16; max keysize = 32\n 2) twofish: blocksize = 16; min keysize = 16; max keysize = 32\nSelection [aes]: 2\n'));
  assert.ok(p.transcript.includes('Select key bytes: \n 1) 16\nSelection [16]: \n'), '32 is beyond this kernel\'s twofish');
});

test('flags answer their questions; with all of them only the passphrase is asked', async () => {
  const all: GivenChoices = { cipher: 'cast6', keyBytes: 32, passthrough: false, fnek: true };
  const { choices, p } = await dialog([PW], all);
  assert.deepEqual(choices, { cipher: 'cast6', keyBytes: 32, passthrough: false, fnek: true });
  assert.equal(p.transcript, 'Passphrase: \n');
  const some = await dialog(['', PW, '', 'n'], { cipher: 'des3_ede', passthrough: true });
  assert.deepEqual(some.choices, { cipher: 'des3_ede', keyBytes: 24, passthrough: true, fnek: false });
  assert.ok(!some.p.transcript.includes('Select cipher'));
  assert.ok(some.p.transcript.includes('Select key bytes: \n 1) 24\nSelection [24]: '));
  const sig = await dialog([PW], { cipher: 'aes', keyBytes: 16, passthrough: false, fnekSig: OTHER_SIG });
  assert.deepEqual(sig.choices, { cipher: 'aes', keyBytes: 16, passthrough: false, fnek: true, fnekSig: OTHER_SIG });
});

test('a flag\'s cipher or key size the kernel lacks is refused before the passphrase is asked', async () => {
  const kernel = fakeKernel(['aes']);
  const p = scripted([PW]);
  await assert.rejects(runMountDialog({ prompter: p, kernel, given: { cipher: 'blowfish' }, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'CIPHER_UNAVAILABLE'));
  assert.equal(p.left(), 1, 'nothing was asked');
  const narrow = fakeKernel(['aes'], { aes: [16, 24] });
  await assert.rejects(runMountDialog({ prompter: scripted([PW]), kernel: narrow, given: { cipher: 'aes', keyBytes: 32 }, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'BAD_CIPHER') && /use 16 or 24/.test(e.message));
  await assert.rejects(runMountDialog({ prompter: scripted([]), kernel, given: { cipher: 'serpent' }, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'BAD_CIPHER'));
  await assert.rejects(runMountDialog({ prompter: scripted([]), kernel, given: { cipher: 'aes', keyBytes: 20 }, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'BAD_CIPHER'));
  await assert.rejects(runMountDialog({ prompter: scripted([]), kernel, given: { fnekSig: 'xyz' }, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'BAD_SIG'));
});

test('no terminal: every choice and the passphrase must be given; then nothing is asked', async () => {
  const kernel = fakeKernel(ALL);
  await assert.rejects(
    runMountDialog({ prompter: null, kernel, given: { cipher: 'aes' }, passphrase: Buffer.from(PW), salt: DEFAULT_SALT }),
    (e) => isAgentError(e, 'USAGE') && e.message.includes('--key-bytes N, --passthrough or --no-passthrough, --fnek or --no-fnek'),
  );
  await assert.rejects(
    runMountDialog({ prompter: null, kernel, given: { cipher: 'aes', keyBytes: 16, passthrough: false, fnek: false }, salt: DEFAULT_SALT }),
    (e) => isAgentError(e, 'USAGE') && /--passphrase-stdin/.test(e.message),
  );
  const pw = Buffer.from(PW);
  const r = await runMountDialog({ prompter: null, kernel, given: { cipher: 'twofish', keyBytes: 32, passthrough: true, fnek: true }, passphrase: pw, salt: DEFAULT_SALT });
  assert.deepEqual(r.choices, { cipher: 'twofish', keyBytes: 32, passthrough: true, fnek: true });
  assert.equal(r.authTok.sig, PW_SIG);
  assert.ok(pw.every((x) => x === 0), 'the passphrase is zeroed');
  const salted = await runMountDialog({ prompter: null, kernel, given: { cipher: 'aes', keyBytes: 16, passthrough: false, fnek: false }, passphrase: Buffer.from(PW), salt: Buffer.from('0102030405060708', 'hex') });
  assert.notEqual(salted.authTok.sig, PW_SIG, '~/.ecryptfsrc\'s salt makes another key');
});

test('end of input, five wrong answers, or three empty passphrases: cancelled, nothing derived', async () => {
  await assert.rejects(dialog(['', PW, null]), (e) => isAgentError(e, 'CANCELLED') && /end of input/.test(e.message));
  await assert.rejects(dialog(['', PW, '', '', 'a', 'b', 'c', 'd', 'e']), (e) => isAgentError(e, 'CANCELLED') && /after 5 tries/.test(e.message));
  const p = scripted(['', '', '', '']);
  await assert.rejects(runMountDialog({ prompter: p, kernel: fakeKernel(ALL), given: {}, salt: DEFAULT_SALT }), (e) => isAgentError(e, 'PASSPHRASE_EMPTY'));
  assert.equal(p.transcript.split('Wrong input, non-empty value required!').length - 1, 3);
});

test('sig cache: known → no question; yes/yes → record; yes/no → proceed; no → aborted', async () => {
  const path = '/root/.ecryptfs/sig-cache.txt';
  const known = scripted([]);
  assert.equal(await decideAboutNewSig(known, { cached: true, sig: PW_SIG, path, yes: false }), 'known');
  assert.equal(known.transcript, '');

  const yy = scripted(['yes', 'yes']);
  assert.equal(await decideAboutNewSig(yy, { cached: false, sig: PW_SIG, path, yes: false }), 'record');
  // Byte for byte what the reference helper printed in the VM (answers excluded).
  assert.equal(
    yy.transcript,
    'WARNING: Based on the contents of [/root/.ecryptfs/sig-cache.txt],\nit looks like you have never mounted with this key \nbefore. This could mean that you have typed your \npassphrase wrong.\n\n' +
      'Would you like to proceed with the mount (yes/no)? : yes\n' +
      `Would you like to append sig [${PW_SIG}] to\n[/root/.ecryptfs/sig-cache.txt] \nin order to avoid this warning in the future (yes/no)? : yes\n`,
  );

  const yn = scripted(['yes', 'y', 'no']);
  assert.equal(await decideAboutNewSig(yn, { cached: false, sig: PW_SIG, path, yes: false }), 'proceed');
  assert.ok(yn.transcript.endsWith('Not adding sig to user sig cache file; continuing with mount.\n'), 'only "yes"/"no" count: "y" is asked again');

  const no = scripted(['no']);
  await assert.rejects(decideAboutNewSig(no, { cached: false, sig: PW_SIG, path, yes: false }), (e) => isAgentError(e, 'CANCELLED'));
  assert.ok(no.transcript.endsWith('Aborting mount.\n'));

  const junk = scripted(['1', '2', '3', '4', '5']);
  await assert.rejects(decideAboutNewSig(junk, { cached: false, sig: PW_SIG, path, yes: false }), (e) => isAgentError(e, 'CANCELLED'));
});

test('sig cache without a terminal: refused unless --yes, which records', async () => {
  const path = '/root/.ecryptfs/sig-cache.txt';
  await assert.rejects(
    decideAboutNewSig(null, { cached: false, sig: PW_SIG, path, yes: false }),
    (e) => isAgentError(e, 'SIG_NOT_CACHED') && e.message.includes(PW_SIG) && e.message.includes(path) && /--yes/.test(e.hint),
  );
  assert.equal(await decideAboutNewSig(null, { cached: false, sig: PW_SIG, path, yes: true }), 'record');
  assert.equal(await decideAboutNewSig(null, { cached: true, sig: PW_SIG, path, yes: false }), 'known');
  const t = scripted([]);
  assert.equal(await decideAboutNewSig(t, { cached: false, sig: PW_SIG, path, yes: true }), 'record', '--yes answers on a terminal too');
  assert.equal(t.transcript, '');
});
