import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { isAgentError } from '../../src/errors';
import { DEFAULT_SALT } from '../../src/formats/kdf';
import { readEcryptfsrcSalt } from '../../src/actions/private-setup';

let home: string;
// gid: a group the test's files do not have, so group write is not the owner's private group's
const me = { uid: process.getuid!(), gid: process.getgid!() + 4242, name: os.userInfo().username };
before(() => {
  home = fs.mkdtempSync(join(os.tmpdir(), 'private-setup-'));
});
after(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

function writeRc(text: string, mode: number): string {
  const p = join(home, '.ecryptfsrc');
  fs.rmSync(p, { force: true });
  fs.writeFileSync(p, text);
  fs.chmodSync(p, mode);
  return p;
}

test('~/.ecryptfsrc: absent → the default salt; the owner\'s, not writable by others → its salt', () => {
  fs.rmSync(join(home, '.ecryptfsrc'), { force: true });
  assert.deepEqual(readEcryptfsrcSalt(home, me), DEFAULT_SALT);
  for (const mode of [0o600, 0o644, 0o400]) {
    writeRc('salt=a1b2c3d4e5f60718\n', mode);
    assert.deepEqual(readEcryptfsrcSalt(home, me), Buffer.from('a1b2c3d4e5f60718', 'hex'), mode.toString(8));
  }
});

test('~/.ecryptfsrc writable by group or others is refused (BAD_OWNER) with the chmod to run', () => {
  for (const mode of [0o664, 0o620, 0o646, 0o666]) {
    const p = writeRc('salt=a1b2c3d4e5f60718\n', mode);
    const oct = mode.toString(8).padStart(4, '0');
    assert.throws(
      () => readEcryptfsrcSalt(home, me),
      (e) => isAgentError(e, 'BAD_OWNER') && e.message === `${p} has mode ${oct}: group or others may write it` && e.hint === `chmod go-w ${p}`,
      oct,
    );
  }
});

test("~/.ecryptfsrc writable by the owner's own group (user private group, umask 002) is accepted; by others, still refused", () => {
  const p = writeRc('salt=a1b2c3d4e5f60718\n', 0o664);
  const owner = { ...me, gid: fs.statSync(p).gid };
  assert.deepEqual(readEcryptfsrcSalt(home, owner), Buffer.from('a1b2c3d4e5f60718', 'hex'));
  writeRc('salt=a1b2c3d4e5f60718\n', 0o666);
  assert.throws(() => readEcryptfsrcSalt(home, owner), (e) => isAgentError(e, 'BAD_OWNER') && e.message === `${p} has mode 0666: group or others may write it`);
});

test("~/.ecryptfsrc of someone else is refused (BAD_OWNER) with the chown to run; root's is accepted", () => {
  const p = writeRc('# nothing\n', 0o644);
  const other = { uid: me.uid + 4242, gid: me.gid, name: 'someone' };
  if (me.uid === 0) {
    assert.deepEqual(readEcryptfsrcSalt(home, other), DEFAULT_SALT, 'a root-owned file is trusted for any user');
  } else {
    assert.throws(
      () => readEcryptfsrcSalt(home, other),
      (e) => isAgentError(e, 'BAD_OWNER') && e.message === `${p} is owned by uid ${me.uid}, not by someone or root` && e.hint === `chown someone: ${p}`,
    );
  }
});
