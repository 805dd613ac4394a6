import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../src/errors';
import { ecryptfsMounts, findMountsAt } from '../../src/os/mount';
import { parseEcryptfsSigs, parseMountInfo, sigsOfMount, unescapeMountField } from '../../src/formats/mountinfo';

const TEXT = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  '36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue',
  '40 22 0:44 / /home/al\\040ice/Private rw,nosuid,nodev,relatime - ecryptfs /home/al\\040ice/.Private rw,ecryptfs_fnek_sig=054ad0eaff33ed88,ecryptfs_sig=2eb5a49ebe845786,ecryptfs_cipher=aes,ecryptfs_key_bytes=16,ecryptfs_unlink_sigs',
  '41 22 0:45 / /tmp/t\\011ab\\012nl\\134bs\\303\\251 rw - tmpfs none rw,size=1024k',
  '',
].join('\n');

test('fields, optional fields and the separator', () => {
  const m = parseMountInfo(TEXT);
  assert.equal(m.length, 4);
  assert.deepEqual(m[1], {
    mountId: 36, parentId: 35, major: 98, minor: 0, root: '/mnt1', mountPoint: '/mnt/parent', mountOptions: 'rw,noatime',
    optionalFields: ['master:1', 'shared:7'], fsType: 'ext3', source: '/dev/root', superOptions: 'rw,errors=continue',
  });
  assert.deepEqual(m[2]!.optionalFields, []);
});

test('octal escapes (space, tab, newline, backslash, UTF-8 bytes) are undone', () => {
  const m = parseMountInfo(TEXT);
  assert.equal(m[2]!.mountPoint, '/home/al ice/Private');
  assert.equal(m[2]!.source, '/home/al ice/.Private');
  assert.equal(m[3]!.mountPoint, '/tmp/t\tab\nnl\\bsé');
  assert.equal(unescapeMountField('a\\04'), 'a\\04');
  assert.equal(unescapeMountField('\\101\\102'), 'AB');
});

test('eCryptfs mounts and their sigs', () => {
  const m = parseMountInfo(TEXT);
  const e = ecryptfsMounts(m);
  assert.equal(e.length, 1);
  assert.deepEqual(parseEcryptfsSigs(e[0]!), { sigs: ['2eb5a49ebe845786'], fnekSig: '054ad0eaff33ed88' });
  assert.deepEqual(sigsOfMount(e[0]!), ['2eb5a49ebe845786', '054ad0eaff33ed88']);
  assert.deepEqual(sigsOfMount(m[0]!), []);
  assert.deepEqual(findMountsAt('/home/al ice/Private', m).map((x) => x.mountId), [40]);
});

test('malformed lines are an error, not silently skipped', () => {
  for (const bad of ['1 2 3', '36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 ext3 /dev/root rw', 'x 35 98:0 / / rw - ext3 /dev/root rw']) {
    assert.throws(() => parseMountInfo(bad), (e: unknown) => e instanceof AgentError && e.code === 'IO', bad);
  }
});
