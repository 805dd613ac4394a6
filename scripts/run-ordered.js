#!/usr/bin/env node
// Runs test files with Node's own runner in the order given (node --test sorts them by path),
// two or more at a time, and prints TAP like `node --test` does, so CI reads the same counts.
//   node --require dist/test/helpers/serial-host.js scripts/run-ordered.js JOBS FILE...
// Each test process inherits this process's --require (the runner passes its execArgv on).
'use strict';
const { run } = require('node:test');
const { tap } = require('node:test/reporters');

const [jobsArg, ...files] = process.argv.slice(2);
const concurrency = Number(jobsArg);
if (!(concurrency >= 1) || files.length === 0) {
  console.error('usage: run-ordered.js JOBS FILE...');
  process.exit(2);
}
const stream = run({ files, concurrency });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(tap).pipe(process.stdout);
