import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAgentError } from '../../src/errors';
import { APPROVED_FS_TYPES, checkMountPointSyntax } from '../../src/formats/paths';

test('mount point syntax: absolute and normal only', () => {
  checkMountPointSyntax('/home/alice/Private');
  for (const bad of ['Private', '/home/alice/../bob/Private', '/home/alice/./Private', '/home//alice', '/home/alice/Private/', '/', '/a\0b']) {
    assert.throws(() => checkMountPointSyntax(bad), (e) => isAgentError(e, 'UNSAFE_PATH'), bad);
  }
});

test('filesystem whitelist is the one of mount.ecryptfs_private 111 (no procfs, sysfs, devtmpfs)', () => {
  assert.equal(APPROVED_FS_TYPES.size, 22);
  assert.ok(APPROVED_FS_TYPES.has(0xef53));
  assert.ok(APPROVED_FS_TYPES.has(0x01021994));
  assert.ok(!APPROVED_FS_TYPES.has(0x9fa0), 'procfs refused');
  assert.ok(!APPROVED_FS_TYPES.has(0x62656572), 'sysfs refused');
});
