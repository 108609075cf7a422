// The occam benchmark harness: runs every impl of every scenario in one harness run,
// interleaved, and prints a table per scenario with each impl's ratio to the baselines run
// alongside it.
//
//   node bench/run.mjs [--quick] [--only <scenario>[,...]] [--impl <name>[,...]] [--reps N]
//                      [--watchdog S]
//
//   --quick   2 reps of ~50 ms instead of 5 reps of ~200 ms (a smoke test, not numbers to quote)
//   --only    run only these scenarios          --impl   run only these impls
//   --reps N  repetitions per (scenario, impl); the median is reported
//   --watchdog S  seconds before a run is abandoned (default 30)
//
// How a number is made. For each scenario, each impl is first calibrated (runs not counted)
// to the op count that takes ~TARGET_MS; that count is then fixed for all its reps. Reps are
// interleaved: rep 1 runs every impl once, rep 2 again (order rotated each rep), and so on.
// Each run is a fresh child process (bench/lib/child.mjs) with fresh workers; neither start-up
// is timed: every party does `warmup` ops, waits at a shared start barrier, and times from its
// release to its last op; ns/op is (last end - first start) / ops. Reported: median ns/op over reps, min, max, and
// ops_per_sec = 1e9 / median. A run whose checksum differs from the expected one fails loudly.
// A run that has not finished after 30 s (--watchdog) is killed (its process, so its workers
// too, whatever its main thread is doing), the impl is reported as failed and gets no more
// runs in that scenario, and the harness goes on. Exit code 1 if anything failed.
// Each scenario also checks /proc/stat and warns if other processes used the CPUs meanwhile.
//
// Output: a table per scenario on stdout, and bench/results/latest.json: an array of
// { scenario, impl, ops_per_sec, ns_per_op, min_ns, max_ns } (numbers, successful impls only).
// A partial run (--only, --impl) replaces only its own rows there; a --quick run writes nothing.
//
// ─── Adding an impl: the contract ───────────────────────────────────────────────────────────
// Every `bench/impl/<name>.mjs` (name: letters, digits, _ and -; files with another dot in the
// name, such as `occam.worker.mjs`, and subfolders are not loaded — put worker files there)
// adds impl <name>. It exports `scenarios`, an object keyed by scenario name:
//
//   export const scenarios = {
//     'pingpong-w2w': run,                        // a built-in scenario: just the function
//     'select4-unbuffered': {                     // a new scenario, or any entry with options
//       run,
//       op: 'one message received by a select over 4 unbuffered channels', // printed
//       expected: (ops) => checksum,              // optional; else run() must return `expected`
//       hintOps: 2000,                            // optional; first calibration op count
//       ratioTo: 'recv-1024-int',                 // optional; prints this scenario's median
//                                                 // over that one's, per impl, at the end
//     },
//   };
//
//   async function run(opts) → { ns_per_op, checksum, expected? }
//     opts.ops      number of timed ops (even, >= 2). What one op is: the scenario's `op`
//                   (bench/scenarios.mjs). mpmc-1024-int: ops messages in all (ops/2 per
//                   producer and per consumer). pingpong-w2w-x2: each of the 2 pairs does
//                   `ops` round trips and ns_per_op = wall time / ops (per-pair round trip).
//     opts.warmup   ops to do first, untimed (even, >= 2), before the parties' start barrier.
//     opts.spawn    (url, workerOptions) → Worker: a `new Worker` whose 'error' or non-zero
//                   exit fails the run at once (instead of at the watchdog). Optional.
//     opts.signal   AbortSignal, aborted when such a worker fails: stop then.
//     opts.scenario the scenario name.
//   Start workers fresh on every call and time only between the start barrier and the end;
//   bench/lib/launch.mjs (runParties) and bench/lib/worker.mjs do that for the baselines
//   and may be reused.
//   `checksum` (a uint32; built-in scenarios: see bench/lib/checksum.mjs and scenarios.mjs)
//   must equal the harness's expected value for `ops` timed ops. Resolve only after every
//   timed op has completed. run() runs on the main thread of a child process that exits
//   after answering, so nothing needs cleaning up; stdout goes to the harness's stderr.
// If bench/impl/occam.mjs is missing or fails to import, the baselines run alone and the
// harness says so. Baselines live in bench/baselines/ (registry: bench/baselines/index.mjs).
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import os from 'node:os';
import { loadRegistry } from './lib/registry.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
    impl: { type: 'string', multiple: true },
    reps: { type: 'string' },
    watchdog: { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node bench/run.mjs [--quick] [--only <scenario>[,...]] [--impl <name>[,...]]' +
      ' [--reps N] [--watchdog S]',
  );
  process.exit(0);
}
const list = (xs) => (xs ? xs.flatMap((x) => x.split(',')).filter(Boolean) : null);
const ONLY = list(args.only);
const IMPLS = list(args.impl);
const REPS = args.reps ? Number(args.reps) : args.quick ? 2 : 5;
const TARGET_MS = args.quick ? 50 : 200;
const WATCHDOG_MS = Number(args.watchdog) * 1000;
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps wants a positive integer, got ${args.reps}`);
if (!(WATCHDOG_MS > 0)) throw new Error(`--watchdog wants a number of seconds, got ${args.watchdog}`);

// ─── Registry ──────────────────────────────────────────────────────────────────────────────

const { registry, notes } = await loadRegistry();
process.on('unhandledRejection', (e) => notes.push(`unhandled rejection (ignored): ${firstLine(e)}`));

// ─── One run ───────────────────────────────────────────────────────────────────────────────

class BenchFailure extends Error {}

const childUrl = new URL('./lib/child.mjs', import.meta.url);

/**
 * Runs `ops` timed ops of one impl in a fresh child process (bench/lib/child.mjs) and resolves
 * to ns/op, or throws. The child's stdout goes to our stderr, so an impl's debug prints cannot
 * break the tables. The watchdog kills the child, and with it every worker it started.
 */
async function runOnce(scenario, impl, ops, warmup) {
  const child = fork(childUrl, [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  child.stdout.pipe(process.stderr, { end: false });
  let timer;
  try {
    const reply = await new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new BenchFailure(`watchdog: not finished after ${WATCHDOG_MS / 1000} s; killed with its workers`));
      }, WATCHDOG_MS);
      child.once('message', resolve);
      child.once('error', reject);
      child.once('exit', (code, sig) => reject(new BenchFailure(`the run's process exited (${sig ?? code}) without a result`)));
      child.send({ scenario: scenario.name, impl: impl.name, ops, warmup });
    });
    if (reply.error) throw new BenchFailure(reply.error);
    check(scenario, ops, reply.result);
    return reply.result.ns_per_op;
  } finally {
    clearTimeout(timer);
    // Let it exit (it does, right after answering) before the next run starts; 2 s of grace.
    if (child.exitCode === null && child.signalCode === null) {
      const grace = setTimeout(() => child.kill('SIGKILL'), 2000);
      await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(grace);
    }
  }
}

function check(scenario, ops, r) {
  if (!r || !Number.isFinite(r.ns_per_op) || r.ns_per_op <= 0) {
    throw new BenchFailure(`run() returned no positive ns_per_op: ${JSON.stringify(r)}`);
  }
  const expected = scenario.expected ? scenario.expected(ops) : r.expected;
  if (!Number.isFinite(expected)) {
    throw new BenchFailure(
      `no expected checksum: scenario ${scenario.name} has none, so run() must return one`,
    );
  }
  if (scenario.expected && r.expected !== undefined && r.expected >>> 0 !== expected >>> 0) {
    throw new BenchFailure(`impl expects checksum ${r.expected}, the harness ${expected} (ops=${ops})`);
  }
  if (!Number.isFinite(r.checksum) || r.checksum >>> 0 !== expected >>> 0) {
    throw new BenchFailure(`CHECKSUM MISMATCH: got ${r.checksum}, expected ${expected} (ops=${ops})`);
  }
}

// ─── Sizing ────────────────────────────────────────────────────────────────────────────────

const even = (n) => Math.max(2, 2 * Math.round(n / 2));
const roundSig2 = (n) => {
  const p = 10 ** Math.max(0, Math.floor(Math.log10(n)) - 1);
  return Math.round(n / p) * p;
};
/**
 * Untimed ops before a run's timed ones: half as many as it times, and at least WARMUP_OPS where
 * they take under WARMUP_MS (by `ns`, the ns/op measured so far). A run should time the steady
 * state, and occam's channel paths reach theirs only after 100,000–250,000 ops (the JIT optimises
 * them on a background thread that competes with the two busy workers for the two cores); before
 * that an op costs 0.3–2 µs instead of ~0.07 µs (scratch probe: per-50k-op timings of a
 * `spsc-1024-int` stream). Cheap ops get the floor; slow ones (a wake-up per op) need no more
 * than half.
 */
const WARMUP_OPS = 300_000;
const WARMUP_MS = 150;
const warmupFor = (ops, ns) =>
  even(Math.max(Math.ceil(ops / 2), ns > 0 ? Math.min(WARMUP_OPS, Math.floor((WARMUP_MS * 1e6) / ns)) : 0));
const opsFor = (ns) => even(roundSig2(Math.min(5e7, Math.max(20, (TARGET_MS * 1e6) / ns))));

/**
 * Finds the op count that takes ~TARGET_MS: short runs growing until one takes TARGET_MS / 8,
 * then one run at the chosen size. Waking threads here is bimodal (one run can be 3-100x
 * slower than the next), so when the two estimates disagree by more than 2x the count follows
 * their geometric mean, capped so that a rep at the slowest ns/op seen takes at most
 * 10 x TARGET_MS (far below the watchdog). These runs also check correctness; none is counted.
 */
async function calibrate(scenario, impl) {
  let ops = even(impl.hintOps ?? scenario.hintOps ?? 2000);
  let ns = 0;
  let slowest = 0;
  for (let attempt = 0; ; attempt++) {
    ns = await runOnce(scenario, impl, ops, warmupFor(ops, ns));
    slowest = Math.max(slowest, ns);
    const ms = (ns * ops) / 1e6;
    if (ms >= TARGET_MS / 8 || attempt === 3) break;
    ops = even(ops * Math.min(20, Math.ceil(TARGET_MS / 4 / Math.max(ms, 0.05))));
  }
  ops = opsFor(ns);
  const verified = await runOnce(scenario, impl, ops, warmupFor(ops, ns));
  slowest = Math.max(slowest, verified);
  if (verified > 2 * ns || verified < ns / 2) ops = opsFor(Math.sqrt(ns * verified));
  return Math.min(ops, even(roundSig2((10 * TARGET_MS * 1e6) / slowest)));
}

// ─── Main loop ─────────────────────────────────────────────────────────────────────────────

const started = Date.now();
const rows = [];
const failures = [];
const disturbedScenarios = [];
for (const n of ONLY ?? []) {
  if (!registry.has(n)) {
    notes.push(`--only ${n}: no such scenario (have: ${[...registry.keys()].join(', ')}).`);
  }
}

const cpu = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}`;
console.log(`occam bench — node ${process.version}, ${cpu}, ${REPS} reps of ~${TARGET_MS} ms, ${new Date().toISOString()}`);
for (const n of notes) console.log(`note: ${n}`);

for (const scenario of registry.values()) {
  if (ONLY && !ONLY.includes(scenario.name)) continue;
  const impls = [...scenario.impls.values()].filter((i) => !IMPLS || IMPLS.includes(i.name));
  if (impls.length === 0) continue;
  const runs = impls.map((impl) => ({ impl, ops: 0, samples: [], error: null }));
  const before = loadSnapshot();
  progress(`${scenario.name}: calibrating`);
  for (const r of runs) {
    try {
      r.ops = await calibrate(scenario, r.impl);
    } catch (e) {
      r.error = failedNow(scenario, r.impl, e);
    }
    progress('.');
  }
  for (let rep = 0; rep < REPS; rep++) {
    progress(` rep ${rep + 1}`);
    for (let k = 0; k < runs.length; k++) {
      const r = runs[(k + rep) % runs.length]; // rotate so no impl always runs first
      if (r.error) continue;
      try {
        r.samples.push(await runOnce(scenario, r.impl, r.ops, warmupFor(r.ops, (TARGET_MS * 1e6) / r.ops)));
      } catch (e) {
        r.error = failedNow(scenario, r.impl, e);
      }
    }
  }
  progress('\n');
  printTable(scenario, runs);
  if (disturbed(before, loadSnapshot())) disturbedScenarios.push(scenario.name);
}

// Scenarios that name another as their yardstick (`ratioTo`): the ratio of medians, per impl.
for (const scenario of registry.values()) {
  if (!scenario.ratioTo) continue;
  for (const row of rows.filter((r) => r.scenario === scenario.name)) {
    const base = rows.find((r) => r.scenario === scenario.ratioTo && r.impl === row.impl);
    if (base) console.log(`${scenario.name} / ${scenario.ratioTo} (${row.impl}): ${(row.ns_per_op / base.ns_per_op).toFixed(2)}x`);
  }
}

const total = (Date.now() - started) / 1000;
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
// A partial run (--only, --impl) replaces its own rows and keeps the rest of the last results.
const latestUrl = new URL('./results/latest.json', import.meta.url);
let kept = [];
if (args.only || args.impl) {
  try {
    const fresh = new Set(rows.map((r) => `${r.scenario} ${r.impl}`));
    kept = JSON.parse(readFileSync(latestUrl, 'utf8')).filter((r) => !fresh.has(`${r.scenario} ${r.impl}`));
  } catch {
    kept = []; // no earlier results
  }
}
const order = [...registry.keys()];
const written = [...kept, ...rows].sort((a, b) => order.indexOf(a.scenario) - order.indexOf(b.scenario));
if (args.quick) {
  // A smoke test's numbers are not results.
  console.log(`\n--quick: bench/results/latest.json left as it was; total wall time ${total.toFixed(1)} s`);
} else {
  await writeFile(latestUrl, JSON.stringify(written, null, 2) + '\n');
  console.log(
    `\nwrote bench/results/latest.json (${rows.length} rows${kept.length > 0 ? `, ${kept.length} kept from the last run` : ''}); total wall time ${total.toFixed(1)} s`,
  );
}
for (const n of notes) console.log(`note: ${n}`);
if (disturbedScenarios.length) {
  console.log(`warning: other load on the machine disturbed: ${disturbedScenarios.join(', ')} (run again).`);
}
if (failures.length) {
  console.log(`FAILED (${failures.length}):`);
  for (const f of failures) console.log(`  ${f}`);
}
process.exit(failures.length ? 1 : 0); // a stray handle of a failed impl must not keep us alive

// ─── Output ────────────────────────────────────────────────────────────────────────────────

function printTable(scenario, runs) {
  const stats = runs.map((r) => {
    if (r.error || r.samples.length === 0) return { ...r };
    const xs = [...r.samples].sort((a, b) => a - b);
    const mid = xs.length >> 1;
    const median = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
    return { ...r, median, min: xs[0], max: xs[xs.length - 1] };
  });
  const bases = stats.filter((s) => s.impl.baseline && s.median);
  console.log(`\n${scenario.name} — one op: ${scenario.op}`);
  const table = [
    ['impl', 'ops/run', 'median ns/op', 'ops/s', 'min ns', 'max ns', 'ratio to baselines (>1 = slower)'],
  ];
  for (const s of stats) {
    if (!s.median) {
      const why = firstLine(s.error ?? new Error('no samples'));
      table.push([s.impl.name, String(s.ops || '-'), 'FAILED', '', '', '', why]);
      failures.push(`${scenario.name} / ${s.impl.name}: ${why}`);
      continue;
    }
    const ratios = bases
      .filter((b) => b !== s)
      .map((b) => `${s.impl.name}/${b.impl.name} ${fmtRatio(s.median / b.median)}`)
      .join('  ');
    const rate = fmtRate(1e9 / s.median);
    table.push([s.impl.name, String(s.ops), fmtNs(s.median), rate, fmtNs(s.min), fmtNs(s.max), ratios]);
    rows.push({
      scenario: scenario.name,
      impl: s.impl.name,
      ops_per_sec: round3(1e9 / s.median),
      ns_per_op: round3(s.median),
      min_ns: round3(s.min),
      max_ns: round3(s.max),
    });
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) {
    const text = row.map((cell, c) =>
      c === 0 || c === row.length - 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]),
    );
    console.log(text.join('  ').trimEnd());
  }
}

// ─── Interference ──────────────────────────────────────────────────────────────────────────
// On a 2-core machine another process using one core changes every number (threads that had a
// core each now share one). Linux's /proc/stat says how busy the machine was; our share is
// our own and our finished children's CPU time (/proc/self/stat); the rest was someone else,
// or the hypervisor (steal).

function loadSnapshot() {
  let busy = 0;
  let steal = 0;
  try {
    // cpu  user nice system idle iowait irq softirq steal ...   (in USER_HZ = 1/100 s)
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    busy = (f[0] + f[1] + f[2] + f[5] + f[6]) * 10; // ms
    steal = (f[7] ?? 0) * 10;
  } catch {
    return null; // not Linux: no warning
  }
  // /proc/self/stat after the ")": field 11 utime, 12 stime, 13 cutime, 14 cstime (USER_HZ)
  const st = readFileSync('/proc/self/stat', 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number);
  const self = (f[11] + f[12] + f[13] + f[14]) * 10; // ms
  return { at: performance.now(), busy, steal, self };
}

/** Prints a warning and returns true if the machine was not ours alone between a and b. */
function disturbed(a, b) {
  if (!a || !b) return false;
  const wall = b.at - a.at;
  const others = (b.busy - a.busy - (b.self - a.self)) / wall;
  const steal = (b.steal - a.steal) / wall;
  if (others > 0.15 || steal > 0.05) {
    console.log(
      `warning: during this scenario other processes used ${others.toFixed(2)} CPU` +
        ` and the hypervisor stole ${steal.toFixed(2)} CPU: these numbers are disturbed.`,
    );
    return true;
  }
  return false;
}

/** Says so at once (the table comes later); the impl gets no more runs in this scenario. */
function failedNow(scenario, impl, e) {
  process.stderr.write(`\n${scenario.name} / ${impl.name} FAILED: ${firstLine(e)}\n`);
  return e;
}

function progress(text) {
  process.stderr.write(text);
}

function firstLine(e) {
  return String(e?.message ?? e).split('\n')[0];
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

function fmtNs(ns) {
  return ns.toLocaleString('en-US', { maximumFractionDigits: ns < 100 ? 1 : 0 });
}

function fmtRatio(r) {
  return `${r < 0.1 ? r.toFixed(3) : r < 10 ? r.toFixed(2) : r.toFixed(1)}x`;
}

function fmtRate(r) {
  if (r >= 1e6) return `${(r / 1e6).toFixed(2)}M`;
  if (r >= 1e3) return `${(r / 1e3).toFixed(1)}k`;
  return r.toFixed(0);
}
