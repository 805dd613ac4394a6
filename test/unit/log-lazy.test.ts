/**
 * The agent's logger loads winston only for a line that passes the level (src/os/log.ts), and
 * then logs exactly what winston logs. Each case runs in a fresh process, so "winston not
 * loaded" means something; the lines come through the CLI's stderr transport.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import winston from 'winston';
import { SYSLOG_LEVELS } from '../../src/formats/log-line';

const LOG = join(__dirname, '..', '..', 'src', 'os', 'log.js');

/** Runs `body` with `log` = createLazyLogger(opts); prints whether winston got loaded. */
function run(opts: object, body: string): { stderr: string; winstonLoaded: boolean } {
  const code = `
    const log = require(${JSON.stringify(LOG)}).createLazyLogger(${JSON.stringify({ ...opts, syslog: false, stderr: true })});
    ${body}
    process.stdout.write(String(Object.keys(require.cache).some((f) => f.includes('/node_modules/winston/'))));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { stderr: r.stderr, winstonLoaded: r.stdout === 'true' };
}

test('SYSLOG_LEVELS are winston.config.syslog.levels', () => {
  assert.deepEqual({ ...SYSLOG_LEVELS }, winston.config.syslog.levels);
});

test('nothing logged, or only debug lines without debug: winston is never loaded', () => {
  assert.deepEqual(run({}, ''), { stderr: '', winstonLoaded: false });
  assert.deepEqual(run({ debug: false }, "log.debug('no private directory', { user: 'alice' });"), { stderr: '', winstonLoaded: false });
});

test('a line at an enabled level loads winston and is logged as winston renders it', () => {
  const r = run({}, "log.debug('hidden', { user: 'alice' }); log.notice('mounted', { user: 'alice', passphrase: 'hunter2' }); log.error('failed');");
  assert.deepEqual(r, { stderr: 'ecryptfs-agent: notice: mounted user=alice passphrase=[redacted]\necryptfs-agent: error: failed\n', winstonLoaded: true });
});

test('with debug, debug lines are logged too', () => {
  const r = run({ debug: true }, "log.debug('no private directory', { user: 'alice' });");
  assert.deepEqual(r, { stderr: 'ecryptfs-agent: debug: no private directory user=alice\n', winstonLoaded: true });
});
