import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { liveChannels } from '@occam/core';
import { retireIdleHosts } from '@occam/core/testing';

/**
 * Test helpers: watchdogs that turn a hang into a failure with a message, and a condition
 * waiter that polls an observable (never a sleep used as synchronisation).
 */

/** Rejects with `what` if `p` has not settled within `ms`. */
export function watchdog<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const dog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watchdog: ${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, dog]).finally(() => clearTimeout(timer));
}

/** Resolves once `cond()` is true, checking on every turn of the event loop; fails after `ms`. */
export function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (cond()) resolve();
      else if (Date.now() > end) reject(new Error(`watchdog: waited ${ms} ms for ${what}`));
      else setImmediate(check);
    };
    check();
  });
}

/** Whether a promise has settled yet (looked at after a turn of the event loop). */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

/** Runs `fixtures/<fixture>` as a program of its own; a program that hangs is killed after 20 s. */
export function runFixture(
  fixture: string,
  ...args: string[]
): { stdout: string; stderr: string; status: number | null; signal: string | null } {
  const file = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  const r = spawnSync(process.execPath, [file, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status, signal: r.signal };
}

/** Runs the garbage collector now (in this thread). */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Live channels once the garbage collector and its finalizers have run, and the idle hosts have
 * ended (a channel a warm host held would be given back when its thread dies): handles earlier
 * tests dropped no longer lower the count later, in the middle of a test that compares against it.
 */
export async function settledLiveChannels(): Promise<number> {
  // Until the count holds for a few rounds: finalizers run some time after a collection, and a
  // host reports itself idle a moment after its process was joined.
  let last = -1;
  for (let round = 0, same = 0; round < 30 && same < 3; round++) {
    await retireIdleHosts();
    collectGarbage();
    await new Promise((r) => setTimeout(r, 10));
    const now = liveChannels();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}
