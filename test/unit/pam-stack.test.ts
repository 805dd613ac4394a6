/**
 * PAM stacks as Linux-PAM runs them (src/formats/pam-stack.ts) and doctor's findings on real
 * layouts (src/formats/pam-doctor.ts): Debian 12 after pam-auth-update with our profile, Gentoo
 * pambase (faillock, passwdqc), Arch pambase, Fedora's authselect local profile, all under
 * test/fixtures/pam/stacks/; then the usual mistakes, each with its exact finding and fix.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Finding, PamFacts } from '../../src/formats/doctor';
import { checkPam, pamLayout } from '../../src/formats/pam-doctor';
import { actionFor, evaluateStack, type FlatEntry, type PamLookup, parsePamFile, resolveStack, succeedIf } from '../../src/formats/pam-stack';

const FIXTURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'pam', 'stacks');

/** A fixture as doctor-facts would gather it, with `edit` applied to some files' text. */
function layout(name: string, edit: Record<string, (t: string) => string> = {}): PamFacts {
  const dir = join(FIXTURES, name, 'etc', 'pam.d');
  const files = readdirSync(dir)
    .filter((f) => !(f in edit) || edit[f] !== undefined)
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      return { path: `/etc/pam.d/${f}`, text: edit[f] ? (edit[f] as (t: string) => string)(text) : text };
    });
  return { dir: '/etc/pam.d', files, osRelease: readFileSync(join(FIXTURES, name, 'etc', 'os-release'), 'utf8') };
}
const byId = (fs: Finding[], id: string): Finding => {
  const f = fs.find((x) => x.id === id);
  assert.ok(f, `no finding ${id} in ${JSON.stringify(fs.map((x) => x.id))}`);
  return f;
};
const notOk = (fs: Finding[]): Array<[string, string]> => fs.filter((f) => f.status !== 'ok').map((f) => [f.id, f.status]);
const lookupOf =
  (files: Record<string, string>): PamLookup =>
  (name) => {
    const path = name.startsWith('/') ? name : `/p/${name}`;
    return files[path] === undefined ? null : { path, text: files[path] as string };
  };
/** The modules a stack reaches on the modelled path, and whether it succeeds. */
function run(files: Record<string, string>, service: string, type: 'auth' | 'session' | 'password' = 'auth'): { reached: string[]; ok: boolean } {
  const s = resolveStack(lookupOf(files), service, type);
  const p = evaluateStack(s);
  return { reached: p.reached.map((i) => `${(s.entries[i] as FlatEntry).rule.module}`), ok: p.succeeds };
}

// ------------------------------------------------------------------ Linux-PAM semantics

test('parsing: @include, include/substack lines, "-type", brackets with spaces, comments, case of the type', () => {
  const l = parsePamFile('/p/x', '# c\n@include common-auth\n-session optional pam_x.so a b # tail\nAuth [success=1  default=ignore] pam_unix.so nullok\nauth substack system-auth\nbogus line here\n');
  assert.deepEqual(
    l.map((x) => ('atInclude' in x ? ['@', x.line, x.atInclude] : [x.type, x.line, x.control, x.module, x.args.join(','), x.dash])),
    [
      ['@', 2, 'common-auth'],
      ['session', 3, 'optional', 'pam_x.so', 'a,b', true],
      ['auth', 4, '[success=1 default=ignore]', 'pam_unix.so', 'nullok', false],
      ['auth', 5, 'substack', 'system-auth', '', false],
    ],
  );
});

test('control values: keywords as their brackets, default=, jumps, unspecified → bad', () => {
  assert.equal(actionFor('required', 'success'), 'ok');
  assert.equal(actionFor('required', 'auth_err'), 'bad');
  assert.equal(actionFor('requisite', 'auth_err'), 'die');
  assert.equal(actionFor('sufficient', 'success'), 'done');
  assert.equal(actionFor('sufficient', 'user_unknown'), 'ignore');
  assert.equal(actionFor('optional', 'auth_err'), 'ignore');
  assert.equal(actionFor('[success=2 default=ignore]', 'success'), 2);
  assert.equal(actionFor('[success=2 default=ignore]', 'user_unknown'), 'ignore');
  assert.equal(actionFor('[default=die]', 'success'), 'die');
  assert.equal(actionFor('[success=ok]', 'auth_err'), 'bad');
  assert.equal(actionFor('[success=1 new_authtok_reqd=1 ignore=ignore default=bad]', 'ignore'), 'ignore');
});

test('pam_succeed_if: service and uid conditions on the modelled user (uid 1000), others true', () => {
  assert.equal(succeedIf(['service', 'in', 'crond', 'quiet', 'use_uid'], 'login'), false);
  assert.equal(succeedIf(['service', 'in', 'crond:login'], 'login'), true);
  assert.equal(succeedIf(['service', '!~', 'gdm*', 'service', '!~', 'su*', 'quiet'], 'login'), true);
  assert.equal(succeedIf(['service', '!~', 'gdm*', 'service', '!~', 'su*', 'quiet'], 'su'), false);
  assert.equal(succeedIf(['uid', '>=', '1000', 'quiet_success'], 'login'), true);
  assert.equal(succeedIf(['uid', '=', '0', 'use_uid', 'quiet'], 'su'), false);
  assert.equal(succeedIf(['user', 'ingroup', 'wheel'], 'su'), true);
});

test('include inlines one type and a jump crosses its end; @include inlines the file; die ends all', () => {
  const files = {
    '/p/svc': 'auth include common\nauth optional pam_after.so\nsession include common\n',
    '/p/common': 'auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\nsession required pam_unix.so\n',
  };
  // pam_unix jumps over pam_deny, the last line of common: evaluation goes on in svc
  assert.deepEqual(run(files, 'svc'), { reached: ['pam_unix.so', 'pam_after.so'], ok: true });
  assert.deepEqual(run(files, 'svc', 'session'), { reached: ['pam_unix.so'], ok: true });
  const at = { '/p/svc': '@include common\nauth optional pam_after.so\n', '/p/common': 'auth required pam_unix.so\n' };
  assert.deepEqual(run(at, 'svc'), { reached: ['pam_unix.so', 'pam_after.so'], ok: true });
  const die = { '/p/svc': 'auth include common\nauth optional pam_after.so\n', '/p/common': 'auth required pam_unix.so\nauth [default=die] pam_faillock.so authfail\n' };
  assert.deepEqual(run(die, 'svc'), { reached: ['pam_unix.so', 'pam_faillock.so'], ok: false });
});

test('substack: done and die end only the substack, a jump cannot leave it, the parent jumps over it as one line', () => {
  const sub = { '/p/svc': 'auth substack sa\nauth optional pam_after.so\n', '/p/sa': 'auth sufficient pam_unix.so\nauth required pam_deny.so\n' };
  assert.deepEqual(run(sub, 'svc'), { reached: ['pam_unix.so', 'pam_after.so'], ok: true });
  const asInclude = { ...sub, '/p/svc': 'auth include sa\nauth optional pam_after.so\n' };
  assert.deepEqual(run(asInclude, 'svc'), { reached: ['pam_unix.so'], ok: true }, 'include: done ends the whole stack');
  const dieSub = { '/p/svc': 'auth substack sa\nauth optional pam_after.so\n', '/p/sa': 'auth required pam_unix.so\nauth requisite pam_deny.so\nauth optional pam_x.so\n' };
  assert.deepEqual(run(dieSub, 'svc'), { reached: ['pam_unix.so', 'pam_deny.so', 'pam_after.so'], ok: false });
  const overSub = { '/p/svc': 'auth [success=1 default=ignore] pam_unix.so\nauth substack sa\nauth optional pam_after.so\n', '/p/sa': 'auth requisite pam_deny.so\nauth requisite pam_deny.so\n' };
  assert.deepEqual(run(overSub, 'svc'), { reached: ['pam_unix.so', 'pam_after.so'], ok: true });
  const jumpOut = { '/p/svc': 'auth substack sa\nauth optional pam_after.so\n', '/p/sa': 'auth [success=3 default=bad] pam_unix.so\n' };
  assert.deepEqual(run(jumpOut, 'svc'), { reached: ['pam_unix.so', 'pam_after.so'], ok: false }, 'a jump past the end is "bad jump in stack"');
});

test('reset, alternatives that decline (rootok, systemd_home), "-" lines are run', () => {
  const files = {
    '/p/svc': 'auth required pam_deny.so\nauth [default=reset] pam_x.so\nauth sufficient pam_rootok.so\n-auth [success=2 default=ignore] pam_systemd_home.so\nauth required pam_unix.so\nauth optional pam_y.so\n',
  };
  assert.deepEqual(run(files, 'svc'), { reached: ['pam_deny.so', 'pam_x.so', 'pam_rootok.so', 'pam_systemd_home.so', 'pam_unix.so', 'pam_y.so'], ok: true });
});

test('resolution: a missing include fails the stack and is recorded; loops and depth are cut', () => {
  const missing = resolveStack(lookupOf({ '/p/svc': 'auth required pam_unix.so\nauth include gone\n' }), 'svc', 'auth');
  assert.deepEqual(missing.problems, [{ kind: 'missing-include', from: { file: '/p/svc', line: 2 }, target: 'gone' }]);
  assert.equal(evaluateStack(missing).succeeds, false);
  const loop = resolveStack(lookupOf({ '/p/svc': 'auth include a\n', '/p/a': 'auth required pam_unix.so\nauth include svc\n' }), 'svc', 'auth');
  assert.deepEqual(loop.problems.map((p) => p.kind), ['loop']);
  assert.equal(loop.entries.length, 1);
  const deep: Record<string, string> = {};
  for (let i = 0; i < 40; i++) deep[`/p/f${i}`] = `auth include f${i + 1}\n`;
  assert.deepEqual(resolveStack(lookupOf(deep), 'f0', 'auth').problems.map((p) => p.kind), ['too-deep']);
  assert.equal(resolveStack(lookupOf({}), 'svc', 'auth').absent, true);
});

test('layout from os-release (ID, ID_LIKE), else from the files', () => {
  assert.equal(pamLayout('ID=ubuntu\nID_LIKE=debian\n', new Set()), 'debian');
  assert.equal(pamLayout('ID="rocky"\nID_LIKE="rhel centos fedora"\n', new Set()), 'fedora');
  assert.equal(pamLayout('ID=manjaro\nID_LIKE=arch\n', new Set()), 'arch');
  assert.equal(pamLayout('ID=gentoo\n', new Set()), 'gentoo');
  assert.equal(pamLayout(null, new Set(['common-auth'])), 'debian');
  assert.equal(pamLayout(null, new Set(['system-auth', 'postlogin'])), 'fedora');
  assert.equal(pamLayout(null, new Set(['system-auth'])), 'other');
});

// ------------------------------------------------------------------ real layouts, lines as docs/install.md places them

test('Debian 12 after pam-auth-update with our profile: every stack reaches our lines, nothing else to do', () => {
  const f = checkPam(layout('debian12'));
  assert.deepEqual(notOk(f), []);
  assert.deepEqual(f.map((x) => x.id), ['pam.auth.login', 'pam.session.login', 'pam.auth.sshd', 'pam.session.sshd', 'pam.auth.su', 'pam.session.su', 'pam.password.passwd', 'pam.leftover']);
  assert.match(byId(f, 'pam.auth.su').why, /common-auth:25\), after pam_unix\.so \(\/etc\/pam\.d\/common-auth:17\)/);
});

test('Gentoo pambase (faillock, passwdqc) with our lines in system-auth: reached through login/sshd → system-*-login → system-login → system-auth', () => {
  const f = checkPam(layout('gentoo'));
  assert.deepEqual(notOk(f), []);
  assert.match(byId(f, 'pam.auth.sshd').why, /system-auth:5\), after pam_unix\.so \(\/etc\/pam\.d\/system-auth:3\)/);
  assert.match(byId(f, 'pam.password.passwd').why, /system-auth:10\), after pam_unix\.so \(\/etc\/pam\.d\/system-auth:9\)/);
});

test('Arch pambase with our lines (system-auth, system-login): login and sshd reached; su and passwd use pam_unix directly, the fix says where', () => {
  const f = checkPam(layout('arch'));
  assert.deepEqual(notOk(f), [
    ['pam.auth.su', 'warn'],
    ['pam.session.su', 'warn'],
    ['pam.password.passwd', 'warn'],
  ]);
  assert.equal(byId(f, 'pam.auth.su').fix, 'Add "auth     optional  pam_ecryptfs_agent.so unwrap" to /etc/pam.d/su after line 7 ("auth required pam_unix.so")');
  assert.equal(byId(f, 'pam.session.su').fix, 'Add "session  optional  pam_ecryptfs_agent.so unwrap" to /etc/pam.d/su after line 9 ("session required pam_unix.so")');
  assert.match(byId(f, 'pam.session.login').why, /system-login:16\)/);
});

test('Fedora authselect local profile (with-faillock) with our lines in postlogin and system-auth/password-auth: all reached', () => {
  const f = checkPam(layout('fedora'));
  assert.deepEqual(notOk(f), []);
  assert.match(byId(f, 'pam.auth.login').why, /postlogin:6\), after pam_unix\.so \(\/etc\/pam\.d\/system-auth:9\)/);
  assert.match(byId(f, 'pam.session.sshd').why, /password-auth:/);
  assert.match(byId(f, 'pam.password.passwd').why, /postlogin:7\), after pam_unix\.so \(\/etc\/pam\.d\/system-auth:17\)/);
});

// ------------------------------------------------------------------ the usual mistakes

const dropOurs = (t: string): string => t.replace(/^.*pam_ecryptfs_agent\.so.*$/gm, '#');

test('Gentoo: our auth line above pam_unix → fail, the fix names system-auth and the faillock authfail line', () => {
  const f = checkPam(
    layout('gentoo', {
      'system-auth': (t) => `auth\t\toptional\tpam_ecryptfs_agent.so unwrap\n${t.replace(/^auth\t\toptional\tpam_ecryptfs_agent.*$/m, '#')}`,
    }),
  );
  const a = byId(f, 'pam.auth.login');
  assert.equal(a.status, 'fail');
  assert.equal(a.why, 'pam_ecryptfs_agent.so comes before pam_unix.so in login\'s auth stack (/etc/pam.d/system-auth:1 before /etc/pam.d/system-auth:4): the password is not known yet when it runs');
  assert.equal(a.fix, 'Move line 1 of /etc/pam.d/system-auth: Add "auth     optional  pam_ecryptfs_agent.so unwrap" to /etc/pam.d/system-auth after line 5 ("auth [default=die] pam_faillock.so authfail")');
  assert.equal(byId(f, 'pam.auth.sshd').status, 'warn');
});

test('Gentoo: our auth line right after pam_unix is skipped by its success=1 jump, which then lands on faillock authfail: every login fails', () => {
  const f = checkPam(
    layout('gentoo', {
      'system-auth': (t) => t.replace(/^auth\t\toptional\tpam_ecryptfs_agent.*\n/m, '').replace(/(pam_unix\.so nullok  try_first_pass\n)/, '$1auth\t\toptional\tpam_ecryptfs_agent.so unwrap\n'),
    }),
  );
  const a = byId(f, 'pam.auth.login');
  assert.equal(a.status, 'fail');
  assert.equal(
    a.why,
    'with the right password login\'s auth stack fails at /etc/pam.d/system-auth:5 ("auth [default=die] pam_faillock.so authfail"); pam_ecryptfs_agent.so (/etc/pam.d/system-auth:4) is skipped by the jump of /etc/pam.d/system-auth:3 ("auth [success=1 new_authtok_reqd=1 ignore=ignore default=bad] pam_unix.so nullok try_first_pass")',
  );
  assert.match(a.fix, /^Take the pam_ecryptfs_agent\.so line out of there\. Add "auth +optional +pam_ecryptfs_agent\.so unwrap" to \/etc\/pam\.d\/system-auth after line 5 \("auth \[default=die\] pam_faillock\.so authfail"\)$/);
});

test('Debian: a jump count that skips our line (success=2 over pam_deny and us) → never reached, the fix puts it after pam_permit', () => {
  const f = checkPam(
    layout('debian12', {
      'common-auth': (t) =>
        dropOurs(t)
          .replace('auth\t[success=1 default=ignore]\tpam_unix.so nullok', 'auth\t[success=2 default=ignore]\tpam_unix.so nullok')
          .replace('auth\trequisite\t\t\tpam_deny.so\n', 'auth\trequisite\t\t\tpam_deny.so\nauth\toptional\tpam_ecryptfs_agent.so unwrap\n'),
    }),
  );
  const a = byId(f, 'pam.auth.login');
  assert.equal(a.status, 'fail');
  assert.equal(a.why, 'pam_ecryptfs_agent.so at /etc/pam.d/common-auth:20 is never reached in login\'s auth stack when the password is right: skipped by the jump of /etc/pam.d/common-auth:17 ("auth [success=2 default=ignore] pam_unix.so nullok")');
  assert.match(a.fix, /^Move line 20 of \/etc\/pam\.d\/common-auth: Run pam-auth-update --enable ecryptfs-agent \(the package's profile\), or add "auth .*" to \/etc\/pam\.d\/common-auth after line 27 \("auth optional pam_cap\.so"\)$/);
});

test('Debian: no lines at all (profile disabled) → auth/session fail for login, warn for sshd/su; password warns', () => {
  const f = checkPam(layout('debian12', { 'common-auth': dropOurs, 'common-session': dropOurs, 'common-password': dropOurs }));
  assert.deepEqual(notOk(f), [
    ['pam.auth.login', 'fail'],
    ['pam.session.login', 'fail'],
    ['pam.auth.sshd', 'warn'],
    ['pam.session.sshd', 'warn'],
    ['pam.auth.su', 'warn'],
    ['pam.session.su', 'warn'],
    ['pam.password.passwd', 'warn'],
  ]);
  assert.match(byId(f, 'pam.session.login').fix, /to \/etc\/pam\.d\/common-session after line \d+ \("session optional pam_systemd\.so"\)$/);
  assert.match(byId(f, 'pam.password.passwd').fix, /"password optional  pam_ecryptfs_agent\.so" to \/etc\/pam\.d\/common-password after line \d+ \("password required pam_permit\.so"\)$/);
});

test('Fedora: our auth line after the sufficient pam_unix in system-auth → never reached; the fix is the authselect profile’s postlogin', () => {
  const f = checkPam(
    layout('fedora', {
      postlogin: dropOurs,
      'system-auth': (t) => t.replace('auth        sufficient                                   pam_unix.so nullok\n', '$&auth        optional                                     pam_ecryptfs_agent.so unwrap\n'),
    }),
  );
  const a = byId(f, 'pam.auth.login');
  assert.equal(a.status, 'fail');
  assert.equal(
    a.why,
    'pam_ecryptfs_agent.so at /etc/pam.d/system-auth:10 is never reached in login\'s auth stack when the password is right: the auth stack has already ended at /etc/pam.d/system-auth:9 ("auth sufficient pam_unix.so nullok"), which succeeded',
  );
  assert.equal(
    a.fix,
    'Move line 10 of /etc/pam.d/system-auth: In an authselect custom profile (authselect create-profile ecryptfs-agent -b local, docs/install.md) add "auth     optional  pam_ecryptfs_agent.so unwrap" at the top of postlogin, then authselect select custom/ecryptfs-agent',
  );
  assert.equal(byId(f, 'pam.auth.sshd').status, 'warn', 'sshd goes through password-auth: not there at all');
  assert.match(byId(f, 'pam.auth.sshd').why, /is not in sshd's auth stack/);
  assert.match(byId(f, 'pam.password.passwd').fix, /add "password optional  pam_ecryptfs_agent\.so" at the top of postlogin/);
});

test('pam_ecryptfs.so next to ours: double unlock named per service; a missing included file fails', () => {
  const f = checkPam(
    layout('gentoo', {
      'system-auth': (t) => t.replace(/^(auth\t\toptional\tpam_ecryptfs_agent.*)$/m, '$1\nauth\t\trequired\tpam_ecryptfs.so unwrap'),
      'system-remote-login': undefined as unknown as (t: string) => string,
    }),
  );
  const l = byId(f, 'pam.leftover');
  assert.equal(l.status, 'warn');
  assert.match(l.why, /\/etc\/pam\.d\/system-auth:6 \(auth\)\): both modules unlock and mount in login auth, su auth/);
  const inc = f.filter((x) => x.id === 'pam.include');
  assert.deepEqual(inc.map((x) => x.status), ['fail', 'fail']);
  assert.equal(inc[0]?.why, '/etc/pam.d/sshd:1 includes system-remote-login, which does not exist: Linux-PAM fails every stack that goes through it');
  assert.equal(byId(f, 'pam.auth.sshd').status, 'warn', 'its include is what fails');
});

test('hostile controls and arguments: every line of every fixture given each odd control still yields one finding per stack', () => {
  const odd = ['[success=99 default=1]', '[default=reset]', '[]', '[success= =ok]', '[success=done default=die]', 'include', 'substack', 'bogus', '[success=-1]'];
  let runs = 0;
  for (const name of ['debian12', 'gentoo', 'arch', 'fedora']) {
    const base = layout(name);
    for (const file of base.files) {
      const lines = file.text.split('\n');
      lines.forEach((l, i) => {
        const m = /^(-?\w+\s+)(\[[^\]]*\]|\S+)(\s+.*)$/.exec(l);
        if (!m) return;
        for (const c of odd) {
          const text = [...lines.slice(0, i), `${m[1]}${c}${m[3]}`, ...lines.slice(i + 1)].join('\n');
          const f = checkPam({ ...base, files: base.files.map((x) => (x === file ? { ...x, text } : x)) });
          assert.equal(f.filter((x) => /^pam\.(auth|session|password)\./.test(x.id)).length, 7);
          runs++;
        }
      });
    }
  }
  assert.ok(runs > 500, String(runs));
  assert.equal(succeedIf(['service', '=~', '[', 'service', '!~', '(*'], 'login'), false);
});

test('Fedora: no session line in system-auth → the fix names the template line (not a number) of the authselect profile', () => {
  const f = checkPam(layout('fedora', { 'system-auth': dropOurs }));
  assert.deepEqual(notOk(f), [
    ['pam.session.login', 'fail'],
    ['pam.session.su', 'warn'],
  ]);
  assert.equal(
    byId(f, 'pam.session.login').fix,
    'In an authselect custom profile (authselect create-profile ecryptfs-agent -b local, docs/install.md) add "session  optional  pam_ecryptfs_agent.so unwrap" to system-auth after the line "session required pam_unix.so", then authselect select custom/ecryptfs-agent',
  );
});
