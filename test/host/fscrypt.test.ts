/**
 * The ext4 superblocks mkfs.ext4 and tune2fs really write (e2fsprogs, in images here; nothing is
 * mounted): parseExt4Superblock sees the "encrypt" feature exactly when tune2fs turned it on, and
 * the UUID blkid reports. The rest of --to fscrypt runs in the VM (test/vm/export.vm.test.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EXT4_SUPERBLOCK_BYTES, EXT4_SUPERBLOCK_OFFSET, parseExt4Superblock } from '../../src/formats/fscrypt-facts';

const tmp = fs.mkdtempSync(join(tmpdir(), 'fscrypt-host-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const PATH = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function superblockOf(image: string): ReturnType<typeof parseExt4Superblock> {
  const fd = fs.openSync(image, 'r');
  try {
    const sb = Buffer.alloc(EXT4_SUPERBLOCK_BYTES);
    fs.readSync(fd, sb, 0, sb.length, EXT4_SUPERBLOCK_OFFSET);
    return parseExt4Superblock(sb);
  } finally {
    fs.closeSync(fd);
  }
}

test('mkfs.ext4 without, then tune2fs -O encrypt: the feature bit, the block size and blkid\'s UUID', () => {
  const image = join(tmp, 'ext4.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 << 20);
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', image], { env: PATH });
  const before = superblockOf(image);
  assert.ok(before);
  assert.equal(before.encrypt, false);
  assert.equal(before.blockSize, 4096);
  assert.equal(before.uuid, execFileSync('blkid', ['-s', 'UUID', '-o', 'value', image], { env: PATH, encoding: 'utf8' }).trim());
  execFileSync('tune2fs', ['-O', 'encrypt', image], { env: PATH, stdio: 'ignore' });
  assert.equal(superblockOf(image)?.encrypt, true);
  // mkfs.ext4 -O encrypt sets it at once; a 1 KiB-block filesystem is read as well
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', 'encrypt', image], { env: PATH });
  assert.deepEqual([superblockOf(image)?.encrypt, superblockOf(image)?.blockSize], [true, 1024]);
  // not ext4: a zeroed image
  fs.writeFileSync(image, Buffer.alloc(8192));
  assert.equal(superblockOf(image), null);
});
