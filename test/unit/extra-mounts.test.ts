/**
 * Extra mounts (docs/extra-mounts.md): the two parsers, the option filter, the path rules, the
 * plan of what a login mounts and what the last logout unmounts, and a mutation fuzz of both
 * parsers. Pure: no file, no keyring, no mount.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentError } from '../../src/errors';
import {
  extraMountSigs,
  parseFstabExtraMounts,
  parseUserExtraMounts,
  planExtraMounts,
  checkRecordedMount,
  splitFstabLine,
  type ExtraMountEntry,
  type ExtraMountFacts,
  type ParsedExtraMounts,
} from '../../src/formats/extra-mount-entries';
import { sigsNotInUse } from '../../src/os/mount';
import { parseMountInfo, renderEcryptfsOptions } from '../../src/formats/mountinfo';
import { parseExtraMountRecords, type ExtraMountRecord } from '../../src/formats/extra-mount-entries';
import { renderStatus, type StatusReport } from '../../src/actions/status';

const ALICE = { name: 'alice', home: '/home/alice' };
const S1 = '0123456789abcdef';
const S2 = 'fedcba9876543210';
const S3 = '1111222233334444';
const user = (text: string): ParsedExtraMounts => parseUserExtraMounts(Buffer.from(text), ALICE);
const fstab = (text: string): ParsedExtraMounts => parseFstabExtraMounts(Buffer.from(text), ALICE);
const only = (p: ParsedExtraMounts): ExtraMountEntry => {
  assert.deepEqual(p.problems.map((x) => x.error.message), []);
  assert.equal(p.entries.length, 1);
  return p.entries[0]!;
};
const problem = (p: ParsedExtraMounts): AgentError => {
  assert.equal(p.entries.length, 0, 'the bad line gives no entry');
  assert.equal(p.problems.length, 1);
  return p.problems[0]!.error;
};

describe('fstab line syntax', () => {
  test('blank and comment lines, blanks and tabs between fields, octal escapes per field', () => {
    assert.equal(splitFstabLine(''), null);
    assert.equal(splitFstabLine('   \t '), null);
    assert.equal(splitFstabLine('  # LOWER UPPER'), null);
    assert.deepEqual(splitFstabLine(' /a\t\t/b  ecryptfs   x  0 0'), ['/a', '/b', 'ecryptfs', 'x', '0', '0']);
    assert.deepEqual(splitFstabLine('/my\\040dir /x#y ecryptfs o'), ['/my dir', '/x#y', 'ecryptfs', 'o'], 'a # inside a field is not a comment');
    assert.deepEqual(splitFstabLine('/caf\\303\\251 /b\\134c t o'), ['/café', '/b\\c', 't', 'o'], 'UTF-8 bytes and backslash');
    assert.deepEqual(splitFstabLine('/a\\04 /b t o'), ['/a\\04', '/b', 't', 'o'], 'an incomplete escape stays as written');
  });
});

describe('~/.ecryptfs/extra-mounts', () => {
  test('a full line: every understood option reaches the kernel string, nosuid/nodev implied', () => {
    const e = only(
      user(
        `# my work files\n/home/alice/.Work /home/alice/Work ecryptfs ecryptfs_sig=${S1},ecryptfs_sig=${S3},ecryptfs_fnek_sig=${S2},ecryptfs_cipher=aes,ecryptfs_key_bytes=32,ecryptfs_passthrough,ecryptfs_fn_cipher=aes,ecryptfs_fn_key_bytes=16,ecryptfs_xattr_metadata,ecryptfs_mount_auth_tok_only,nosuid,nodev,noexec\n`,
      ),
    );
    assert.equal(e.origin, 'user');
    assert.equal(e.where, '~/.ecryptfs/extra-mounts line 2');
    assert.equal(e.lower, '/home/alice/.Work');
    assert.equal(e.upper, '/home/alice/Work');
    assert.equal(e.noexec, true);
    assert.equal(e.readOnly, false);
    assert.deepEqual(extraMountSigs(e), [S1, S3, S2]);
    assert.equal(
      renderEcryptfsOptions(e.ecryptfs),
      `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=32,ecryptfs_passthrough,ecryptfs_xattr_metadata,ecryptfs_unlink_sigs,ecryptfs_sig=${S1},ecryptfs_sig=${S3},ecryptfs_fnek_sig=${S2},ecryptfs_fn_cipher=aes,ecryptfs_fn_key_bytes=16,ecryptfs_mount_auth_tok_only`,
    );
  });

  test('minimal line: defaults of mount.ecryptfs_private; CRLF, dump/pass numbers and \\040 accepted', () => {
    const e = only(user(`/mnt/remote/al\\040ice/enc /home/alice/My\\040Remote ecryptfs sig=${S1} 0 0\r\n`));
    assert.equal(e.lower, '/mnt/remote/al ice/enc', 'the encrypted directory may be outside the home (an sshfs mount)');
    assert.equal(e.upper, '/home/alice/My Remote');
    assert.equal(renderEcryptfsOptions(e.ecryptfs), `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=${S1}`);
    assert.deepEqual([e.noexec, e.readOnly], [false, false], 'exec like ~/Private');
  });

  test('ro, exec, ecryptfs_encrypted_view (read-only), ecryptfs_passthrough=n', () => {
    assert.equal(only(user(`/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1},ro`)).readOnly, true);
    assert.equal(only(user(`/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1},noexec,exec`)).noexec, false, 'the last word wins');
    const view = only(user(`/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1},ecryptfs_encrypted_view,ecryptfs_passthrough=n`));
    assert.equal(view.readOnly, true);
    assert.equal(view.ecryptfs.passthrough, false);
  });

  test('one bad line is reported with its number and fix; the good lines stay', () => {
    const p = user(
      [
        `/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1}`,
        '',
        `/home/alice/.b /home/alice/b ecryptfs ecryptfs_sig=${S1},suid`,
        `/home/alice/.c /home/alice/c ecryptfs ecryptfs_sig=${S2}`,
      ].join('\n'),
    );
    assert.deepEqual(p.entries.map((e) => e.upper), ['/home/alice/a', '/home/alice/c']);
    assert.equal(p.problems.length, 1);
    assert.equal(p.problems[0]!.where, '~/.ecryptfs/extra-mounts line 3');
    assert.match(p.problems[0]!.error.message, /^~\/\.ecryptfs\/extra-mounts line 3: "suid" is never granted/);
    assert.equal(p.problems[0]!.error.hint, 'Remove suid');
  });

  const L = (opts: string, upper = '/home/alice/w', lower = '/home/alice/.w'): string => `${lower} ${upper} ecryptfs ${opts}`;
  for (const [name, line, code, message, fix] of [
    ['no sig', L('ecryptfs_cipher=aes'), 'BAD_SIG', /no ecryptfs_sig= option/, /Add ecryptfs_sig=SIG/],
    ['short sig', L('ecryptfs_sig=0123'), 'BAD_SIG', /ecryptfs_sig=0123: a signature is 16 hexadecimal/, /ecryptfs-agent keys/],
    ['non-hex sig', L('ecryptfs_sig=0123456789abcdeg'), 'BAD_SIG', /16 hexadecimal/, /sig/],
    ['sig given twice', L(`ecryptfs_sig=${S1},ecryptfs_sig=${S1}`), 'BAD_CONFIG', /given twice/, /Keep one/],
    ['two ciphers', L(`ecryptfs_sig=${S1},cipher=aes,ecryptfs_cipher=aes`), 'BAD_CONFIG', /ecryptfs_cipher is given twice/, /Keep one/],
    ['empty option', L(`ecryptfs_sig=${S1},,ro`), 'BAD_CONFIG', /empty option/, /extra comma/],
    ['trailing comma', L(`ecryptfs_sig=${S1},`), 'BAD_CONFIG', /empty option/, /extra comma/],
    ['unknown option', L(`ecryptfs_sig=${S1},relatime`), 'BAD_CONFIG', /unknown option "relatime"/, /understood here: ecryptfs_sig=/],
    // the options field is unescaped like libmount does, then split: \054 is a comma, and every part is checked
    ['escaped comma', L(`ecryptfs_sig=${S1},ecryptfs_cipher=aes\\054ecryptfs_sig=x`), 'BAD_SIG', /ecryptfs_sig=x: a signature/, /sig/],
    ['escaped comma hiding dev', L(`ecryptfs_sig=${S1},ecryptfs_cipher=aes\\054dev`), 'UNSAFE_PATH', /"dev" is never granted/, /Remove dev/],
    ['dev', L(`ecryptfs_sig=${S1},dev`), 'UNSAFE_PATH', /"dev" is never granted/, /Remove dev/],
    ['key module', L(`key=passphrase:passphrase_passwd_file=/x,ecryptfs_sig=${S1}`), 'BAD_CONFIG', /key= .* not supported/, /ecryptfs_sig=SIG/],
    ['fstab-only word', L(`ecryptfs_sig=${S1},user,noauto`), 'BAD_CONFIG', /unknown option "user"/, /understood/],
    ['key bytes 0', L(`ecryptfs_sig=${S1},ecryptfs_key_bytes=0`), 'BAD_CONFIG', /not a key size/, /1\.\.64/],
    ['key bytes 65', L(`ecryptfs_sig=${S1},ecryptfs_key_bytes=65`), 'BAD_CONFIG', /not a key size/, /1\.\.64/],
    ['key bytes hex', L(`ecryptfs_sig=${S1},ecryptfs_key_bytes=0x10`), 'BAD_CONFIG', /not a key size/, /1\.\.64/],
    ['flag with value', L(`ecryptfs_sig=${S1},ro=1`), 'BAD_CONFIG', /ro takes no value/, /Write just ro/],
    ['value missing', L(`ecryptfs_sig=${S1},ecryptfs_cipher=`), 'BAD_CONFIG', /needs a value/, /VALUE/],
    ['passthrough=maybe', L(`ecryptfs_sig=${S1},ecryptfs_passthrough=maybe`), 'BAD_CONFIG', /expected y or n/, /=y/],
    ['fn cipher without fnek', L(`ecryptfs_sig=${S1},ecryptfs_fn_cipher=aes`), 'BAD_CONFIG', /without ecryptfs_fnek_sig/, /Add ecryptfs_fnek_sig/],
    ['upper outside home', L(`ecryptfs_sig=${S1}`, '/etc/cron.d'), 'UNSAFE_PATH', /\/etc\/cron\.d is not inside alice's home \/home\/alice/, /under \/home\/alice/],
    ['upper is a sibling with the home as prefix', L(`ecryptfs_sig=${S1}`, '/home/alicex/w'), 'UNSAFE_PATH', /not inside alice's home/, /under/],
    ['upper is the home', L(`ecryptfs_sig=${S1}`, '/home/alice'), 'UNSAFE_PATH', /not inside alice's home/, /under/],
    ['upper in ~/.ecryptfs', L(`ecryptfs_sig=${S1}`, '/home/alice/.ecryptfs/x'), 'UNSAFE_PATH', /in ~\/\.ecryptfs/, /another directory/],
    ['upper with ..', L(`ecryptfs_sig=${S1}`, '/home/alice/../bob/w'), 'UNSAFE_PATH', /not an absolute, normalised path/, /without "\.\."/],
    ['relative lower', L(`ecryptfs_sig=${S1}`, '/home/alice/w', '.w'), 'UNSAFE_PATH', /encrypted directory ".w" is not an absolute/, /full path/],
    ['trailing slash', L(`ecryptfs_sig=${S1}`, '/home/alice/w/'), 'UNSAFE_PATH', /normalised/, /trailing/],
    ['control character', L(`ecryptfs_sig=${S1}`, '/home/alice/a\\011b'), 'UNSAFE_PATH', /control characters/, /no control characters/],
    ['upper inside lower', L(`ecryptfs_sig=${S1}`, '/home/alice/.w/plain'), 'UNSAFE_PATH', /inside the encrypted directory/, /outside/],
    ['not ecryptfs', `/home/alice/.w /home/alice/w ext4 ecryptfs_sig=${S1}`, 'BAD_CONFIG', /type "ext4" is not ecryptfs/, /third field/],
    ['three fields', '/home/alice/.w /home/alice/w ecryptfs', 'BAD_CONFIG', /found 3 field/, /four fields/],
    ['a space in a path', `/home/alice/my w /home/alice/w ecryptfs ecryptfs_sig=${S1}`, 'BAD_CONFIG', /type "\/home\/alice\/w" is not ecryptfs/, /third field/],
    ['words after the options', L(`ecryptfs_sig=${S1} 0 zero`), 'BAD_CONFIG', /must be numbers/, /Remove/],
  ] as const) {
    test(`refused with the line and the fix: ${name}`, () => {
      const e = problem(user(`# header\n${line}\n`));
      assert.ok(e instanceof AgentError);
      assert.equal(e.code, code);
      assert.match(e.message, /^~\/\.ecryptfs\/extra-mounts line 2: /);
      assert.match(e.message, message);
      assert.match(e.hint, fix);
    });
  }

  test('lower equal to upper (mounted over itself) is allowed, as eCryptfs allows it', () => {
    assert.equal(only(user(`/home/alice/w /home/alice/w ecryptfs ecryptfs_sig=${S1}`)).lower, '/home/alice/w');
  });

  test('a file that is not UTF-8: one problem, no entry', () => {
    const p = parseUserExtraMounts(Buffer.from([0x2f, 0xff, 0xfe, 0x0a]), ALICE);
    assert.equal(p.entries.length, 0);
    assert.match(p.problems[0]!.error.message, /not valid UTF-8/);
  });
});

describe('/etc/fstab', () => {
  const FSTAB = [
    '# /etc/fstab: static file system information.',
    'UUID=1234-abcd / ext4 errors=remount-ro 0 1',
    `/home/alice/.Work /home/alice/Work ecryptfs rw,user,noauto,ecryptfs_sig=${S1},ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs 0 0`,
    `/home/alice/.Auto /home/alice/Auto ecryptfs rw,user,ecryptfs_sig=${S1} 0 0`, // mounted at boot: not ours
    `/home/alice/.Root /home/alice/Root ecryptfs noauto,ecryptfs_sig=${S1} 0 0`, // root-only: not ours
    `/home/alice/.Late /home/alice/Late ecryptfs user,noauto,auto,ecryptfs_sig=${S1} 0 0`, // the last word wins: auto
    `/home/bob/.Work /home/bob/Work ecryptfs user,noauto,ecryptfs_sig=${S2} 0 0`, // another user's
    `/home/alicex/.W /home/alicex/W ecryptfs user,noauto,ecryptfs_sig=${S2} 0 0`, // a home with alice's as prefix
    `/srv/enc /home/alice/Srv ecryptfs users,noauto,exec,x-systemd.automount,nofail,_netdev,comment=hi,no_sig_cache,verbosity=0,ecryptfs_passthrough=n,ecryptfs_enable_filename_crypto=y,ecryptfs_fnek_sig=${S2},ecryptfs_sig=${S1}`,
    `/home/alice/.My\\040Docs /home/alice/My\\040Docs ecryptfs defaults,user,noauto,ro,ecryptfs_sig=${S3}`,
    'tmpfs /home/alice/tmp tmpfs user,noauto 0 0',
    `/home/alice/.Bad /home/alice/Bad ecryptfs user,noauto,suid,ecryptfs_sig=${S1} 0 0`,
    `/home/alice/.Broken /home/alice/Broken ecryptfs rw,ecryptfs_sig=zzz 0 0`, // not user,noauto: not even validated
    '',
  ].join('\n');

  test('only ecryptfs lines with user (or users) and noauto whose mount point is in the home', () => {
    const p = fstab(FSTAB);
    assert.deepEqual(
      p.entries.map((e) => [e.where, e.upper]),
      [
        ['/etc/fstab line 3', '/home/alice/Work'],
        ['/etc/fstab line 9', '/home/alice/Srv'],
        ['/etc/fstab line 10', '/home/alice/My Docs'],
      ],
    );
    assert.deepEqual(p.entries.map((e) => e.origin), ['fstab', 'fstab', 'fstab']);
    assert.equal(p.problems.length, 1);
    assert.match(p.problems[0]!.error.message, /^\/etc\/fstab line 12: "suid" is never granted/);
  });

  test('mount(8) semantics: user implies noexec unless a later exec; ro; helper-only words ignored', () => {
    const [work, srv, docs] = fstab(FSTAB).entries as [ExtraMountEntry, ExtraMountEntry, ExtraMountEntry];
    assert.equal(work.noexec, true, 'user implies noexec');
    assert.equal(srv.noexec, false, 'users,...,exec');
    assert.equal(docs.readOnly, true);
    assert.equal(docs.lower, '/home/alice/.My Docs');
    assert.equal(srv.ecryptfs.passthrough, false);
    assert.equal(renderEcryptfsOptions(srv.ecryptfs), `ecryptfs_check_dev_ruid,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs,ecryptfs_sig=${S1},ecryptfs_fnek_sig=${S2}`);
  });

  test('bob sees only his line', () => {
    const p = parseFstabExtraMounts(Buffer.from(FSTAB), { name: 'bob', home: '/home/bob' });
    assert.deepEqual(p.entries.map((e) => e.upper), ['/home/bob/Work']);
    assert.deepEqual(p.problems, []);
  });

  test('a line of ours with a bad option or path is a problem naming the line', () => {
    for (const [line, re] of [
      [`/e /home/alice/x ecryptfs user,noauto,ecryptfs_enable_filename_crypto=y,ecryptfs_sig=${S1}`, /ecryptfs_enable_filename_crypto=y without ecryptfs_fnek_sig/],
      [`/e /home/alice/x ecryptfs user,noauto,relatime,ecryptfs_sig=${S1}`, /unknown option "relatime"/],
      [`/e /home/alice/x ecryptfs user,noauto,key=passphrase,ecryptfs_sig=${S1}`, /key= .*not supported/],
      [`relative /home/alice/x ecryptfs user,noauto,ecryptfs_sig=${S1}`, /encrypted directory "relative" is not an absolute/],
      [`/e /home/alice/x ecryptfs user,noauto,ecryptfs_sig=${S1} 0 0 extra`, /7 fields/],
    ] as const) {
      const e = problem(fstab(`# x\n${line}\n`));
      assert.match(e.message, /^\/etc\/fstab line 2: /);
      assert.match(e.message, re);
    }
  });
});

// ------------------------------------------------------------------ plans

const mountinfo = (...lines: string[]) => parseMountInfo(['22 1 8:1 / / rw - ext4 /dev/sda1 rw', ...lines].join('\n'));
const ecryptfsLine = (id: number, at: string, ...sigs: string[]) =>
  `${id} 22 0:${id} / ${at.replace(/ /g, '\\040')} rw,nosuid,nodev - ecryptfs /proc/self/fd/21 rw,${sigs.map((s) => `ecryptfs_sig=${s}`).join(',')},ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs`;
const record = (upper: string, sigs: string[]): ExtraMountRecord => ({ upper, lower: `${upper}.enc`, sigs, where: 'x line 1', mounted: '2026-01-01T00:00:00.000Z' });

describe('what a login mounts', () => {
  const entries = user(
    [
      `/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1}`, // 1 mount
      `/home/alice/.b /home/alice/b ecryptfs ecryptfs_sig=${S1},ecryptfs_fnek_sig=${S3}`, // 2 FNEK key missing
      `/mnt/gone/enc /home/alice/c ecryptfs ecryptfs_sig=${S2}`, // 3 lower missing
      `/home/alice/.d /home/alice/d ecryptfs ecryptfs_sig=${S2}`, // 4 mounted by an earlier login
      `/home/alice/.e /home/alice/e ecryptfs ecryptfs_sig=${S2}`, // 5 something else mounted there
      `/home/alice/.a2 /home/alice/a ecryptfs ecryptfs_sig=${S2}`, // 6 same mount point as 1
      `/home/alice/.P /home/alice/Private ecryptfs ecryptfs_sig=${S2}`, // 7 ~/Private's
      `/home/alice/.f /home/alice/f ecryptfs ecryptfs_sig=${S2}`, // 8 ecryptfs there but not recorded
    ].join('\n'),
  ).entries;
  const facts: ExtraMountFacts = {
    mounts: mountinfo(ecryptfsLine(40, '/home/alice/d', S2), '41 22 0:41 / /home/alice/e rw - tmpfs tmpfs rw', ecryptfsLine(42, '/home/alice/f', S2)),
    recorded: [record('/home/alice/d', [S2])],
    hasKey: (s) => s === S1 || s === S2,
    lowerPresent: (p) => !p.startsWith('/mnt/gone'),
    privateUpper: '/home/alice/Private',
  };

  test('each entry: mount or skip, with the reason; order kept', () => {
    const plan = planExtraMounts(entries, facts);
    assert.deepEqual(
      plan.map((i) => (i.action === 'mount' ? 'mount' : i.reason)),
      ['mount', 'keys-missing', 'lower-missing', 'mounted-earlier', 'mounted-by-other', 'duplicate', 'duplicate', 'mounted-by-other'],
    );
    const detail = (n: number) => (plan[n]!.action === 'skip' ? (plan[n] as { detail: string }).detail : '');
    assert.equal(detail(1), `key(s) not in the user keyring: ${S3}`);
    assert.match(detail(2), /\/mnt\/gone\/enc is not there/);
    assert.match(detail(4), /tmpfs is already mounted there/);
    assert.match(detail(5), /also listed at ~\/\.ecryptfs\/extra-mounts line 1/);
    assert.match(detail(6), /~\/Private's mount point/);
    assert.match(detail(7), /ecryptfs is already mounted there \(not by a login\)/);
  });

  test('a recorded mount that is gone (unmounted by hand) is mounted again', () => {
    const plan = planExtraMounts(entries.slice(3, 4), { ...facts, mounts: mountinfo() });
    assert.equal(plan[0]!.action, 'mount');
  });
});

describe('what the last logout unmounts', () => {
  test('only the mount a login made is unmounted: same sigs, mount id, encrypted directory and owner', () => {
    const r = { ...record('/home/alice/a', [S1, S3]), mountId: 40, lowerIno: 777 };
    const found = (line: string, rootUid = 1000, rootIno = 777) => ({ entry: mountinfo(line)[1]!, rootUid, rootIno });
    assert.deepEqual(checkRecordedMount(r, 1000, found(ecryptfsLine(40, '/home/alice/a', S1, S3))), { kind: 'ours' });
    assert.equal(checkRecordedMount(r, 1000, null).kind, 'gone', 'unmounted by hand');
    assert.equal(checkRecordedMount(r, 1000, found('40 22 0:44 / /home/alice/a rw - tmpfs tmpfs rw')).kind, 'foreign', 'a tmpfs now');
    assert.equal(checkRecordedMount(r, 1000, found(ecryptfsLine(40, '/home/alice/a', S1))).kind, 'foreign', 'other sigs');
    assert.equal(checkRecordedMount(r, 1000, found(ecryptfsLine(41, '/home/alice/a', S1, S3))).kind, 'foreign', 'another mount (id)');
    assert.equal(checkRecordedMount(r, 1000, found(ecryptfsLine(40, '/home/alice/a', S1, S3), 1000, 778)).kind, 'foreign', 'another encrypted directory');
    assert.equal(checkRecordedMount(r, 1000, found(ecryptfsLine(40, '/home/alice/a', S1, S3), 1001)).kind, 'foreign', "another user's files");
    // a record written before mount ids were kept is checked by sigs and owner
    assert.deepEqual(checkRecordedMount(record('/home/alice/a', [S1]), 1000, found(ecryptfsLine(52, '/home/alice/a', S1), 1000, 5)), { kind: 'ours' });
  });

  test('shared sigs: a key stays while any eCryptfs mount uses it', () => {
    const both = mountinfo(ecryptfsLine(40, '/home/alice/Private', S1, S2), ecryptfsLine(41, '/home/alice/a', S1));
    assert.deepEqual(sigsNotInUse([S1, S2, S3], both), [S3]);
    const afterExtra = mountinfo(ecryptfsLine(40, '/home/alice/Private', S1, S2));
    assert.deepEqual(sigsNotInUse([S1, S3], afterExtra), [S3]);
    assert.deepEqual(sigsNotInUse([S1, S2], mountinfo()), [S1, S2]);
    assert.deepEqual(sigsNotInUse([S1], mountinfo('50 22 0:50 / /x rw - tmpfs tmpfs rw,ecryptfs_sig=' + S1)), [S1], 'only eCryptfs mounts count');
  });

  test('the session-state file: damaged or foreign content is nothing recorded', () => {
    const good = record('/home/alice/a', [S1]);
    assert.deepEqual(parseExtraMountRecords(JSON.stringify({ version: 1, uid: 1000, mounts: [good] })), [good]);
    assert.deepEqual(parseExtraMountRecords('{"mounts":[{"upper":"relative","lower":"/x","sigs":[],"where":"","mounted":""}]}'), []);
    assert.deepEqual(parseExtraMountRecords(`{"mounts":[${JSON.stringify({ ...good, sigs: ['nope'] })}]}`), []);
    assert.deepEqual(parseExtraMountRecords('{"mounts":'), []);
    assert.deepEqual(parseExtraMountRecords('null'), []);
  });
});

describe('status', () => {
  const base: StatusReport = {
    user: 'alice',
    uid: 1000,
    setup: { configDir: '/home/alice/.ecryptfs', lower: '/home/alice/.Private', upper: '/home/alice/Private', fekSig: S1, autoMount: true, autoUmount: true, wrappingIndependent: false, hasWrappedPassphrase: true },
    files: [],
    keys: { present: [S1], missing: [] },
    mounted: null,
    sessions: 1,
    lastLogin: null,
  };
  test('lists every extra mount, mounted or not, and the refused lines with their fix', () => {
    const text = renderStatus({
      ...base,
      extraMounts: {
        entries: [
          { where: '/etc/fstab line 3', lower: '/home/alice/.W', upper: '/home/alice/W', mounted: true },
          { where: '~/.ecryptfs/extra-mounts line 2', lower: '/mnt/r/enc', upper: '/home/alice/R', mounted: false },
        ],
        problems: ['~/.ecryptfs/extra-mounts line 3: unknown option "x" (fix: Remove it)'],
      },
    });
    assert.match(text, /^  extra mounts: 2 \(/m);
    assert.match(text, /^    \/home\/alice\/\.W -> \/home\/alice\/W: mounted \[\/etc\/fstab line 3\]$/m);
    assert.match(text, /^    \/mnt\/r\/enc -> \/home\/alice\/R: not mounted \[~\/\.ecryptfs\/extra-mounts line 2\]$/m);
    assert.match(text, /^    REFUSED ~\/\.ecryptfs\/extra-mounts line 3: unknown option "x" \(fix: Remove it\)$/m);
    assert.match(renderStatus({ ...base, extraMounts: { entries: [], problems: [] } }), /^  extra mounts: none$/m);
    assert.match(renderStatus({ ...base, extraMounts: { error: 'EACCES' } }), /^  extra mounts: unknown \(EACCES\)$/m);
    assert.doesNotMatch(renderStatus(base), /extra mounts/, 'absent without the field (older reports)');
  });
});

// ------------------------------------------------------------------ fuzz

describe('mutation fuzz of both parsers', () => {
  // xorshift32: deterministic, so a failure is reproducible
  let state = 0x2545f491;
  const rnd = (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const TOKENS = [' ', '\t', '\n', '\r', ',', '=', '#', '\\040', '\\', '\\0', '/', '..', '.', '\0', 'é', 'ecryptfs', 'user', 'noauto', 'suid', 'ro', `ecryptfs_sig=${S2}`, 'ecryptfs_fnek_sig=', '/home/alice', '/home/alice/.ecryptfs', '\u202e'];
  const SEEDS = [
    `/home/alice/.a /home/alice/a ecryptfs ecryptfs_sig=${S1},ecryptfs_fnek_sig=${S2},ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ro\n# c\n/srv/x /home/alice/b\\040c ecryptfs sig=${S1} 0 0\n`,
    `/home/alice/.W /home/alice/W ecryptfs rw,user,noauto,exec,ecryptfs_sig=${S1},ecryptfs_passthrough=n 0 0\nUUID=x / ext4 defaults 0 1\n`,
  ];
  const mutate = (s: string): string => {
    const chars = [...s];
    for (let k = 1 + rnd(4); k > 0; k--) {
      const at = rnd(chars.length + 1);
      switch (rnd(4)) {
        case 0:
          chars.splice(at, 1);
          break;
        case 1:
          chars.splice(at, 0, TOKENS[rnd(TOKENS.length)]!);
          break;
        case 2:
          chars.splice(at, 1 + rnd(8));
          break;
        default:
          chars.splice(at, 0, String.fromCharCode(rnd(128)));
      }
    }
    return chars.join('');
  };
  const CODES = new Set(['BAD_CONFIG', 'BAD_SIG', 'UNSAFE_PATH']);

  test('20,000 mutants: well-formed entries or typed problems naming their line; never a crash', () => {
    let entries = 0;
    let problems = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = mutate(SEEDS[i % 2]!);
      for (const parse of [parseUserExtraMounts, parseFstabExtraMounts]) {
        const p = parse(Buffer.from(text), ALICE);
        for (const e of p.entries) {
          entries++;
          assert.ok(e.upper.startsWith('/home/alice/') && !e.upper.startsWith('/home/alice/.ecryptfs/') && e.upper !== '/home/alice/.ecryptfs', e.upper);
          assert.ok(!/[\x00-\x1f\x7f]/.test(e.upper + e.lower) && e.lower.startsWith('/'), JSON.stringify(e));
          assert.ok(e.ecryptfs.sigs.length > 0);
          const rendered = renderEcryptfsOptions(e.ecryptfs); // whatever parses must render (no injection)
          assert.ok(!/(^|,)(suid|dev|exec)(,|$)/.test(rendered));
          assert.equal(rendered.split(',').filter((o) => o.startsWith('ecryptfs_sig=')).length, e.ecryptfs.sigs.length);
        }
        for (const q of p.problems) {
          problems++;
          assert.ok(q.error instanceof AgentError && CODES.has(q.error.code), String(q.error));
          assert.match(q.error.message, /(line \d+: |not valid UTF-8)/);
          assert.ok(q.error.hint.length > 0);
        }
      }
    }
    assert.ok(entries > 1000 && problems > 1000, `both outcomes exercised (${entries} entries, ${problems} problems)`);
  });
});
