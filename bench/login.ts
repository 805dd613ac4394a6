/**
 * Login-path figures: agent start-up, agent peak RSS (host), and login latency in the
 * VM: authenticate / open_session / close_session in one PAM handle (test/fixtures/vm/pam-hold.c
 * times each call: ours keeps the password from auth for open_session, so the phases must share a
 * handle) for (a) pam_unix alone, (b) + the reference pam_ecryptfs.so (ecryptfs-utils 111) and
 * (c) + ours, with a user set up by ecryptfs-setup-private. Figures, not assertions; under TCG
 * only ratios within one run compare.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = join(__dirname, '..', '..');
export const AGENT = join(REPO, 'dist', 'agent', 'main.js');
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export interface Stats {
  n: number;
  median: number;
  min: number;
  p90: number;
}
export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, median: at(0.5), min: s[0] ?? NaN, p90: at(0.9) };
}
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

function timeMs(cmd: string, args: string[], input?: Buffer | string): number {
  const t0 = process.hrtime.bigint();
  spawnSync(cmd, args, { input, env: ENV });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A close_session request for `nobody` (no private directory: the agent has nothing to do, and logs nothing). */
function noSetupRequest(): Buffer {
  const proto = require('../src/formats/protocol') as typeof import('../src/formats/protocol');
  return proto.renderRequest({ phase: 'close_session', user: 'nobody', service: 'eat-bench', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: false, silent: false });
}

/**
 * Agent start-up: `node dist/agent/main.js pam` answering an immediately invalid request (which
 * it logs), and (as root) a close_session for a user without a private directory (nothing to do
 * or log), against `node -e 0`; interleaved, so that the machine's load weighs on all alike.
 */
export function benchStartup(runs: number): string[] {
  const bad = Buffer.from('not a request\n');
  const rows: Array<[string, () => number]> = [
    ['node -e 0 (baseline)', () => timeMs(process.execPath, ['-e', '0'])],
    ['agent, invalid request (logs an error)', () => timeMs(AGENT, ['pam'], bad)],
  ];
  if (process.getuid?.() === 0) {
    const none = noSetupRequest();
    rows.push(['agent, close_session of a user without a private directory', () => timeMs(AGENT, ['pam'], none)]);
  }
  for (const [, run] of rows) run(); // warm-up
  const times = rows.map((): number[] => []);
  for (let i = 0; i < runs; i++) rows.forEach(([, run], k) => times[k]!.push(run()));
  const st = times.map(stats);
  const bare = st[0]!.median;
  return [
    `agent start-up (spawn → exit; ${runs} runs each, interleaved)`,
    '| process | median ms | min ms | p90 ms | median − node -e 0 |',
    '|---|---|---|---|---|',
    ...rows.map(([name], k) => `| ${name} | ${f1(st[k]!.median)} | ${f1(st[k]!.min)} | ${f1(st[k]!.p90)} | ${k === 0 ? '' : f1(st[k]!.median - bare)} |`),
  ];
}

/** Peak RSS (KiB) by /usr/bin/time -f %M. */
function peakRssKb(cmd: string[], input: Buffer): number {
  const r = spawnSync('/usr/bin/time', ['-f', '@@RSS %M', ...cmd], { input, env: ENV });
  const m = /@@RSS (\d+)/.exec(r.stderr.toString());
  return m ? Number(m[1]) : NaN;
}

/** Peak RSS of the agent: invalid request, and (as root, with the reference tools) a real auth + open_session. */
export function benchRss(): string[] {
  const rows: [string, number][] = [
    ['node -e 0 (baseline)', peakRssKb([process.execPath, '-e', '0'], Buffer.alloc(0))],
    ['agent, invalid request', peakRssKb([AGENT, 'pam'], Buffer.from('x\n'))],
  ];
  if (process.getuid?.() === 0 && existsSync('/usr/bin/ecryptfs-wrap-passphrase') && existsSync('/usr/bin/time')) {
    // The test helpers (compiled next to this file) make a throwaway user with the reference tools.
    const users = require('../test/helpers/users') as typeof import('../test/helpers/users');
    const proto = require('../src/formats/protocol') as typeof import('../src/formats/protocol');
    const u = users.createUser('eatbench');
    try {
      users.setupPrivateWithUtils(u);
      const req = (phase: 'auth' | 'open_session', authtok?: Buffer) => {
        const r: import('../src/formats/protocol').AgentRequest = { phase, user: u.name, service: 'eat-bench', tty: '', rhost: '', ruser: '', pamPid: process.pid, session: '', unwrap: true, debug: false, silent: false };
        if (authtok) r.authtok = authtok;
        return proto.renderRequest(r);
      };
      rows.push(['agent, open_session (unwrap + 2 KDFs + add_key + checks + mount(2) → ENODEV here)', peakRssKb([AGENT, 'pam'], req('open_session', Buffer.from(u.password)))]);
    } finally {
      users.deleteUser(u);
    }
  }
  return ['agent peak RSS (/usr/bin/time -f %M)', '| run | peak RSS MiB |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${f1(v / 1024)} |`)];
}

/** Concurrent whole cycles, spawned vs resident (the logins/s figures): BURST_N cycles of one
 * user at once, and one cycle each of BURST_USERS users at once. */
const BURST_N = 20;
const BURST_USERS = 10;

/** The guest script: sets up a user with ecryptfs-setup-private and times pamtester per phase. */
export function vmScript(runs: number, hold: string): string {
  return `
set -u
BURST_N=${BURST_N}
BURST_USERS=${BURST_USERS}
REPO='${REPO}'
HOLD='${hold}'
MOD="$REPO/build/Release/pam_ecryptfs_agent.so"
AGENT="$REPO/dist/agent/main.js"
modprobe ecryptfs || { echo "BENCH-ERROR no ecryptfs module"; exit 1; }
U=eatbench; PW='Bench-pw 2026'; H=/home/$U
useradd -m -s /bin/bash $U && echo "$U:$PW" | chpasswd
# a user with no private directory: what any resident request costs when there is nothing to do
useradd -m -s /bin/bash eatnone && echo "eatnone:$PW" | chpasswd
setpriv --reuid=$U --regid=$U --init-groups --reset-env env HOME=$H keyctl session - \\
  ecryptfs-setup-private --nopwcheck -l "$PW" -m "bench-mount-pass-1" > /tmp/setup.out 2>&1 || { echo "BENCH-ERROR setup: $(cat /tmp/setup.out)"; exit 1; }
base() { cat <<PAM
auth     required  pam_unix.so
$1
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
$2
PAM
}
base "" "" > /etc/pam.d/eat-b-unix
base "auth optional pam_ecryptfs.so unwrap" "session optional pam_ecryptfs.so unwrap" > /etc/pam.d/eat-b-ref
base "auth optional $MOD unwrap agent=$AGENT timeout=120 socket=none" "session optional $MOD agent=$AGENT timeout=120 socket=none" > /etc/pam.d/eat-b-ours
# agent=/bin/false: a phase the resident agent did not serve cannot mount (the mounted column says)
base "auth optional $MOD unwrap agent=/bin/false timeout=120" "session optional $MOD agent=/bin/false timeout=120" > /etc/pam.d/eat-b-warm
# the resident agent as its service runs it, minus systemd (fast mode): it binds the sockets itself.
# Two spares: open_session takes one and close_session follows at once, before a third is warm.
mkdir -p /run/ecryptfs-agent
node "$REPO/dist/agent/master.js" --listen /run/ecryptfs-agent --idle-exit 0 --spares 2 > /tmp/master.log 2>&1 &
MASTER=$!
spares_up() { [ -S /run/ecryptfs-agent/agent.sock ] && [ "$(pgrep -cf "$AGENT worker")" -ge 2 ]; }
for i in $(seq 1 600); do spares_up && break; sleep 0.1; done
spares_up || { echo "BENCH-ERROR resident agent not up: $(cat /tmp/master.log)"; exit 1; }
mounted() { awk -v m="$H/Private" '$5 == m && / - ecryptfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
ns() { date +%s%N; }
one() { # one CFG ITER [STACK USER]: one PAM handle (pam-hold) times each call; mounted is looked at while it is open
  local cfg=$1 it=$2 stack=\${3:-$1} user=\${4:-$U} m=0
  rm -f /tmp/o.$cfg /tmp/m.$cfg
  { echo "$PW"; for i in $(seq 1 3000); do grep -qE '^(OPEN |AUTH [1-9])' /tmp/o.$cfg 2>/dev/null && break; sleep 0.02; done
    mounted && : > /tmp/m.$cfg; } | "$HOLD" eat-b-$stack $user > /tmp/o.$cfg 2>&1
  [ -e /tmp/m.$cfg ] && m=1
  mounted && echo "BENCH-WARN $cfg still mounted after close"
  grep -q '^CLOSED 0 ' /tmp/o.$cfg || echo "BENCH-WARN $cfg: $(tr '\\n' ' ' < /tmp/o.$cfg)"
  echo "BENCH $cfg $it $(awk '$1 == "AUTH" { printf "%s", $3 }' /tmp/o.$cfg) $(awk '$1 == "OPEN" { printf "%s", $4 }' /tmp/o.$cfg) $(awk '$1 == "CLOSED" { printf "%s", $3 }' /tmp/o.$cfg) $m"
}
floor() { # one ITER: the Node floor of every phase of ours: bare node, the agent answering an invalid request, and one with nothing to do
  local it=$1 t0 t1 t2
  t0=$(ns); node -e 0; t1=$(ns); echo 'not a request' | "$AGENT" pam > /dev/null; t2=$(ns)
  printf 'ECRYPTFS-AGENT 1\\nphase=close_session\\nuser=nobody\\nservice=eat-b-ours\\npam_pid=1\\nend\\n' | "$AGENT" pam > /dev/null; t3=$(ns)
  echo "BENCH-FLOOR $it $(( (t1-t0)/1000 )) $(( (t2-t1)/1000 )) $(( (t3-t2)/1000 ))"
}
for cfg in unix ref ours warm; do one $cfg 0; done; floor 0   # warm-up (page cache, first exec)
for i in $(seq 1 ${runs}); do
  for cfg in unix ref ours warm; do sleep 1; one $cfg $i; done
  sleep 1; one unixnone $i unix eatnone; sleep 1; one warmnone $i warm eatnone
  floor $i
done
# users for the many-users burst: accounts one after another (useradd locks /etc/passwd), the
# private directories all at once
MANY=''
for k in $(seq 1 $BURST_USERS); do useradd -m -s /bin/bash eatm$k && echo "eatm$k:$PW" | chpasswd && MANY="$MANY eatm$k"; done
spids=''
for u in $MANY; do setpriv --reuid=$u --regid=$u --init-groups --reset-env env HOME=/home/$u keyctl session - \\
  ecryptfs-setup-private --nopwcheck -l "$PW" -m "bench-mount-pass-$u" > /tmp/setup.$u 2>&1 & spids="$spids $!"; done
wait $spids # not a bare wait: the master is a background job
burst() { # burst CFG LABEL USER...: one whole login+logout cycle per USER, all at once; wall time, how many ended well
  local cfg=$1 label=$2 k=0 u t0 t1 good=0 pids='' left
  shift 2
  t0=$(ns)
  for u in "$@"; do k=$((k + 1)); echo "$PW" | "$HOLD" eat-b-$cfg $u > /tmp/burst.$cfg.$k 2>&1 & pids="$pids $!"; done
  wait $pids; t1=$(ns) # not a bare wait: the master is a background job too
  for k in $(seq 1 $#); do grep -q '^CLOSED 0 ' /tmp/burst.$cfg.$k && good=$((good + 1)); done
  left=$(grep -c ' - ecryptfs ' /proc/self/mountinfo)
  [ "$left" -eq 0 ] || echo "BENCH-WARN burst $cfg $label: $left ecryptfs mounts left after the last logout"
  echo "BENCH-BURST $cfg $label $# $(( (t1-t0)/1000 )) $good"
}
ONE=$(for k in $(seq 1 $BURST_N); do echo $U; done)
for cfg in ours warm; do sleep 2; burst $cfg one $ONE; sleep 2; burst $cfg many $MANY; done
rss() { ps -o rss= -p "$1" | tr -d ' '; }
echo "BENCH-RSS master $(rss $MASTER)"
for w in $(pgrep -f "$AGENT worker"); do echo "BENCH-RSS spare $(rss $w)"; done
kill $MASTER; wait $MASTER
echo "BENCH-DONE"
`;
}

export interface VmFigures {
  lines: string[];
  accel: string;
}

/** Parses "BENCH cfg iter auth_us open_us close_us mounted" lines into the tables. */
export function vmTables(output: string, accel: string, bootMs: number): string[] {
  const rows = new Map<string, { auth: number[]; open: number[]; close: number[]; mounted: number; n: number }>();
  for (const line of output.split('\n')) {
    const m = /^BENCH (\w+) (\d+) (\d+) (\d+) (\d+) ([01])$/.exec(line.trim());
    if (!m || m[2] === '0') continue;
    const r = rows.get(m[1]!) ?? { auth: [], open: [], close: [], mounted: 0, n: 0 };
    r.auth.push(Number(m[3]) / 1000);
    r.open.push(Number(m[4]) / 1000);
    r.close.push(Number(m[5]) / 1000);
    r.mounted += Number(m[6]);
    r.n++;
    rows.set(m[1]!, r);
  }
  const floor = { node: [] as number[], agent: [] as number[], idle: [] as number[] };
  for (const line of output.split('\n')) {
    const m = /^BENCH-FLOOR (\d+) (\d+) (\d+) (\d+)$/.exec(line.trim());
    if (!m || m[1] === '0') continue;
    floor.node.push(Number(m[2]) / 1000);
    floor.agent.push(Number(m[3]) / 1000);
    floor.idle.push(Number(m[4]) / 1000);
  }
  const med = (cfg: string, k: 'auth' | 'open' | 'close') => stats(rows.get(cfg)?.[k] ?? []).median;
  const out = [
    `login latency in the VM (accelerator ${accel}; boot ${bootMs} ms; pamtester per phase, median of ${rows.get('unix')?.n ?? 0} runs)`,
    '| stack | authenticate ms | open_session ms | close_session ms | mounted after open |',
    '|---|---|---|---|---|',
  ];
  const names: Record<string, string> = {
    unix: '(a) pam_unix alone',
    ref: '(b) + pam_ecryptfs.so (reference)',
    ours: '(c) + pam_ecryptfs_agent.so, agent spawned (socket=none)',
    warm: '(d) + pam_ecryptfs_agent.so, resident agent (a spare worker serves)',
    unixnone: '(e) pam_unix alone, a user without a private directory',
    warmnone: '(f) as (d), a user without a private directory (the worker has nothing to do)',
  };
  for (const cfg of ['unix', 'ref', 'ours', 'warm', 'unixnone', 'warmnone']) {
    const r = rows.get(cfg);
    if (!r) continue;
    out.push(`| ${names[cfg]} | ${f1(med(cfg, 'auth'))} | ${f1(med(cfg, 'open'))} | ${f1(med(cfg, 'close'))} | ${r.mounted}/${r.n} |`);
  }
  out.push(
    '',
    'added latency over pam_unix alone (medians)',
    '| phase | + pam_ecryptfs ms | + ours spawned ms | + ours resident ms | spawned / pam_ecryptfs | resident / pam_ecryptfs |',
    '|---|---|---|---|---|---|',
  );
  const ratio = (x: number, ref: number) => (ref > 0 ? (x / ref).toFixed(2) : '-');
  const added = (cfg: string, k: 'auth' | 'open' | 'close') => med(cfg, k) - med('unix', k);
  for (const k of ['auth', 'open', 'close'] as const) {
    const ref = added('ref', k);
    out.push(`| ${k} | ${f1(ref)} | ${f1(added('ours', k))} | ${f1(added('warm', k))} | ${ratio(added('ours', k), ref)} | ${ratio(added('warm', k), ref)} |`);
  }
  const tot = (cfg: string) => added(cfg, 'auth') + added(cfg, 'open') + added(cfg, 'close');
  out.push(`| whole login+logout | ${f1(tot('ref'))} | ${f1(tot('ours'))} | ${f1(tot('warm'))} | ${ratio(tot('ours'), tot('ref'))} | ${ratio(tot('warm'), tot('ref'))} |`);
  if (rows.has('warmnone') && rows.has('unixnone')) {
    // the fixed cost of one resident request (connect, a fresh worker parses it, looks the user
    // up, finds no setup, replies): what no phase served this way can go below
    const floorOf = (k: 'open' | 'close') => med('warmnone', k) - med('unixnone', k);
    out.push(
      '',
      'the resident floor: (f) over (e), a worker with nothing to do, against what pam_ecryptfs adds for the user with a private directory',
      '| phase | resident floor ms | + pam_ecryptfs ms | floor / pam_ecryptfs |',
      '|---|---|---|---|',
      ...(['open', 'close'] as const).map((k) => `| ${k} | ${f1(floorOf(k))} | ${f1(added('ref', k))} | ${ratio(floorOf(k), added('ref', k))} |`),
    );
  }
  const bursts = [...output.matchAll(/^BENCH-BURST (ours|warm) (one|many) (\d+) (\d+) (\d+)$/gm)];
  if (bursts.length) {
    out.push('', 'whole login+logout cycles at once (pam-hold: auth + open + close each)', '| cycles | path | wall s | cycles/s | ended well |', '|---|---|---|---|---|');
  }
  for (const label of ['one', 'many']) {
    for (const m of bursts.filter((b) => b[2] === label)) {
      const n = Number(m[3]);
      const secs = Number(m[4]) / 1e6;
      const what = label === 'one' ? `${n} of one user` : `one each of ${n} users`;
      out.push(`| ${what} | ${m[1] === 'ours' ? 'spawned' : 'resident'} | ${f1(secs)} | ${(n / secs).toFixed(2)} | ${m[5]}/${n} |`);
    }
  }
  const rss = [...output.matchAll(/^BENCH-RSS (master|spare) (\d+)$/gm)].map((m) => `${m[1]} ${f1(Number(m[2]) / 1024)} MiB`);
  if (rss.length) out.push('', `resident agent RSS in the VM after the runs: ${rss.join(', ')}`);
  // What no Node agent can go below: every phase of ours execs node once.
  const bare = stats(floor.node).median;
  const agent = stats(floor.agent).median;
  out.push(
    '',
    `the Node floor in the VM (medians of ${floor.node.length} runs; each phase of ours is one agent process)`,
    '| process | ms | share of ours added: auth / open / close |',
    '|---|---|---|',
  );
  const share = (x: number) => (['auth', 'open', 'close'] as const).map((k) => `${((100 * x) / (med('ours', k) - med('unix', k))).toFixed(0)}%`).join(' / ');
  out.push(`| node -e 0 | ${f1(bare)} | ${share(bare)} |`);
  out.push(`| agent start-up (invalid request: spawn → reply → exit) | ${f1(agent)} | ${share(agent)} |`);
  const idle = stats(floor.idle).median;
  out.push(`| agent, close_session of a user without a private directory | ${f1(idle)} | ${share(idle)} |`);
  out.push(`| node -e 0 / pam_ecryptfs added: auth / open / close | ${(['auth', 'open', 'close'] as const).map((k) => (bare / (med('ref', k) - med('unix', k))).toFixed(2)).join(' / ')} | |`);
  return out;
}

export async function benchVm(runs: number): Promise<string[]> {
  const vm = require('../test/vm/vm') as typeof import('../test/vm/vm');
  const checks = require('../test/vm/checks') as typeof import('../test/vm/checks');
  // two vCPUs: a spare starts beside the phase it follows, as on any multi-core host (one vCPU
  // under TCG would put the spare's start-up into the next phase's figure)
  const r = await vm.runInVm({ script: vmScript(runs, checks.buildPamHold()), mode: 'fast', timeoutMs: 25 * 60_000, cpus: 2 });
  const warnings = r.output.split('\n').filter((l) => /^BENCH-(WARN|ERROR)/.test(l));
  if (!r.output.includes('BENCH-DONE')) return [`VM run did not finish (exit ${r.exitCode}):`, ...r.output.split('\n').slice(-30)];
  return [...vmTables(r.output, r.accel, r.bootMs), ...(warnings.length ? ['', 'warnings:', ...warnings] : [])];
}
