// Drivers of the pool scenarios, shared by every pool (occam's and the baselines). A pool is an
// adapter: { create(): pool, run(pool, x): Promise<x + 1>, close(pool): Promise }.
import { fork } from 'node:child_process';

const now = () => Number(process.hrtime.bigint());
const WINDOW = 1000;

/** Runs tasks 0..n-1 with `window` in flight; resolves to the sum of the results (uint32). */
function inFlight(pool, a, n, window) {
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    let sum = 0;
    const launch = () => {
      const x = next++;
      a.run(pool, x).then((y) => {
        sum = (sum + y) | 0;
        if (++done === n) resolve(sum >>> 0);
        else if (next < n) launch();
      }, reject);
    };
    for (let i = 0; i < Math.min(window, n); i++) launch();
  });
}

export const poolScenarios = (a, startupChild) => ({
  'pool-throughput': async (opts) => {
    const pool = a.create();
    // Each pool in its steady state: occam's main thread and workers reach theirs only after
    // some 60,000 tasks here (the JIT's tiers: 50k tasks/s for the first 20,000, 300-400k/s
    // later), piscina's after a few thousand.
    await inFlight(pool, a, Math.max(opts.warmup, 100_000), WINDOW);
    const t0 = now();
    const checksum = await inFlight(pool, a, opts.ops, WINDOW);
    const ns = now() - t0;
    await a.close(pool);
    return { ns_per_op: ns / opts.ops, checksum };
  },
  'pool-latency': async (opts) => {
    const pool = a.create();
    // A pool in its steady state: on 2 cores, the JIT's background compiles in the first
    // thousands of round trips take a core from a party and stretch round trips for any pool.
    for (let i = 0; i < Math.max(opts.warmup, 10_000); i++) await a.run(pool, i);
    let s = 0;
    const t0 = now();
    for (let i = 0; i < opts.ops; i++) s = (s + (await a.run(pool, i))) | 0;
    const ns = now() - t0;
    await a.close(pool);
    return { ns_per_op: ns / opts.ops, checksum: s >>> 0 };
  },
  'pool-idle-latency': async (opts) => {
    const pool = a.create();
    for (let i = 0; i < 200; i++) await a.run(pool, i);
    let s = 0;
    let ns = 0;
    for (let i = 0; i < opts.ops; i++) {
      await new Promise((r) => setTimeout(r, 5));
      const t0 = now();
      s = (s + (await a.run(pool, i))) | 0;
      ns += now() - t0;
    }
    await a.close(pool);
    return { ns_per_op: ns / opts.ops, checksum: s >>> 0 };
  },
  // Each op is a fresh process: a second pool in the same process would find its workers warm.
  'pool-startup': async (opts) => {
    let ns = 0;
    let ok = 0;
    for (let i = 0; i < opts.ops; i++) {
      const r = await startup(startupChild);
      ns += r.ns;
      ok += r.result === 2 ? 1 : 0;
    }
    return { ns_per_op: ns / opts.ops, checksum: ok >>> 0 };
  },
});

/** Forks `child` (it prints { ns, result } for one pool's start); resolves to what it printed. */
function startup(child) {
  return new Promise((resolve, reject) => {
    const p = fork(child, [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      // The child prints its figure before it exits; an exit that kills it with a signal (seen
      // now and then with piscina's workers still up) comes after the measurement, so the figure
      // stands, if it was printed whole.
      let printed;
      try {
        printed = JSON.parse(out);
      } catch {
        printed = undefined;
      }
      if (printed === undefined || (code !== 0 && signal === null)) {
        return reject(new Error(`startup child ${child.pathname} exited with ${code ?? signal}${out ? `, printing ${out}` : ''}`));
      }
      resolve(printed);
    });
  });
}

/**
 * For a startup child: times `create` to the first result of run(1), prints it, and exits with
 * the pool still up (its shutdown is not measured; piscina's destroy racing the exit was seen to
 * kill the process by a signal now and then).
 */
export async function startupChild(a) {
  const t0 = now();
  const pool = a.create();
  const result = await a.run(pool, 1);
  const ns = now() - t0;
  process.stdout.write(JSON.stringify({ ns, result }), () => process.exit(0));
}
