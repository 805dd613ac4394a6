#!/usr/bin/env node
// Runs the compiled tests with Node's own runner so CI reads its counts.
// Suites: unit (no privileges), host (root: real keyring, pamtester, real PAM stacks),
// vm (boots Debian's kernel under qemu; see test/vm/README.md). "all" runs the three.
'use strict';
const { readdirSync, statSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const wanted = process.argv[2] || 'all';
const suites = wanted === 'all' ? ['unit', 'host', 'vm'] : wanted.split(',');

function find(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = suites.flatMap((s) => find(join(root, 'dist', 'test', s)));
if (files.length === 0) {
  console.error(`run-tests: no compiled tests for ${suites.join(',')} (run npm run build first)`);
  process.exit(1);
}
if ((suites.includes('host') || suites.includes('vm')) && process.getuid() !== 0) {
  console.error('run-tests: the host and vm suites run as root (real keyring, PAM, qemu)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', cwd: root });
process.exit(r.status === null ? 1 : r.status);
