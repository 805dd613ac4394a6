#!/usr/bin/env node
// Bundles the session agent into one file, in place: dist/agent/main.js, as tsc wrote it,
// becomes that module plus everything it requires from dist/src and node_modules (winston &
// co.). Run by `npm run build:ts` right after tsc; the result is what the PAM shim runs, what
// the tests run and what scripts/package.sh installs. tsc alone leaves the unbundled agent: the
// same code, slower to start.
//
// Why: the shim starts one agent per PAM phase, and Node's module loader (a resolve, several
// stats and a read per file, for ~140 files) was most of the agent's start-up beyond Node's own
// (npm run bench; far more in the VM, where every file access is a 9p round trip under emulation).
//
// esbuild only links here: it reads tsc's JavaScript, not the TypeScript, so the code that runs
// is tsc's, module by module, in the order Node would run it; nothing is minified. The native
// addon stays a file of its own: src/os/native.ts requires it by a path computed from __dirname,
// which esbuild leaves alone; src/os/native.ts looks for it at the depth of either file.
'use strict';
const { chmodSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const esbuild = require('esbuild');

// The agent (what the PAM shim and the resident agent's workers run) and the resident agent's
// master (agent/master.ts: a bundle of its own, so it loads only what it uses).
const entries = ['main.js', 'master.js'].map((f) => join(__dirname, '..', 'dist', 'agent', f));
// Also how scripts/package.sh and the tests tell a bundled agent (its second line).
const MARK = '// ecryptfs-agent: bundled by scripts/bundle-agent.js from tsc\'s output';

for (const agent of entries) {
  if (readFileSync(agent, 'utf8').includes(MARK)) {
    console.error(`bundle-agent: ${agent} is already bundled (tsc writes it anew: npm run build:ts)`);
    continue;
  }
  const result = esbuild.buildSync({
    entryPoints: [agent],
    outfile: agent,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node18.13', // package.json engines: nothing to down-level from tsc's ES2022
    banner: { js: MARK }, // after the entry's #! line, which esbuild keeps
    // winston's @dabh/diagnostics picks its debug build (colour tables, ansi helpers) unless
    // NODE_ENV is production: a quarter of the agent's start-up under emulation, for output that
    // is never on. Fixed here, the other branch is not even bundled.
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
    metafile: true,
  });
  chmodSync(agent, 0o755);
  const [out] = Object.values(result.metafile.outputs);
  console.log(`bundle-agent: ${agent} (${Object.keys(result.metafile.inputs).length} modules, ${out.bytes >> 10} KiB)`);
}
