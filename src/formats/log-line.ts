/**
 * A log line as the agent writes it, pure: `message key=value ...`, syslog levels, values of
 * fields named like secrets replaced with "[redacted]", Buffers never printed, control
 * characters escaped. os/log.ts and os/log-winston.ts both build on it (no import cycle).
 */
import { escapeControls } from './text';

export const LOG_AUTHPRIV = 10 << 3;
/** winston.config.syslog.levels (a unit test checks): emerg 0 … debug 7 = syslog(3) severities. */
export const SYSLOG_LEVELS: Readonly<Record<string, number>> = { emerg: 0, alert: 1, crit: 2, error: 3, warning: 4, notice: 5, info: 6, debug: 7 };

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
  if (typeof r === 'string') {
    const e = escapeControls(r);
    return /^[^\s"=\\]+$/.test(e) ? e : JSON.stringify(e);
  }
  if (r === undefined) return 'undefined';
  return typeof r === 'object' && r !== null ? escapeControls(JSON.stringify(JSON.stringify(r))) : String(r);
}

/** `message k=v k=v`; control characters (text.ts) are escaped everywhere: no forged log lines. */
export function renderLine(message: unknown, fields: Record<string, unknown>): string {
  const msg = typeof message === 'string' ? message : message === undefined ? '' : renderValue(message);
  const parts = msg === '' ? [] : [escapeControls(msg)];
  for (const [k, v] of Object.entries(fields)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(k)) continue; // odd field names cannot forge k=v pairs
    if (v === undefined) continue; // "errno=undefined" tells the reader nothing
    parts.push(`${k}=${isSecretName(k) ? REDACTED : renderValue(v)}`);
  }
  return parts.join(' ');
}

export interface LoggerOptions {
  ident?: string;
  debug?: boolean;
  /** also write `level: line` to stderr (CLI) */
  stderr?: boolean;
  /** default true; tests may turn syslog off */
  syslog?: boolean;
}
