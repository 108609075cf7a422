// Tasks of the pool soak (bench/soak.ts): each does what its name says.
import { currentTask } from '@occam/pool';

export function ok(x: number): number {
  return x + 1;
}

export class SoakError extends Error {
  readonly code = 'E_SOAK';
}

export function fail(x: number): never {
  throw new SoakError(`task ${x} fails as asked`);
}

export function exit(): never {
  process.exit(3);
}

/** Busy for about `ms`, watching its signal; returns x + 1 if not aborted. */
export function slow(x: number, ms: number): number {
  const signal = currentTask().signal;
  const end = Date.now() + ms;
  while (Date.now() < end) signal.throwIfAborted();
  return x + 1;
}

export async function later(x: number, ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return x + 1;
}
