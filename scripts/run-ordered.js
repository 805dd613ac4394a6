#!/usr/bin/env node
// Runs test files with Node's own runner in the order given (node --test sorts them by path),
// two or more at a time, and prints TAP like `node --test` does, so CI reads the same counts.
//   node --require dist/test/helpers/serial-host.js scripts/run-ordered.js JOBS FILE...
// Each test process inherits this process's --require (the runner passes its execArgv on).
// With ECRYPTFS_AGENT_DURATIONS=FILE, each VM test file's wall time (seconds, its top-level tests
// summed) is merged into FILE, which scripts/run-tests.js orders the next run by.
// After the TAP, a short list of the failed tests (file, name, first lines of the error), so a
// reader who sees only the end of a long CI log still learns what failed.
'use strict';
const { readFileSync, renameSync, writeFileSync, writeSync } = require('node:fs');
const { basename } = require('node:path');
const { relative } = require('node:path');
const { run } = require('node:test');
const { tap } = require('node:test/reporters');

const [jobsArg, ...files] = process.argv.slice(2);
const concurrency = Number(jobsArg);
if (!(concurrency >= 1) || files.length === 0) {
  console.error('usage: run-ordered.js JOBS FILE...');
  process.exit(2);
}

const failures = [];
function describeFailure(data) {
  const err = data.details?.error;
  if (err?.failureType === 'subtestsFailed') return null; // its failed subtests are listed themselves
  const cause = err?.cause ?? err;
  const text = String(cause?.message ?? cause ?? 'failed').split('\n').filter((l) => l.trim() !== '');
  const where = data.file ? relative(process.cwd(), data.file) : '?';
  return `${where} › ${data.name}\n    ${text.slice(0, 6).join('\n    ')}`;
}

const vmSeconds = new Map();
function noteDuration(data) {
  if (data.nesting !== 0 || !data.file || !data.file.includes('/test/vm/')) return;
  const name = basename(data.file);
  vmSeconds.set(name, (vmSeconds.get(name) ?? 0) + (data.details?.duration_ms ?? 0) / 1000);
}

function recordDurations(path) {
  if (!path || vmSeconds.size === 0) return;
  let old = {};
  try {
    old = JSON.parse(readFileSync(path, 'utf8')).seconds ?? {};
  } catch {
    // first run: a new file
  }
  const seconds = { ...old };
  for (const [name, s] of vmSeconds) seconds[name] = Math.round(s);
  const sorted = Object.fromEntries(Object.entries(seconds).sort((a, b) => b[1] - a[1]));
  const doc = { about: 'wall time of each VM test file in its last run (two files at a time); written by scripts/run-ordered.js', seconds: sorted };
  writeFileSync(`${path}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

const stream = run({ files, concurrency });
stream.on('test:pass', noteDuration);
stream.on('test:fail', (data) => {
  noteDuration(data);
  process.exitCode = 1;
  const line = describeFailure(data);
  if (line) failures.push(line);
});
stream.compose(tap).pipe(process.stdout);
process.on('exit', () => {
  recordDurations(process.env.ECRYPTFS_AGENT_DURATIONS);
  if (failures.length === 0) return;
  // stdout is a pipe or a file here: writes are synchronous, so this lands after the TAP
  writeSync(1, `\nFAILED TESTS (${failures.length}):\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
});
