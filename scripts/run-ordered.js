#!/usr/bin/env node
// Runs test files with Node's own runner in the order given (node --test sorts them by path),
// two or more at a time, and prints TAP like `node --test` does, so CI reads the same counts.
//   node --require dist/test/helpers/serial-host.js scripts/run-ordered.js JOBS FILE...
// Each test process inherits this process's --require (the runner passes its execArgv on).
// After the TAP, a short list of the failed tests (file, name, first lines of the error), so a
// reader who sees only the end of a long CI log still learns what failed.
'use strict';
const { writeSync } = require('node:fs');
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

const stream = run({ files, concurrency });
stream.on('test:fail', (data) => {
  process.exitCode = 1;
  const line = describeFailure(data);
  if (line) failures.push(line);
});
stream.compose(tap).pipe(process.stdout);
process.on('exit', () => {
  if (failures.length === 0) return;
  // stdout is a pipe or a file here: writes are synchronous, so this lands after the TAP
  writeSync(1, `\nFAILED TESTS (${failures.length}):\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
});
