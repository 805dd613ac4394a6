/**
 * The layers of src/ and the one direction of imports (README, "Architecture"), read from the
 * TypeScript sources: formats (pure) import only formats; os (the edges: kernel, files, syslog)
 * imports formats and os; actions (the use-cases) import formats, os and actions; the CLI and the
 * agent import anything below them, src never imports them; errors.ts is shared by all. The two
 * front-ends stay apart, but for one file: the resident agent's user socket runs the CLI's own
 * unlock and lock for the asking user (agent/user-request.ts). And no cycles.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const REPO = join(__dirname, '..', '..', '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of a file (static imports, require and import() of './…'), as repo paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|require\(\s*|import\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = resolve(dirname(file), (m[1] as string).replace(/\.js$/, ''));
    out.push(relative(REPO, target) + '.ts');
  }
  return out;
}

const layerOf = (file: string): string => {
  if (file === 'src/errors.ts') return 'errors';
  const m = /^src\/(formats|os|actions|cli)\//.exec(file);
  if (m) return m[1] as string;
  if (file.startsWith('agent/')) return 'agent';
  return 'elsewhere';
};
const ALLOWED: Record<string, string[]> = {
  errors: [],
  formats: ['formats', 'errors'],
  os: ['formats', 'os', 'errors'],
  actions: ['formats', 'os', 'actions', 'errors'],
  cli: ['formats', 'os', 'actions', 'cli', 'errors'],
  agent: ['formats', 'os', 'actions', 'errors', 'agent'],
};

const files = [...sources(join(REPO, 'src')), ...sources(join(REPO, 'agent'))].map((f) => relative(REPO, f));

test('every file of src/ is in a layer folder (or is errors.ts)', () => {
  assert.deepEqual(files.filter((f) => f.startsWith('src/') && layerOf(f) === 'elsewhere'), []);
});

test('imports go one way: formats ← os ← actions ← cli, agent', () => {
  const wrong: string[] = [];
  for (const f of files) {
    const from = layerOf(f);
    for (const t of importsOf(join(REPO, f))) {
      const allowed = ALLOWED[from]?.includes(layerOf(t)) || (f === 'agent/user-request.ts' && layerOf(t) === 'cli');
      if (!allowed) wrong.push(`${f} (${from}) imports ${t} (${layerOf(t)})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles', () => {
  const graph = new Map(files.map((f) => [f, importsOf(join(REPO, f)).filter((t) => files.includes(t))]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});
