/**
 * doctor's PAM findings: for login, sshd and su (auth, session) and passwd (password), whether
 * pam_ecryptfs_agent.so is reached on the path where the right password is typed, resolved and
 * evaluated by pam-stack.ts (its header says what that models and what it does not). When it
 * is not, the fix names the line to add, the file and the line to put it after, chosen for the
 * distribution's layout and checked by evaluating the stack with the line in place.
 */
import type { Finding, PamFacts } from './doctor-finding';
import { evaluateStack, MAX_DEPTH, type FlatEntry, isRule, moduleIs, PASSWORD_MODULE, type PamLookup, type PamType, parsePamFile, type PathResult, type ResolvedStack, resolveStack, where } from './pam-stack';

export const OUR_MODULE = 'pam_ecryptfs_agent.so';
export const REFERENCE_MODULE = 'pam_ecryptfs.so';

export type PamLayout = 'debian' | 'gentoo' | 'arch' | 'fedora' | 'other';

/** The services looked at and the stacks that matter for each. */
export const PAM_SERVICES: ReadonlyArray<[service: string, types: PamType[]]> = [
  ['login', ['auth', 'session']],
  ['sshd', ['auth', 'session']],
  ['su', ['auth', 'session']],
  ['passwd', ['password']],
];

const OUR_LINE: Record<PamType, string> = {
  auth: `auth     optional  ${OUR_MODULE} unwrap`,
  session: `session  optional  ${OUR_MODULE} unwrap`,
  password: `password optional  ${OUR_MODULE}`,
  account: '',
};

const WHY_NEEDED: Record<PamType, string> = {
  auth: 'logins cannot unwrap the mount passphrase',
  session: 'nothing is mounted at login nor locked at logout',
  password: 'a password change does not re-wrap ~/.ecryptfs/wrapped-passphrase (the next login stays locked)',
  account: '',
};

/** /etc/os-release's ID and ID_LIKE first, then the files that give a layout away. */
export function pamLayout(osRelease: string | null, names: ReadonlySet<string>): PamLayout {
  const field = (k: string): string[] => (new RegExp(`^${k}="?([^"\\n]*)"?`, 'm').exec(osRelease ?? '')?.[1] ?? '').split(/\s+/);
  const ids = [...field('ID'), ...field('ID_LIKE')];
  if (ids.some((i) => i === 'debian' || i === 'ubuntu')) return 'debian';
  if (ids.includes('gentoo')) return 'gentoo';
  if (ids.includes('arch')) return 'arch';
  if (ids.some((i) => i === 'fedora' || i === 'rhel' || i === 'centos')) return 'fedora';
  if (names.has('common-auth')) return 'debian';
  if (names.has('postlogin')) return 'fedora';
  return 'other';
}

/** Where each layout wants our lines: the first of these files that the stack goes through. */
const PREFERRED: Record<PamLayout, Record<'auth' | 'session' | 'password', string[]>> = {
  debian: { auth: ['common-auth'], session: ['common-session'], password: ['common-password'] },
  gentoo: { auth: ['system-auth'], session: ['system-auth'], password: ['system-auth'] },
  arch: { auth: ['system-auth'], session: ['system-login', 'system-auth'], password: ['system-auth'] },
  // authselect: pam_unix is `sufficient` inside the system-auth substack; postlogin runs after it
  fedora: { auth: ['postlogin'], session: ['system-auth', 'password-auth'], password: ['postlogin'] },
  other: { auth: [], session: [], password: [] },
};

const base = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const ours = (e: FlatEntry): boolean => !e.substack && moduleIs(e.rule, OUR_MODULE);

export function pamLookup(facts: PamFacts): PamLookup {
  const byPath = new Map(facts.files.map((f) => [f.path, f.text]));
  return (name) => {
    const path = name.startsWith('/') ? name : `${facts.dir}/${name}`;
    const text = byPath.get(path);
    return text === undefined ? null : { path, text };
  };
}

interface Verdict {
  ok: boolean;
  ourIdx: number[];
  reachedOurs: number[];
  unixReached: number[];
}

function verdict(s: ResolvedStack, p: PathResult): Verdict {
  const ourIdx = s.entries.flatMap((e, i) => (ours(e) ? [i] : []));
  const reachedOurs = p.reached.filter((i) => ourIdx.includes(i));
  const unixReached = p.reached.filter((i) => moduleIs((s.entries[i] as FlatEntry).rule, PASSWORD_MODULE));
  const first = reachedOurs[0];
  const afterUnix = first !== undefined && (s.type === 'session' || unixReached.length === 0 || (unixReached[0] as number) < first);
  return { ok: p.succeeds && afterUnix, ourIdx, reachedOurs, unixReached };
}

/**
 * Where to add our line: in the layout's file (or pam_unix's), after the last line of the type
 * for which the stack, evaluated with the line there (and our other lines taken out), reaches
 * it after pam_unix and still succeeds. Fedora's postlogin: at the top.
 */
function placement(lookup: PamLookup, layout: PamLayout, s: ResolvedStack, p: PathResult): string {
  const type = s.type as 'auth' | 'session' | 'password';
  const line = OUR_LINE[type];
  const files = s.files;
  const unix = p.reached.map((i) => (s.entries[i] as FlatEntry).rule).find((r) => moduleIs(r, PASSWORD_MODULE));
  const target = PREFERRED[layout][type].map((n) => files.find((f) => base(f) === n)).find((f) => f !== undefined) ?? unix?.file ?? files[0];
  const generic = `Add "${line}" to the ${type} stack of ${s.service}, after the line of ${PASSWORD_MODULE} and after any line its success jump skips (docs/install.md)`;
  if (target === undefined) return generic;
  const text = lookup(target)?.text ?? '';
  // never after pam_ecryptfs.so: that line is to go (pam.leftover)
  const anchors = parsePamFile(target, text).filter((l) => !isRule(l) || (l.type === type && !moduleIs(l, OUR_MODULE) && !moduleIs(l, REFERENCE_MODULE)));
  // "after line 0" is the top of the file
  const candidates = layout === 'fedora' && base(target) === 'postlogin' ? [0] : [...anchors.map((l) => l.line).reverse(), 0];
  const oursRe = new RegExp(`^\\s*-?${type}\\s.*${OUR_MODULE.replace(/\./g, '\\.')}`);
  // our existing lines become blank lines: the line numbers of the messages stay those on disk
  const strip = (t: string): string =>
    t
      .split('\n')
      .map((l) => (oursRe.test(l) ? '' : l))
      .join('\n');
  for (const after of candidates) {
    const sim: PamLookup = (name) => {
      const f = lookup(name);
      if (f === null) return null;
      const t = strip(f.text).split('\n');
      if (f.path === target) t.splice(after, 0, line);
      return { path: f.path, text: t.join('\n') };
    };
    const s2 = resolveStack(sim, s.service, type);
    if (verdict(s2, evaluateStack(s2)).ok) {
      const anchor = anchors.find((l) => l.line === after);
      const spot = anchor === undefined ? `at the top of ${target}` : `to ${target} after line ${after} ("${anchor.text}")`;
      if (layout === 'debian') return `Run pam-auth-update --enable ecryptfs-agent (the package's profile), or add "${line}" ${spot}`;
      if (layout === 'fedora') {
        // the profile's templates are numbered differently from the generated files: name the line, not its number
        const inProfile = anchor === undefined ? `at the top of ${base(target)}` : `to ${base(target)} after the line "${anchor.text}"`;
        return `In an authselect custom profile (authselect create-profile ecryptfs-agent -b local, docs/install.md) add "${line}" ${inProfile}, then authselect select custom/ecryptfs-agent`;
      }
      return `Add "${line}" ${spot}`;
    }
  }
  return generic;
}

function skipReason(s: ResolvedStack, p: PathResult, idx: number): string {
  const sk = p.skipped.get(idx);
  if (sk === undefined) return 'not reached';
  const by = `${where(sk.by)} ("${sk.by.text}")`;
  if (sk.how === 'jump') return `skipped by the jump of ${by}`;
  if (sk.how === 'done') return `the ${s.type} stack has already ended at ${by}, which succeeded`;
  return `the ${s.type} stack has already failed at ${by}`;
}

function checkService(lookup: PamLookup, layout: PamLayout, s: ResolvedStack): Finding {
  const id = `pam.${s.type}.${s.service}`;
  const p = evaluateStack(s);
  const v = verdict(s, p);
  const severe = s.type === 'password' || s.service !== 'login' ? 'warn' : 'fail';
  const stack = `${s.service}'s ${s.type} stack`;
  if (!p.succeeds && p.failedAt !== undefined && v.ourIdx.length > 0) {
    const skipped = v.reachedOurs.length === 0 ? `; ${OUR_MODULE} (${where((s.entries[v.ourIdx[0] as number] as FlatEntry).rule)}) is ${skipReason(s, p, v.ourIdx[0] as number)}` : '';
    return {
      id,
      status: 'fail',
      why: `with the right password ${stack} fails at ${where(p.failedAt)} ("${p.failedAt.text}")${skipped}`,
      fix: `Take the ${OUR_MODULE} line out of there. ${placement(lookup, layout, s, p)}`,
    };
  }
  if (v.ourIdx.length === 0) {
    return { id, status: severe, why: `${OUR_MODULE} is not in ${stack}: ${WHY_NEEDED[s.type]}`, fix: placement(lookup, layout, s, p) };
  }
  const firstOurs = (s.entries[v.ourIdx[0] as number] as FlatEntry).rule;
  if (v.reachedOurs.length === 0) {
    return {
      id,
      status: severe,
      why: `${OUR_MODULE} at ${where(firstOurs)} is never reached in ${stack} when the password is right: ${skipReason(s, p, v.ourIdx[0] as number)}`,
      fix: `Move line ${firstOurs.line} of ${firstOurs.file}: ${placement(lookup, layout, s, p)}`,
    };
  }
  const reached = (s.entries[v.reachedOurs[0] as number] as FlatEntry).rule;
  const unix = v.unixReached.length > 0 ? (s.entries[v.unixReached[0] as number] as FlatEntry).rule : undefined;
  if (unix !== undefined && s.type !== 'session' && (v.unixReached[0] as number) > (v.reachedOurs[0] as number)) {
    return {
      id,
      status: severe,
      why: `${OUR_MODULE} comes before ${PASSWORD_MODULE} in ${stack} (${where(reached)} before ${where(unix)}): the password is not known yet when it runs`,
      fix: `Move line ${reached.line} of ${reached.file}: ${placement(lookup, layout, s, p)}`,
    };
  }
  if (s.type === 'auth' && !reached.args.includes('unwrap')) {
    return {
      id,
      status: 'warn',
      why: `${where(reached)} has no "unwrap": the login password is taken as the mount passphrase itself (legacy), which setups made by setup-private do not use`,
      fix: `Add "unwrap" to line ${reached.line} of ${reached.file}`,
    };
  }
  const after = unix !== undefined && s.type !== 'session' ? `, after ${PASSWORD_MODULE} (${where(unix)})` : '';
  return { id, status: 'ok', why: `${OUR_MODULE} is reached in ${stack} on a right password (${where(reached)})${after}`, fix: '' };
}

export function checkPam(facts: PamFacts): Finding[] {
  const lookup = pamLookup(facts);
  const layout = pamLayout(facts.osRelease, new Set(facts.files.map((f) => base(f.path))));
  const stacks = PAM_SERVICES.flatMap(([service, types]) => types.map((t) => resolveStack(lookup, service, t))).filter((s) => !s.absent);
  if (stacks.length === 0) {
    return [{ id: 'pam', status: 'warn', why: `none of ${PAM_SERVICES.map(([s]) => s).join(', ')} has a PAM file in ${facts.dir}`, fix: 'Add the module lines to your distribution’s shared PAM stacks (docs/install.md)' }];
  }
  const out = stacks.map((s) => checkService(lookup, layout, s));
  const problems = new Map<string, Finding>();
  for (const s of stacks) {
    for (const pr of s.problems) {
      const key = `${where(pr.from)} ${pr.target}`;
      if (problems.has(key)) continue;
      problems.set(
        key,
        pr.kind === 'missing-include'
          ? { id: 'pam.include', status: 'fail', why: `${where(pr.from)} includes ${pr.target}, which does not exist: Linux-PAM fails every stack that goes through it`, fix: `Restore ${pr.target} or remove line ${pr.from.line} of ${pr.from.file}` }
          : { id: 'pam.include', status: 'warn', why: `${where(pr.from)} includes ${pr.target} ${pr.kind === 'loop' ? 'again (an include loop)' : `past ${MAX_DEPTH} nested files`}: not followed`, fix: `Remove line ${pr.from.line} of ${pr.from.file}` },
      );
    }
  }
  out.push(...problems.values());
  const leftovers = new Set<string>();
  const both = new Set<string>();
  for (const s of stacks) {
    const p = evaluateStack(s);
    for (const e of s.entries) if (!e.substack && moduleIs(e.rule, REFERENCE_MODULE)) leftovers.add(`${where(e.rule)} (${s.type})`);
    const reachedMods = p.reached.map((i) => (s.entries[i] as FlatEntry).rule);
    if (reachedMods.some((r) => moduleIs(r, REFERENCE_MODULE)) && reachedMods.some((r) => moduleIs(r, OUR_MODULE))) both.add(`${s.service} ${s.type}`);
  }
  if (leftovers.size > 0) {
    out.push({
      id: 'pam.leftover',
      status: 'warn',
      why: `${REFERENCE_MODULE} (ecryptfs-utils) is also in the stacks (${[...leftovers].join(', ')})${both.size > 0 ? `: both modules unlock and mount in ${[...both].join(', ')}` : ''}`,
      fix: layout === 'debian' ? `Remove the ${REFERENCE_MODULE} lines: pam-auth-update --remove ecryptfs-utils` : layout === 'fedora' ? 'authselect disable-feature with-ecryptfs' : `Remove the ${REFERENCE_MODULE} lines`,
    });
  } else {
    out.push({ id: 'pam.leftover', status: 'ok', why: `no ${REFERENCE_MODULE} in the stacks`, fix: '' });
  }
  return out;
}
