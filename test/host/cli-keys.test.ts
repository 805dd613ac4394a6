/** `ecryptfs-agent keys` / `forget` against the real keyring, as a throwaway user. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO } from '../helpers/agent';
import { asUserRun, createUser, deleteUser, userKeys } from '../helpers/users';

const u = createUser('eatkeys');
after(() => deleteUser(u));
const cli = join(REPO, 'bin', 'ecryptfs-agent');
// Each call in its own fresh session keyring, like a login that did not link @u.
const run = (args: string[], input?: string) => asUserRun(u, ['keyctl', 'session', '-', cli, ...args], input);

test('keys lists what add-passphrase added; forget unlinks it; the kernel agrees', () => {
  const empty = run(['keys']);
  assert.equal(empty.status, 0);
  assert.match(empty.stdout, /No eCryptfs auth toks/);
  const add = run(['add-passphrase', '-'], 'testpass\n');
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /Inserted auth tok with sig \[2eb5a49ebe845786\] into the user session keyring/);
  const listed = run(['keys']);
  assert.match(listed.stdout, /^2eb5a49ebe845786 {2}[0-9a-f]{8} {4}\(no mount\)$/m);
  assert.deepEqual(userKeys(u).map((k) => k.description), ['2eb5a49ebe845786']);
  const missing = run(['forget', '0123456789abcdef']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no auth tok with sig \[0123456789abcdef\]/);
  const forget = run(['forget']);
  assert.equal(forget.status, 0, forget.stderr);
  assert.match(forget.stdout, /Removed auth tok with sig \[2eb5a49ebe845786\]/);
  assert.deepEqual(userKeys(u), []);
  assert.equal(run(['forget', 'not-a-sig']).status, 2);
});
