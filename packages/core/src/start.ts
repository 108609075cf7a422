/** Explicit start-up of the runtime, for programs that need a heap of another size. */
import { InvalidArgumentError } from './errors.js';
import { hasRuntime, startRuntime as start } from './internal/runtime.js';

/** Sizes of the shared heap that every channel and message lives in. */
export interface RuntimeOptions {
  /** Bytes mapped at start (default 4 MiB); the heap grows on demand. */
  initialHeapBytes?: number;
  /** The most the heap may grow to (default 1 GiB); past it, sends fail with ERR_HEAP_EXHAUSTED. */
  maxHeapBytes?: number;
}

/**
 * Starts occam's runtime on the main thread with the given heap sizes. Optional: the first
 * channel or spawn starts it with the defaults. Call it before either; a second start throws
 * ERR_INVALID_ARGUMENT.
 */
export function startRuntime(opts: RuntimeOptions = {}): void {
  if (hasRuntime()) throw new InvalidArgumentError('the occam runtime is already started; call startRuntime() first');
  start({
    ...(opts.initialHeapBytes !== undefined ? { initialBytes: opts.initialHeapBytes } : {}),
    ...(opts.maxHeapBytes !== undefined ? { maxBytes: opts.maxHeapBytes } : {}),
  });
}
