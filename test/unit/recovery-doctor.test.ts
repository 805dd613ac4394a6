/**
 * doctor and a missing eCryptfs module (found while writing the recovery VM proof): modules.dep
 * still listing ecryptfs.ko whose file is gone (modprobe fails) was reported as "not loaded, but
 * the kernel has the module" (warn) with modprobe as the fix. It is now a failure that says
 * which file is missing. Rules are pure (checkKernel); the facts come from a fake modules tree.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkKernel, ecryptfsModuleInDep, type KernelFacts } from '../../src/formats/doctor';
import { gatherKernelFacts } from '../../src/actions/doctor-facts';

const DEP = [
  'kernel/fs/mbcache.ko:',
  'kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
  'kernel/fs/ecryptfs/ecryptfs.ko:',
  'kernel/fs/ubifs/ubifs.ko: kernel/drivers/mtd/ubi/ubi.ko',
].join('\n');

test('ecryptfsModuleInDep: the path modules.dep gives (compressed too), not a dependency of another module', () => {
  assert.equal(ecryptfsModuleInDep(DEP), 'kernel/fs/ecryptfs/ecryptfs.ko');
  assert.equal(ecryptfsModuleInDep('kernel/fs/ecryptfs/ecryptfs.ko.xz: kernel/lib/x.ko.xz\n'), 'kernel/fs/ecryptfs/ecryptfs.ko.xz');
  assert.equal(ecryptfsModuleInDep('kernel/fs/foo.ko: kernel/fs/ecryptfs/ecryptfs.ko\n'), null, 'a dependency is not a listing');
  assert.equal(ecryptfsModuleInDep('kernel/fs/notecryptfs.ko:\n'), null);
  assert.equal(ecryptfsModuleInDep(''), null);
});

const base: KernelFacts = { procFilesystems: 'nodev\tsysfs\n\text4\n', ecryptfsVersion: null, moduleAvailable: 'absent', release: '6.1.0-test', procCrypto: 'name : aes\n' };

test('checkKernel: a module file listed but missing fails and names the file and the reinstall fix (it used to warn "mount loads it")', () => {
  const f = checkKernel({ ...base, moduleAvailable: 'file-missing', moduleFile: '/lib/modules/6.1.0-test/kernel/fs/ecryptfs/ecryptfs.ko' }).find((x) => x.id === 'kernel.ecryptfs');
  assert.equal(f?.status, 'fail');
  assert.match(f?.why ?? '', /module missing: modules\.dep of kernel 6\.1\.0-test lists \/lib\/modules\/6\.1\.0-test\/kernel\/fs\/ecryptfs\/ecryptfs\.ko, but the file is not there/);
  assert.match(f?.fix ?? '', /apt-get install --reinstall linux-image-6\.1\.0-test/);
  assert.equal(checkKernel({ ...base, moduleAvailable: 'module' }).find((x) => x.id === 'kernel.ecryptfs')?.status, 'warn', 'a present module still only warns');
});

const root = fs.mkdtempSync(join(os.tmpdir(), 'eat-modules-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

test('gatherKernelFacts: builtin / listed and present / listed but missing / not listed / no index, for this kernel release', () => {
  const dir = join(root, os.release());
  const ko = join(dir, 'kernel', 'fs', 'ecryptfs', 'ecryptfs.ko');
  assert.equal(gatherKernelFacts(root).moduleAvailable, 'unknown', 'no modules directory at all');
  fs.mkdirSync(join(dir, 'kernel', 'fs', 'ecryptfs'), { recursive: true });
  fs.writeFileSync(join(dir, 'modules.dep'), DEP);
  assert.deepEqual(
    (({ moduleAvailable, moduleFile }) => ({ moduleAvailable, moduleFile }))(gatherKernelFacts(root)),
    { moduleAvailable: 'file-missing', moduleFile: ko },
  );
  fs.writeFileSync(ko, 'ELF');
  assert.equal(gatherKernelFacts(root).moduleAvailable, 'module');
  fs.writeFileSync(join(dir, 'modules.dep'), DEP.replace('kernel/fs/ecryptfs/ecryptfs.ko:\n', ''));
  assert.equal(gatherKernelFacts(root).moduleAvailable, 'absent');
  fs.writeFileSync(join(dir, 'modules.builtin'), 'kernel/fs/ecryptfs/ecryptfs.ko\n');
  assert.equal(gatherKernelFacts(root).moduleAvailable, 'builtin');
});
