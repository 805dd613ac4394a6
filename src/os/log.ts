/**
 * The one logger factory: winston with syslog levels, a tiny transport calling libc
 * syslog(3) through the addon (facility LOG_AUTHPRIV, like pam_ecryptfs), and an optional
 * stderr transport for the CLI. Lines are formats/log-line.ts's `message key=value ...`; values of fields named
 * like secrets are replaced with "[redacted]" and Buffers are never printed.
 *
 * This module does not load winston itself: os/log-winston.ts builds the logger, on the first
 * line that passes the level. Loading winston is a third of the agent's start-up (npm run
 * bench), and an agent run that logs nothing (a user without a private directory) skips it.
 */
import type { Logger } from 'winston';
import { type LoggerOptions, SYSLOG_LEVELS } from '../formats/log-line';

/** The winston logger for opts; winston is loaded here, not before. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const { createWinstonLogger } = require('./log-winston') as typeof import('./log-winston');
  return createWinstonLogger(opts);
}

type LogMethod = (message: string, fields?: Record<string, unknown>) => void;
/** The levels the agent logs at: what a phase handler gets (agent/context.ts). */
export interface AgentLog {
  debug: LogMethod;
  info: LogMethod;
  notice: LogMethod;
  warning: LogMethod;
  error: LogMethod;
}

/** An AgentLog whose winston is loaded on its first line, or earlier with load(). */
export interface LazyAgentLog extends AgentLog {
  /** Loads winston now: before a lock that other logins of the user wait on, whose holder would
   * otherwise load it (a large part of a phase under emulation) while they queue. */
  load(): void;
}

/**
 * createLogger(opts), created on the first line at an enabled level (info and above, debug
 * too with opts.debug: winston's own filter, applied before winston is loaded), or by load().
 */
export function createLazyLogger(opts: LoggerOptions = {}): LazyAgentLog {
  let logger: Logger | undefined;
  const threshold = SYSLOG_LEVELS[opts.debug ? 'debug' : 'info']!;
  const load = (): Logger => (logger ??= createLogger(opts));
  const method =
    (level: keyof AgentLog): LogMethod =>
    (...args) => {
      if (SYSLOG_LEVELS[level]! > threshold) return;
      load()[level](...args);
    };
  return {
    debug: method('debug'),
    info: method('info'),
    notice: method('notice'),
    warning: method('warning'),
    error: method('error'),
    load: () => {
      load();
    },
  };
}
