/**
 * The one logger factory: winston with syslog levels, a tiny transport calling libc
 * syslog(3) through the addon (facility LOG_AUTHPRIV, like pam_ecryptfs), and an optional
 * stderr transport for the CLI. Lines are `message key=value ...`; values of fields named
 * like secrets are replaced with "[redacted]" and Buffers are never printed.
 */
import winston from 'winston';
import Transport from 'winston-transport';
import { native } from './native';

const MESSAGE = Symbol.for('message');
const LEVEL = Symbol.for('level');

export const LOG_AUTHPRIV = 10 << 3;
/** winston.config.syslog.levels: emerg 0 … debug 7 = syslog(3) severities. */
export const SYSLOG_LEVELS: Record<string, number> = winston.config.syslog.levels;

export const REDACTED = '[redacted]';
const SECRET_WORDS = new Set(['passphrase', 'password', 'passwd', 'pass', 'pw', 'authtok', 'key', 'payload', 'secret', 'token', 'fekek']);

/** True for field names such as passphrase, newPassword, authtok, mount_key, keyId, payload. */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  return words.some((w) => SECRET_WORDS.has(w));
}

function redactDeep(value: unknown, depth = 0): unknown {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.length} bytes]`;
  if (value instanceof Error) return value.message;
  if (value === null || typeof value !== 'object') return value;
  if (depth > 4) return '[…]';
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = isSecretName(k) ? REDACTED : redactDeep(v, depth + 1);
  return out;
}

function renderValue(v: unknown): string {
  const r = redactDeep(v);
  if (typeof r === 'string') return /^[^\s"=\\]+$/.test(r) ? r : JSON.stringify(r);
  if (r === undefined) return 'undefined';
  return typeof r === 'object' && r !== null ? JSON.stringify(JSON.stringify(r)) : String(r);
}

/** `message k=v k=v`; control characters in the message are escaped (no forged log lines). */
export function renderLine(message: unknown, fields: Record<string, unknown>): string {
  const msg = typeof message === 'string' ? message : message === undefined ? '' : renderValue(message);
  const parts = msg === '' ? [] : [msg.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)];
  for (const [k, v] of Object.entries(fields)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(k)) continue; // odd field names cannot forge k=v pairs
    if (v === undefined) continue; // "errno=undefined" tells the reader nothing
    parts.push(`${k}=${isSecretName(k) ? REDACTED : renderValue(v)}`);
  }
  return parts.join(' ');
}

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

export interface LoggerOptions {
  ident?: string;
  debug?: boolean;
  /** also write `level: line` to stderr (CLI) */
  stderr?: boolean;
  /** default true; tests may turn syslog off */
  syslog?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): winston.Logger {
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
