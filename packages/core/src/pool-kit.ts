/**
 * What @occam/pool builds on, beyond the public API: errors as plain values (to send a task's
 * error back with its class, code, message and stack) and module preparation (a TypeScript task
 * module compiled once, for every worker to import). Not meant for programs.
 */
export { decodeError, encodeError } from './internal/errcodec.js';

/**
 * A URL a worker can import for the module at `moduleUrl` (a TypeScript module is compiled into
 * the cache first). Main thread. The compiler is loaded on first use: workers never load it.
 */
export async function prepareModule(moduleUrl: string | URL): Promise<string> {
  const { loadableModuleUrl } = await import('./internal/compile.js');
  return loadableModuleUrl(moduleUrl);
}

/** Refuses a `signal` option that is not an AbortSignal, as channel operations do (ERR_INVALID_ARGUMENT). */
export { checkSignal } from './channel.js';

/**
 * A signal of the pool's own: the waits it ends are not taken for waits that the program's signal
 * may end (which deadlock detection never calls stuck).
 */
export { markInternalSignal } from './internal/runtime.js';

/**
 * A task that the program's own signal may end: until the returned function is called, deadlock
 * detection does not call the pool's wait for it stuck (as for a wait with that signal).
 */
export { holdForSignal } from './internal/runtime.js';

/**
 * While set (a pool worker sets it around a task that has an abort channel), every blocking
 * operation of this thread also waits on `s`, and fails with AbortError when it fires.
 */
export { setInterrupt } from './internal/engine.js';

/**
 * Calls a function when a signal aborts, until the returned function is called: one listener
 * per signal for all its callbacks (many tasks on one signal add no listener each).
 */
export { watchAbort } from './internal/engine.js';

/**
 * Makes `n` process hosts idle now, starting those missing (main thread only), so that processes
 * spawned soon find their worker up: a pool calls it before it compiles its module.
 */
export { warmHosts } from './internal/host.js';

/**
 * The pool worker process (`poolWorker`, see pool-worker.ts) and what the pool and its task code
 * share with it: the task and result messages, and the running task's context.
 */
export {
  currentTask,
  INIT_FAILED,
  READY,
  type ResultMessage,
  type TaskContext,
  type TaskMessage,
  type TaskSignal,
} from './pool-worker.js';

/** The module a pool spawns its workers from (export `poolWorker`; a host takes it from core: worker-host.ts). */
export const POOL_WORKER_URL: string = new URL('./pool-worker.js', import.meta.url).href;
