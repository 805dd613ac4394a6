/**
 * Text from a user's files on its way to someone else's terminal or log: root's terminal after
 * `su - alice`, the system log an admin reads. Characters a terminal or viewer acts on instead of
 * showing are escaped: C0 controls and DEL (escape sequences, carriage returns), C1 controls
 * (U+0080–U+009F: CSI, OSC … on terminals that take 8-bit controls), the bidirectional
 * overrides, embeddings, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
 * U+061C: text that reads differently from what it is) and the Unicode line and paragraph
 * separators (forged lines).
 */

const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_BUT_NEWLINE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeOne(c: string): string {
  const n = c.codePointAt(0) as number;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** Escapes every character a terminal would act on (see above) as \xNN or \uNNNN. */
export function escapeControls(s: string, opts: { keepNewlines?: boolean /** and tabs */ } = {}): string {
  return s.replace(opts.keepNewlines ? UNSAFE_BUT_NEWLINE : UNSAFE, escapeOne);
}

/** True when escapeControls would change s. */
export function hasControls(s: string): boolean {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(s);
}

const UNSAFE_IN_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON text (JSON.stringify output) with the characters JSON leaves raw written as \uNNNN: still valid JSON. */
export function escapeJsonControls(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`);
}
