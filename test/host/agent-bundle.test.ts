/**
 * The agent as `npm run build:ts` builds it (scripts/bundle-agent.js) and scripts/package.sh
 * installs it: one file. These tests fail on a tree built with tsc alone, whose
 * dist/agent/main.js is the unbundled agent: build with npm run build:ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ADDON_PATH } from '../../src/os/native';
import { AGENT, parseReply } from '../helpers/agent';

test('dist/agent/main.js is the bundle, with a fixed first line for the packaging to replace', () => {
  const [shebang, mark] = readFileSync(AGENT, 'utf8').split('\n', 2);
  assert.equal(shebang, '#!/usr/bin/env node');
  assert.equal(mark, "// ecryptfs-agent: bundled by scripts/bundle-agent.js from tsc's output", `${AGENT} is not bundled: build with npm run build:ts`);
});

test('the agent loads no JavaScript file but itself: only the native addon is required', () => {
  // A preload hook records every non-builtin module the process requires; an invalid request
  // makes the agent log an error, so winston gets loaded too.
  const hook = join(tmpdir(), `eat-require-hook-${process.pid}.js`);
  writeFileSync(
    hook,
    `const M = require('node:module'); const load = M._load; const seen = [];
     M._load = function (request, parent, isMain) {
       if (!isMain && !M.isBuiltin(request)) seen.push(request);
       return load.apply(this, arguments);
     };
     process.on('exit', () => process.stderr.write('REQUIRED ' + JSON.stringify(seen) + '\\n'));`,
  );
  try {
    const r = spawnSync(process.execPath, ['-r', hook, AGENT, 'pam'], { input: 'not a request\n', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(parseReply(r.stdout.toString()).result, 'ignore');
    const required = JSON.parse(/^REQUIRED (.*)$/m.exec(r.stderr.toString())?.[1] ?? 'null') as string[];
    assert.deepEqual(required, [ADDON_PATH]);
  } finally {
    rmSync(hook, { force: true });
  }
});
