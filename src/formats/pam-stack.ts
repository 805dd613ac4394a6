/**
 * A service's PAM stack as Linux-PAM builds and runs it, for `doctor`: pure, no I/O (the files
 * come in as a lookup function).
 *
 * Resolution (pam.conf(5)): `include FILE` inlines FILE's lines of the same type (a jump may cross
 * the include's boundary); `substack FILE` nests them (done/die end only the substack, jumps stay
 * inside, the parent counts the whole substack as one line); Debian's `@include FILE` inlines all
 * of FILE. A missing included file is recorded (Linux-PAM then fails that stack); loops and more
 * than MAX_DEPTH nested files are cut and recorded.
 *
 * Evaluation ports libpam's _pam_dispatch_aux loop (impression, status, ok/done/bad/die/reset/
 * jumps, substack levels) over ONE modelled path: a local user with a password, uid 1000, who
 * types the right one. On it pam_unix succeeds, pam_deny and `pam_faillock authfail` fail,
 * alternative authenticators (pam_rootok, pam_systemd_home, pam_sss, fingerprint, U2F …) decline
 * (user_unknown), pam_succeed_if is evaluated for `service` and `uid` conditions (others count as
 * true), and every other module succeeds. Not modelled: modules that fail for other reasons
 * (locked account, nologin, time rules), `-type` lines' modules being absent (they are run),
 * return codes other than these, /usr/lib/pam.d vendor files, the setcred/close phases' frozen
 * chain, and the `other` fallback for a missing service file.
 */

export type PamType = 'auth' | 'account' | 'session' | 'password';

export interface PamRule {
  /** path of the file the line is in */
  file: string;
  /** 1-based line number */
  line: number;
  type: PamType;
  /** "required", "[success=1 default=ignore]", "include", "substack", … */
  control: string;
  /** module path, or the file name of include/substack */
  module: string;
  args: string[];
  /** "-type": the line is silently skipped when the module is not installed */
  dash: boolean;
  /** the line, comments stripped and blanks collapsed (for messages) */
  text: string;
}

/** One line of a PAM file: a rule (including include/substack lines) or Debian's "@include FILE". */
export type PamFileLine = PamRule | { file: string; line: number; atInclude: string; text: string };

const TYPES: readonly string[] = ['auth', 'account', 'session', 'password'];

/** The lines of one PAM file; comments, blank and unparsable lines left out. */
export function parsePamFile(path: string, text: string): PamFileLine[] {
  const out: PamFileLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/#.*$/, '').trim();
    if (raw === '') continue;
    const inc = /^@include\s+(\S+)/.exec(raw);
    if (inc) {
      out.push({ file: path, line: i + 1, atInclude: inc[1] as string, text: raw.replace(/\s+/g, ' ') });
      continue;
    }
    const m = /^(-?)(\S+)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$/.exec(raw);
    if (!m || !TYPES.includes((m[2] as string).toLowerCase())) continue;
    out.push({
      file: path,
      line: i + 1,
      type: (m[2] as string).toLowerCase() as PamType,
      control: (m[3] as string).replace(/\s+/g, ' '),
      module: m[4] as string,
      args: (m[5] as string).split(/\s+/).filter((a) => a !== ''),
      dash: m[1] === '-',
      text: raw.replace(/\s+/g, ' '),
    });
  }
  return out;
}

export function isRule(l: PamFileLine): l is PamRule {
  return !('atInclude' in l);
}

export function moduleIs(r: { module: string }, name: string): boolean {
  return r.module === name || r.module.endsWith(`/${name}`);
}

/** A file as the resolver sees it: its path, or null when it does not exist. */
export type PamLookup = (name: string) => { path: string; text: string } | null;

export interface StackProblem {
  kind: 'missing-include' | 'loop' | 'too-deep';
  /** the line that names the file */
  from: { file: string; line: number };
  target: string;
}

/** One line of the flattened stack: libpam's handler list (a substack line, then its lines one level deeper). */
export interface FlatEntry {
  rule: PamRule;
  level: number;
  substack: boolean;
  /** an include whose file is missing: libpam puts a must-fail handler there */
  missing?: true;
}

export interface ResolvedStack {
  service: string;
  type: PamType;
  entries: FlatEntry[];
  problems: StackProblem[];
  /** the service file itself does not exist */
  absent: boolean;
  /** every file walked for this type, even those that add no line of it */
  files: string[];
}

export const MAX_DEPTH = 16;

export function resolveStack(lookup: PamLookup, service: string, type: PamType): ResolvedStack {
  const entries: FlatEntry[] = [];
  const problems: StackProblem[] = [];
  const files: string[] = [];
  const root = lookup(service);
  const walk = (path: string, text: string, level: number, chain: string[]): void => {
    if (!files.includes(path)) files.push(path);
    for (const l of parsePamFile(path, text)) {
      if (isRule(l) && l.type !== type) continue;
      const target = isRule(l) ? (l.control === 'include' || l.control === 'substack' ? l.module : null) : l.atInclude;
      if (target === null) {
        entries.push({ rule: l as PamRule, level, substack: false });
        continue;
      }
      const sub = isRule(l) && l.control === 'substack';
      const from = { file: l.file, line: l.line };
      const f = lookup(target);
      const asRule: PamRule = isRule(l) ? l : { file: l.file, line: l.line, type, control: 'include', module: target, args: [], dash: false, text: l.text };
      if (f === null) {
        problems.push({ kind: 'missing-include', from, target });
        entries.push({ rule: asRule, level, substack: false, missing: true });
      } else if (chain.includes(f.path)) {
        problems.push({ kind: 'loop', from, target });
      } else if (chain.length >= MAX_DEPTH) {
        problems.push({ kind: 'too-deep', from, target });
      } else if (sub) {
        entries.push({ rule: asRule, level, substack: true });
        walk(f.path, f.text, level + 1, [...chain, f.path]);
      } else {
        walk(f.path, f.text, level, [...chain, f.path]);
      }
    }
  };
  if (root !== null) walk(root.path, root.text, 0, [root.path]);
  return { service, type, entries, problems, absent: root === null, files };
}

// ------------------------------------------------------------------ control values

export type Action = 'ignore' | 'ok' | 'done' | 'bad' | 'die' | 'reset' | number;

const KEYWORDS: Record<string, string> = {
  required: 'success=ok new_authtok_reqd=ok ignore=ignore default=bad',
  requisite: 'success=ok new_authtok_reqd=ok ignore=ignore default=die',
  sufficient: 'success=done new_authtok_reqd=done default=ignore',
  optional: 'success=ok new_authtok_reqd=ok default=ignore',
};

/** The action a control takes for a return code (libpam: a bracket without default=… means bad). */
export function actionFor(control: string, ret: string): Action {
  const spec = KEYWORDS[control] ?? control.replace(/^\[|\]$/g, '');
  const map = new Map<string, string>();
  for (const kv of spec.split(/\s+/)) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined) map.set(k.toLowerCase(), v.toLowerCase());
  }
  const v = map.get(ret) ?? map.get('default') ?? 'bad';
  if (/^\d+$/.test(v)) return Number(v);
  return (['ignore', 'ok', 'done', 'bad', 'die', 'reset'] as const).find((a) => a === v) ?? 'bad';
}

// ------------------------------------------------------------------ the modelled path

/** Modules that authenticate some users another way; a local password user is not theirs. */
const ALTERNATIVES = ['pam_rootok.so', 'pam_systemd_home.so', 'pam_sss.so', 'pam_fprintd.so', 'pam_u2f.so', 'pam_krb5.so', 'pam_ldap.so', 'pam_winbind.so', 'pam_howdy.so'];
export const PASSWORD_MODULE = 'pam_unix.so';
export const MODEL_UID = 1000;

function glob(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(s);
}

/** pam_succeed_if's conditions (ANDed) on the modelled user; fields it cannot know count as true. */
export function succeedIf(args: string[], service: string): boolean {
  const FLAGS = new Set(['debug', 'use_uid', 'quiet', 'quiet_fail', 'quiet_success', 'audit']);
  const toks = args.filter((a) => !FLAGS.has(a));
  for (let i = 0; i + 2 < toks.length; i += 3) {
    const [field, op, value] = [toks[i], toks[i + 1], toks[i + 2]] as [string, string, string];
    let ok = true;
    if (field === 'service') {
      const list = value.split(':');
      ok = op === '=' ? service === value : op === '!=' ? service !== value : op === '=~' ? glob(value, service) : op === '!~' ? !glob(value, service) : op === 'in' ? list.includes(service) : op === 'notin' ? !list.includes(service) : true;
    } else if (field === 'uid') {
      const n = Number(value);
      const cmp: Record<string, boolean> = { '<': MODEL_UID < n, lt: MODEL_UID < n, '<=': MODEL_UID <= n, le: MODEL_UID <= n, eq: MODEL_UID === n, '=': MODEL_UID === n, '>=': MODEL_UID >= n, ge: MODEL_UID >= n, '>': MODEL_UID > n, gt: MODEL_UID > n, ne: MODEL_UID !== n, '!=': MODEL_UID !== n };
      ok = cmp[op] ?? true;
    }
    if (!ok) return false;
  }
  return true;
}

/** What a line's module returns on the modelled path (a libpam return-code name). */
export function modelReturn(e: FlatEntry, service: string): string {
  const r = e.rule;
  if (e.missing) return 'perm_denied';
  if (moduleIs(r, 'pam_deny.so')) return r.type === 'auth' ? 'auth_err' : 'perm_denied';
  if (moduleIs(r, 'pam_faillock.so') && r.args.includes('authfail')) return 'auth_err';
  if (moduleIs(r, 'pam_wheel.so') && r.args.includes('trust')) return 'user_unknown';
  if (ALTERNATIVES.some((a) => moduleIs(r, a))) return 'user_unknown';
  if (moduleIs(r, 'pam_succeed_if.so')) return succeedIf(r.args, service) ? 'success' : 'auth_err';
  return 'success';
}

export interface Skip {
  /** the line whose action skipped this one */
  by: PamRule;
  how: 'jump' | 'done' | 'die';
}

export interface PathResult {
  /** indices into entries of the lines whose module was called, in order */
  reached: number[];
  /** why each line that was not called was passed over */
  skipped: Map<number, Skip>;
  /** the stack's result on the modelled path */
  succeeds: boolean;
  /** the line that made it fail (the first bad/die) */
  failedAt?: PamRule;
}

/** libpam's dispatch loop (libpam/pam_dispatch.c) over the modelled path. */
export function evaluateStack(s: ResolvedStack): PathResult {
  const es = s.entries;
  const reached: number[] = [];
  const skipped = new Map<number, Skip>();
  type Imp = 'undef' | 'pos' | 'neg';
  let impression: Imp = 'undef';
  let status = 'must_fail';
  let failedAt: PamRule | undefined;
  const saved: Array<{ impression: Imp; status: string }> = [{ impression, status }];
  let prev = 0;
  const skipFrom = (i: number, until: (j: number) => boolean, sk: Skip): number => {
    let j = i;
    while (j + 1 < es.length && until(j + 1)) {
      j++;
      if (!(es[j] as FlatEntry).substack) skipped.set(j, sk);
    }
    return j;
  };
  for (let i = 0; i < es.length; prev = (es[i] as FlatEntry).level, i++) {
    const e = es[i] as FlatEntry;
    const level = e.level;
    if (prev < level) saved[level] = { impression, status };
    if (e.substack) continue;
    reached.push(i);
    const ret = modelReturn(e, s.service);
    let action = e.missing ? 'bad' : actionFor(e.rule.control, ret);
    if (action === 'reset') {
      ({ impression, status } = saved[level] ?? { impression: 'undef', status: 'must_fail' });
    } else if (action === 'ok' || action === 'done') {
      if (impression === 'undef' || (impression === 'pos' && status === 'success')) {
        if (ret !== 'ignore') {
          impression = 'pos';
          status = ret;
        }
      }
      if (impression === 'pos' && action === 'done') i = skipFrom(i, (j) => (es[j] as FlatEntry).level >= level, { by: e.rule, how: 'done' });
    } else if (action === 'bad' || action === 'die') {
      if (impression !== 'neg') {
        impression = 'neg';
        status = ret === 'ignore' ? 'must_fail' : ret;
        failedAt = e.rule;
      }
      if (action === 'die') i = skipFrom(i, (j) => (es[j] as FlatEntry).level >= level, { by: e.rule, how: 'die' });
    } else if (typeof action === 'number') {
      // skip `action` lines at this level, a substack counting as one
      while (i + 1 < es.length && (es[i + 1] as FlatEntry).level >= level && action > 0) {
        do {
          i++;
          if (!(es[i] as FlatEntry).substack) skipped.set(i, { by: e.rule, how: 'jump' });
        } while (i + 1 < es.length && (es[i + 1] as FlatEntry).level > level);
        action--;
      }
      if (action > 0) {
        // "bad jump in stack": past the end of the (sub)stack
        if (impression !== 'neg') failedAt = e.rule;
        impression = 'neg';
        status = 'must_fail';
      }
    }
  }
  const succeeds = impression === 'pos' && status === 'success';
  return failedAt !== undefined && !succeeds ? { reached, skipped, succeeds, failedAt } : { reached, skipped, succeeds };
}

export const where = (r: { file: string; line: number }): string => `${r.file}:${r.line}`;
