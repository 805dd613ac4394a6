#!/usr/bin/env node
// Runs the compiled tests with Node's own runner so CI reads its counts.
// Suites: unit (no privileges), host (root: real keyring, pamtester, real PAM stacks),
// vm (boots Debian's kernel under qemu; see test/vm/README.md). "all" runs the three.
'use strict';
const { readdirSync, readFileSync, statSync, existsSync } = require('node:fs');
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
// Two test processes at a time when VM suites run: a TCG guest keeps about one core busy, so a
// second file (host tests, another VM) uses the other one. Host files stay serial among themselves
// (test/helpers/serial-host.ts). ECRYPTFS_AGENT_TEST_JOBS overrides (1 = everything serial).
const jobs = Number(process.env.ECRYPTFS_AGENT_TEST_JOBS || (suites.includes('vm') ? 2 : 1));
if (!(jobs >= 1)) {
  console.error('run-tests: ECRYPTFS_AGENT_TEST_JOBS must be a positive number');
  process.exit(1);
}
// Order (node --test would sort by path; scripts/run-ordered.js keeps this one): the VM files
// longest first, so that the two longest run side by side, then the host and unit files. "Longest"
// is what the last run measured: run-ordered.js writes each VM file's wall time to
// test/vm/durations.json after every run (no hand-kept figures). A file with no figure yet goes
// first: a new suite never ends up alone at the end.
const DURATIONS = join(root, 'test', 'vm', 'durations.json');
let measured = {};
try {
  measured = JSON.parse(readFileSync(DURATIONS, 'utf8')).seconds ?? {};
} catch {
  // no figures yet: every VM file counts as long, in path order
}
const seconds = (f) => measured[f.slice(f.lastIndexOf('/') + 1)] ?? Infinity;
const isVm = (f) => f.includes('/dist/test/vm/');
const vm = files.filter(isVm).sort((a, b) => seconds(b) - seconds(a));
const ordered = jobs > 1 ? [...vm, ...files.filter((f) => !isVm(f))] : files;
const preload = join(root, 'dist', 'test', 'helpers', 'serial-host.js');
const r = spawnSync(
  process.execPath,
  ['--require', preload, join(__dirname, 'run-ordered.js'), String(jobs), ...ordered],
  { stdio: 'inherit', cwd: root, env: { ...process.env, ECRYPTFS_AGENT_DURATIONS: DURATIONS } },
);
process.exit(r.status === null ? 1 : r.status);
