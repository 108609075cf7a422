/**
 * @occam/pool — a worker pool on occam's channels: pre-started workers run the exported
 * functions of one module as tasks, several at a time each, with per-task cancellation and
 * timeouts, and a dead worker costs only its own tasks.
 *
 *   const pool = new Pool<typeof import('./tasks.js')>({ module: new URL('./tasks.ts', import.meta.url) });
 *   const y = await pool.run('square', 7);
 *   for await (const r of pool.map('square', [1, 2, 3])) console.log(r);
 *   const stage = pool.spawn('stage', input.receiver(), output.sender()); // a process, on a warm worker
 *   await pool.close();
 */
export { Pool, PoolProcess, type MapOptions, type PoolOptions, type PoolStats, type TaskOptions } from './pool.js';
export { currentTask, type TaskContext, type TaskSignal } from '@occam/core/pool-kit';
export { PoolBrokenError, PoolClosedError, QueueFullError, WorkerDiedError } from '@occam/core';
