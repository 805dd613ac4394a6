/**
 * The winston half of src/os/log.ts, loaded by it on the first line logged: the key=value
 * format, the syslog(3) transport and the logger itself.
 */
import winston from 'winston';
import Transport from 'winston-transport';
import { LOG_AUTHPRIV, renderLine, SYSLOG_LEVELS, type LoggerOptions } from '../formats/log-line';
import { native } from './native';

const MESSAGE = Symbol.for('message');
const LEVEL = Symbol.for('level');

/** winston format: redact and render into info[MESSAGE]. */
export const keyValueFormat = winston.format((info) => {
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(info)) if (k !== 'level' && k !== 'message') fields[k] = info[k];
  (info as Record<symbol, unknown>)[MESSAGE] = renderLine(info.message, fields);
  return info;
});

/** Transport calling syslog(3): libc handles /dev/log, reconnects and the PRI/ident/pid header. */
export class NativeSyslogTransport extends Transport {
  private readonly ident: string;
  constructor(opts: Transport.TransportStreamOptions & { ident: string }) {
    super(opts);
    this.ident = opts.ident;
  }
  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const level = String(info[LEVEL] ?? info.level);
    const sev = SYSLOG_LEVELS[level] ?? SYSLOG_LEVELS.info!;
    try {
      native().syslog(this.ident, LOG_AUTHPRIV | sev, String(info[MESSAGE] ?? ''));
    } catch {
      // Logging must never break a login; with no addon there is no syslog.
    }
    this.emit('logged', info);
    callback();
  }
}

export function createWinstonLogger(opts: LoggerOptions): winston.Logger {
  const ident = opts.ident ?? 'ecryptfs-agent';
  const transports: Transport[] = [];
  if (opts.syslog ?? true) transports.push(new NativeSyslogTransport({ ident }));
  if (opts.stderr) {
    transports.push(
      new winston.transports.Stream({
        stream: process.stderr,
        format: winston.format((info) => {
          const rec = info as Record<symbol, unknown>;
          rec[MESSAGE] = `${ident}: ${info.level}: ${String(rec[MESSAGE])}`;
          return info;
        })(),
      }),
    );
  }
  return winston.createLogger({
    levels: winston.config.syslog.levels,
    level: opts.debug ? 'debug' : 'info',
    format: keyValueFormat(),
    transports,
    exitOnError: false,
  });
}
