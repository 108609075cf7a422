// One run of one (scenario, impl), in a child process of the harness (bench/run.mjs).
// A process of its own per run means the harness's watchdog can always stop it (SIGKILL takes
// its workers with it), even when an impl blocks its main thread, and nothing one run leaves
// behind (workers, handles, heap) reaches the next. Reads one request on the IPC channel,
// answers { result } or { error }, and exits.
import { Worker } from 'node:worker_threads';
import { loadRegistry } from './registry.mjs';

process.once('message', async ({ scenario, impl, ops, warmup }) => {
  const workers = [];
  try {
    const { registry } = await loadRegistry();
    const entry = registry.get(scenario)?.impls.get(impl);
    if (!entry) throw new Error(`no impl ${impl} for scenario ${scenario} in the child`);
    const controller = new AbortController();
    let fail;
    const failed = new Promise((_, reject) => (fail = reject));
    failed.catch(() => controller.abort()); // a failed worker: tell the impl to stop
    const spawn = (url, options) => {
      const w = new Worker(url, options);
      workers.push(w);
      // Also keeps a worker error from killing the process when the impl has no listener.
      w.on('error', (e) => fail(new Error(`worker error: ${e?.stack ?? e}`)));
      w.on('exit', (code) => code !== 0 && fail(new Error(`a worker exited with code ${code}`)));
      return w;
    };
    const opts = { ops, warmup, spawn, signal: controller.signal, scenario };
    const r = await Promise.race([Promise.resolve().then(() => entry.run(opts)), failed]);
    const result = r && { ns_per_op: r.ns_per_op, checksum: r.checksum, expected: r.expected };
    process.send({ result }, () => process.exit(0));
  } catch (e) {
    process.send({ error: String(e?.stack ?? e) }, () => process.exit(0));
  }
});
