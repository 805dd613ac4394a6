/**
 * Keyring behaviour on the REAL kernel (root). Every test works in child processes with a
 * fresh anonymous session keyring and a throwaway user; assertions read what the kernel
 * reports (keyctl as the user, /proc/keys), not what the wrapper remembers.
 * docs/keyring.md cites these tests by name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AgentError } from '../../src/errors';
import { isSig } from '../../src/formats/auth-tok';
import { insertAuthTok, KEY_SPEC } from '../../src/os/keyring';
import { join } from 'node:path';
import { asUserKeyctl, createUser, deleteUser, DIST_SRC, fakeAuthTok, inSession, procKeysAs, randomSig, sh, type TestUser } from '../helpers/host-native';

const isRoot = process.getuid?.() === 0;

type Err = { err: string; code: string };

describe('keyring on the real kernel', { skip: !isRoot && 'needs root' }, () => {
  let u: TestUser;
  before(() => {
    u = createUser();
  });
  after(() => {
    deleteUser(u);
  });

  test('K1 auth tok inserted as the user lands in @u (_uid.UID), owned by the user; keyctl reads the same bytes', () => {
    const sig = randomSig();
    const tok = fakeAuthTok(sig);
    const r = inSession<{ id: number; added: boolean; ring: string }>(
      `const [name, sig, hex] = argv; const user = c.lookupUser(name);
       asFullUser(user, () => { const x = k.insertAuthTok(sig, Buffer.from(hex, 'hex'));
         out({ ...x, ring: n.keyctlDescribe(k.getKeyringId(k.KEY_SPEC.USER, false)) }); });`,
      [u.name, sig, tok.toString('hex')],
    );
    assert.equal(r.added, true);
    assert.equal(r.ring, `keyring;${u.uid};65534;1f3f0000;_uid.${u.uid}`);
    assert.equal(asUserKeyctl(u, `keyctl rdescribe ${r.id}`).stdout.trim(), `user;${u.uid};${u.gid};3f010000;${sig}`);
    assert.equal(asUserKeyctl(u, `keyctl pipe ${r.id} | od -An -v -tx1 | tr -d " \\n"`).stdout, tok.toString('hex'));
    assert.match(asUserKeyctl(u, 'keyctl show @u').stdout, new RegExp(`${r.id} .*user: ${sig}`));
    // keyctl (another implementation) finds it by sig and unlinks it; then we no longer find it
    assert.equal(asUserKeyctl(u, `keyctl search @u user ${sig}`).stdout.trim(), String(r.id));
    assert.equal(asUserKeyctl(u, `keyctl unlink ${r.id} @u`).status, 0);
    const after = inSession(`const user = c.lookupUser(argv[0]); asFullUser(user, () => out(k.searchUserKey(argv[1], k.KEY_SPEC.USER)));`, [u.name, sig]);
    assert.equal(after, null);
  });

  test("K2 @u is chosen by the REAL uid: the full user's is _uid.UID; in 'mount' mode (real uid 0, fs ids the user's) it is root's _uid.0; new keys are owned by the fsuid", () => {
    const sig = randomSig();
    const r = inSession<{ ring: string; owner: string; mountRing: string; rootRing: string }>(
      `const [name, sig, hex] = argv; const user = c.lookupUser(name);
       asFullUser(user, () => {
         const id = k.addUserKey(sig, Buffer.from(hex, 'hex'), k.KEY_SPEC.USER);
         out({ ring: k.describeKey(k.KEY_SPEC.USER).description, owner: n.keyctlDescribe(id), mountRing: '', rootRing: '' });
       });
       const inMount = c.asUser(user, () => n.keyctlGetKeyringId(k.KEY_SPEC.USER, false), { mode: 'mount' });
       result.mountRing = inMount === n.keyctlGetKeyringId(k.KEY_SPEC.USER, false) ? '_uid.0' : 'another keyring';
       result.rootRing = k.describeKey(k.KEY_SPEC.USER).description;`,
      [u.name, sig, fakeAuthTok(sig).toString('hex')],
    );
    assert.equal(r.ring, `_uid.${u.uid}`);
    assert.equal(r.owner, `user;${u.uid};${u.gid};3f010000;${sig}`);
    assert.equal(r.mountRing, '_uid.0', "'mount' mode never names the user's keyring by @u: mount(2) finds the keys through our process keyring");
    assert.equal(r.rootRing, '_uid.0');
    assert.match(asUserKeyctl(u, 'keyctl show @u').stdout, new RegExp(`\\s${u.uid}\\s+${u.gid}\\s+\\\\_ user: ${sig}`));
    assert.equal(asUserKeyctl(u, `keyctl unlink $(keyctl search @u user ${sig}) @u`).status, 0);
  });

  test('K3 request_key from the user sees @u only through a session keyring that links it (pam_keyinit)', () => {
    const sig = randomSig();
    const r = inSession<{ id: number }>(
      `const [name, sig, hex] = argv; asFullUser(c.lookupUser(name), () => out(k.insertAuthTok(sig, Buffer.from(hex, 'hex'))));`,
      [u.name, sig, fakeAuthTok(sig).toString('hex')],
    );
    const bare = sh(`runuser -u ${u.name} -- keyctl session - keyctl request user ${sig}`);
    assert.notEqual(bare.status, 0);
    assert.match(bare.stderr, /Required key not available/);
    assert.equal(asUserKeyctl(u, `keyctl request user ${sig}`).stdout.trim(), String(r.id));
    asUserKeyctl(u, `keyctl unlink ${r.id} @u`);
  });

  test('K4 after JOIN_SESSION_KEYRING @s is empty and @u keys are not possessed until @u is linked into @s', () => {
    const sig = randomSig();
    const r = inSession<{ list: number[]; read0: Err; link0: Err; readAfter: number; listAfter: number[]; uring: number; timeout0: Err }>(
      `const [name, sig, hex] = argv; const user = c.lookupUser(name);
       asFullUser(user, () => {
         const { id } = k.insertAuthTok(sig, Buffer.from(hex, 'hex'));
         k.joinSessionKeyring();
         const r = { list: k.listKeyring(k.KEY_SPEC.SESSION), read0: T(() => k.readKey(id)), link0: T(() => k.linkKey(id, k.KEY_SPEC.SESSION)),
                     timeout0: T(() => k.setKeyTimeout(id, 60)) };
         k.linkKey(k.KEY_SPEC.USER, k.KEY_SPEC.SESSION);
         r.readAfter = k.readKey(id).length; r.listAfter = k.listKeyring(k.KEY_SPEC.SESSION); r.uring = k.getKeyringId(k.KEY_SPEC.USER, false);
         k.unlinkKey(id, k.KEY_SPEC.USER);
         out(r);
       });`,
      [u.name, sig, fakeAuthTok(sig).toString('hex')],
    );
    assert.deepEqual(r.list, []);
    assert.equal(r.read0.err, 'EACCES');
    assert.equal(r.read0.code, 'PERMISSION');
    assert.equal(r.link0.err, 'EACCES');
    assert.equal(r.timeout0.err, 'EACCES');
    assert.equal(r.readAfter, 740);
    assert.deepEqual(r.listAfter, [r.uring]);
  });

  test('K5 duplicates: insertAuthTok twice keeps one key untouched; plain add_key of the same description updates in place', () => {
    const sig = randomSig();
    const r = inSession<{ a: { id: number; added: boolean }; b: { id: number; added: boolean }; plain: number }>(
      `const [name, sig, h1, h2, h3] = argv; const user = c.lookupUser(name);
       asFullUser(user, () => {
         const a = k.insertAuthTok(sig, Buffer.from(h1, 'hex'));
         const b = k.insertAuthTok(sig, Buffer.from(h2, 'hex'));
         out({ a, b, plain: 0 });
       });`,
      [u.name, sig, fakeAuthTok(sig, 1).toString('hex'), fakeAuthTok(sig, 2).toString('hex')],
    );
    assert.deepEqual([r.a.added, r.b.added, r.b.id], [true, false, r.a.id]);
    assert.equal(procKeysAs(u, sig).length, 1);
    assert.equal(asUserKeyctl(u, `keyctl pipe ${r.a.id} | od -An -v -tx1 -j648 -N1 | tr -d " \\n"`).stdout, '01'); // first payload kept
    const plain = inSession<number>(
      `const [name, sig, hex] = argv; asFullUser(c.lookupUser(name), () => out(k.addUserKey(sig, Buffer.from(hex, 'hex'), k.KEY_SPEC.USER)));`,
      [u.name, sig, fakeAuthTok(sig, 3).toString('hex')],
    );
    assert.equal(plain, r.a.id, 'add_key over an existing key of the same type+description returns the same serial');
    assert.equal(procKeysAs(u, sig).length, 1);
    assert.equal(asUserKeyctl(u, `keyctl pipe ${r.a.id} | od -An -v -tx1 -j648 -N1 | tr -d " \\n"`).stdout, '03'); // updated in place
    asUserKeyctl(u, `keyctl unlink ${r.a.id} @u`);
  });

  test('K6 timeouts: an expired key is invisible to search, cannot be un-expired, stays linked until GC, and add_key revives it in place', async () => {
    const sig = randomSig();
    const hex = fakeAuthTok(sig).toString('hex');
    const a = inSession<{ id: number; added: boolean }>(
      `const [name, sig, hex] = argv; asFullUser(c.lookupUser(name), () => out(k.insertAuthTok(sig, Buffer.from(hex, 'hex'), k.KEY_SPEC.USER, { timeoutSeconds: 4 })));`,
      [u.name, sig, hex],
    );
    assert.equal(a.added, true);
    assert.match(procKeysAs(u, sig)[0] ?? '', /^\S+ \S+\s+\d+\s+[1-9]s /, 'kernel shows a seconds expiry');
    // 4 s, not 1: the test runs beside a VM suite, and a loaded machine took over a second
    // between the insert and reading /proc/keys
    await new Promise((res) => setTimeout(res, 4600));
    const r = inSession<{ raw: Err; search: number | null; clear: Err; list: number[]; insert: { id: number; added: boolean } }>(
      `const [name, sig, hex] = argv; asFullUser(c.lookupUser(name), () => {
         k.possessUserKeyring();
         const r = { raw: T(() => n.keyctlSearch(k.KEY_SPEC.USER, 'user', sig)), search: k.searchUserKey(sig, k.KEY_SPEC.USER),
                     clear: T(() => k.setKeyTimeout(${a.id}, 0)), list: k.listKeyring(k.KEY_SPEC.USER) };
         r.insert = k.insertAuthTok(sig, Buffer.from(hex, 'hex'));
         out(r);
       });`,
      [u.name, sig, hex],
    );
    assert.equal(r.raw.err, 'EKEYEXPIRED');
    assert.equal(r.search, null);
    assert.equal(r.clear.err, 'EKEYEXPIRED', 'timeout 0 cannot rescue an expired key');
    assert.ok(r.list.includes(a.id), 'expired key is still linked in @u (GC runs after gc_delay)');
    assert.deepEqual(r.insert, { id: a.id, added: true }, 'add_key over the expired key updates it in place');
    assert.match(procKeysAs(u, sig)[0] ?? '', /^\S+ \S+\s+\d+ perm /, 'the update reset the expiry');
    // timeout then timeout 0 (the auth → open_session plan) leaves a permanent key
    const b = inSession<{ before: string; after: string }>(
      `const [name, sig] = argv; asFullUser(c.lookupUser(name), () => { k.possessUserKeyring(); const id = k.searchUserKey(sig, k.KEY_SPEC.USER);
         k.setKeyTimeout(id, 300); const before = require('fs').readFileSync('/proc/keys', 'utf8').split('\\n').find((l) => l.includes(sig));
         k.setKeyTimeout(id, 0); const after = require('fs').readFileSync('/proc/keys', 'utf8').split('\\n').find((l) => l.includes(sig));
         k.removeAuthTok(sig); out({ before, after }); });`,
      [u.name, sig],
    );
    assert.match(b.before, /^\S+ \S+\s+\d+\s+(4m|5m) /);
    assert.match(b.after, /^\S+ \S+\s+\d+ perm /);
  });

  test('K7 root possesses the user @u after linking it into its own @p while ruid=user, also after switching back', () => {
    const sig = randomSig();
    const r = inSession<{ before: Err; pOwner: string; root: number; rootRead: number; eff: number; unlinked: Err }>(
      `const [name, sig, hex] = argv; const user = c.lookupUser(name); const r = {};
       let id; asFullUser(user, () => { id = k.insertAuthTok(sig, Buffer.from(hex, 'hex')).id; });
       r.before = T(() => n.keyctlSearch(k.KEY_SPEC.PROCESS, 'user', sig));
       asFullUser(user, () => { k.possessUserKeyring(); });
       r.pOwner = n.keyctlDescribe(k.KEY_SPEC.PROCESS);
       r.root = n.keyctlSearch(k.KEY_SPEC.PROCESS, 'user', sig);
       r.rootRead = k.readKey(id).length;
       c.asUser(user, () => { r.eff = n.keyctlSearch(k.KEY_SPEC.PROCESS, 'user', sig); }, { mode: 'mount' });
       asFullUser(user, () => k.removeAuthTok(sig));
       r.unlinked = T(() => n.keyctlSearch(k.KEY_SPEC.PROCESS, 'user', sig));
       out(r);`,
      [u.name, sig, fakeAuthTok(sig).toString('hex')],
    );
    assert.ok(['ENOKEY', 'ENOENT'].includes(r.before.err), `before the link: ${r.before.err}`);
    assert.equal(r.pOwner.split(';')[1], String(u.uid), '@p created while ruid=user belongs to the user');
    assert.ok(r.root > 0);
    assert.equal(r.rootRead, 740);
    assert.equal(r.eff, r.root);
    assert.equal(r.unlinked.err, 'ENOKEY');
  });

  test('K8 a key added by ecryptfs-add-passphrase is found and read by us, bytes equal; listAuthToks reports it', () => {
    const add = sh(`runuser -u ${u.name} -- keyctl session - sh -c 'printf %s testpass | ecryptfs-add-passphrase -'`);
    // ecryptfs-add-passphrase prints its errors on stdout (libecryptfs details go to syslog)
    assert.equal(add.status, 0, `ecryptfs-add-passphrase: stdout ${JSON.stringify(add.stdout)} stderr ${JSON.stringify(add.stderr)}`);
    assert.match(add.stdout, /2eb5a49ebe845786/);
    const theirs = asUserKeyctl(u, 'keyctl pipe $(keyctl search @u user 2eb5a49ebe845786) | od -An -v -tx1 | tr -d " \\n"').stdout;
    assert.equal(theirs.length, 1480);
    const r = inSession<{ hex: string; list: { id: number; sig: string; uid: number }[]; removed: boolean; again: boolean }>(
      `const user = c.lookupUser(argv[0]); asFullUser(user, () => { k.possessUserKeyring();
         const id = k.searchUserKey('2eb5a49ebe845786', k.KEY_SPEC.USER);
         out({ hex: k.readKey(id).toString('hex'), list: k.listAuthToks(), removed: k.removeAuthTok('2eb5a49ebe845786'), again: k.removeAuthTok('2eb5a49ebe845786') }); });`,
      [u.name],
    );
    assert.equal(r.hex, theirs);
    assert.ok(r.list.some((e) => e.sig === '2eb5a49ebe845786' && e.uid === u.uid));
    assert.deepEqual([r.removed, r.again], [true, false]);
    // An unlinked key leaves /proc/keys when the kernel's key garbage collector has run (it is
    // scheduled, not immediate): the flake this test had (1 line left) was that race.
    let left = procKeysAs(u, '2eb5a49ebe845786').length;
    for (let i = 0; i < 40 && left > 0; i++) {
      sh('sleep 0.05');
      left = procKeysAs(u, '2eb5a49ebe845786').length;
    }
    assert.equal(left, 0);
  });

  test('K9 bad input is refused before the kernel is touched: nothing half-added', () => {
    const sig = randomSig();
    const short = fakeAuthTok(sig).subarray(0, 739);
    const badVersion = fakeAuthTok(sig);
    badVersion[0] = 5;
    const other = fakeAuthTok(randomSig());
    for (const [s, p, code] of [
      ['xyz', fakeAuthTok(sig), 'BAD_SIG'],
      [`${sig}0`, fakeAuthTok(sig), 'BAD_SIG'],
      [sig, short, 'BAD_AUTH_TOK'],
      [sig, Buffer.concat([fakeAuthTok(sig), Buffer.alloc(1)]), 'BAD_AUTH_TOK'],
      [sig, badVersion, 'BAD_AUTH_TOK'],
      [sig, other, 'SIG_MISMATCH'],
    ] as const) {
      assert.throws(() => insertAuthTok(s, p, KEY_SPEC.USER), (e: unknown) => e instanceof AgentError && e.code === code, `${s}/${p.length}`);
    }
    assert.equal(procKeysAs(u, sig).length, 0);
    const missing = inSession<Err>(`out(T(() => c.lookupUser('eat_nobody_here')));`);
    assert.equal(missing.code, 'NO_SUCH_USER');
    const root = inSession<Err>(`out(T(() => c.asUser(c.lookupUser('root'), () => k.insertAuthTok(argv[0], Buffer.alloc(740)))));`, [sig]);
    assert.equal(root.code, 'PERMISSION');
    assert.ok(isSig('0123456789ABCDEF') && !isSig('0123456789abcdeg') && !isSig(' 0123456789abcdef'));
  });

  test("K11 'files' mode (real uid 0, effective the user's): KEY_SPEC_USER is refused (it would name root's @u); by serial the user's @u works and new keys are the user's", () => {
    const sig = randomSig();
    const r = inSession<{ special: Err; ring: string; id: number; owner: string; found: number }>(
      `const [name, sig, hex] = argv; const user = c.lookupUser(name);
       const uring = require(${JSON.stringify(join(DIST_SRC, 'actions', 'keys.js'))}).possessUserKeyring(user).id;
       c.asUser(user, () => {
         const special = T(() => k.searchUserKey(sig, k.KEY_SPEC.USER));
         const { id } = k.insertAuthTok(sig, Buffer.from(hex, 'hex'), uring);
         out({ special, ring: k.describeKey(uring).description, id, owner: n.keyctlDescribe(id), found: k.searchUserKey(sig, uring) });
       });`,
      [u.name, sig, fakeAuthTok(sig).toString('hex')],
    );
    assert.equal(r.special.code, 'USAGE');
    assert.equal(r.ring, `_uid.${u.uid}`);
    assert.equal(r.owner, `user;${u.uid};${u.gid};3f010000;${sig}`);
    assert.equal(r.found, r.id);
    assert.equal(asUserKeyctl(u, `keyctl unlink ${r.id} @u`).status, 0);
  });

  test('K10 quota: a full user keyring gives KEY_QUOTA (EDQUOT) and adds nothing', () => {
    const q = createUser();
    try {
      const sig = randomSig();
      const r = inSession<{ filled: number; ins: Err; found: number | null; last: Err }>(
        `const [name, sig, hex] = argv; const user = c.lookupUser(name);
         asFullUser(user, () => {
           let filled = 0, last;
           for (const size of [4000, 500, 50, 1]) {
             for (;;) { last = T(() => k.addUserKey('fill-' + size + '-' + filled, Buffer.alloc(size, 1), k.KEY_SPEC.USER)); if (last && last.err) break; filled++; }
           }
           const ins = T(() => k.insertAuthTok(sig, Buffer.from(hex, 'hex')));
           const found = k.searchUserKey(sig, k.KEY_SPEC.USER);
           require('child_process').execFileSync('keyctl', ['clear', '@u']);
           out({ filled, ins, found, last });
         });`,
        [q.name, sig, fakeAuthTok(sig).toString('hex')],
      );
      assert.ok(r.filled > 0);
      assert.equal(r.last.err, 'EDQUOT');
      assert.equal(r.ins.err, 'EDQUOT');
      assert.equal(r.ins.code, 'KEY_QUOTA');
      assert.equal(r.found, null);
      assert.equal(procKeysAs(q, sig).length, 0);
    } finally {
      deleteUser(q);
    }
  });
});
