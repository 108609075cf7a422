/**
 * Deadlock detection, on the main thread. A deadlock is: every process parked with no deadline
 * (T_PARKED_ON), the main thread waiting in occam operations or joins with no deadline, nothing
 * else keeping the main thread's event loop alive (`process.getActiveResourcesInfo()`: only
 * occam's own keep-alive timer, its running hosts' ports, and stdout and stderr), and two snapshots, a tick apart, that agree with no progress
 * made in between. Then every pending wait of the main thread fails with DeadlockError and its
 * wait-for report, so `main()` ends the program with the report instead of hanging for ever.
 *
 * Not seen (so never a false alarm of these): a process in an async wait or in a timed one, a
 * select with a timer, work on the main thread's event loop (timers, I/O), a worker thread of the
 * program's own while it runs (it may end, or post, and feed a channel from main: it need not show
 * among the active resources at all), a wait or a task or process given a signal of the
 * program's (it may fire from anywhere: `AbortSignal.timeout()`'s own timer is unref'd). Not
 * seen either, so a possible false alarm: work that keeps nothing alive (an unref'd timer) while
 * occam waits with no signal.
 */
import { DeadlockError } from '../errors.js';
import { isMainThread } from 'node:worker_threads';
import { formatWaitReport, hostsHolding, ownWorkers, processesStarted, waitReport } from '../report.js';
import { MAX_THREADS, T_ALIVE, T_PARKED_ON, T_PROGRESS, T_RUNNING, T_STATE } from './layout.js';
import { setDetector, slotWord, type Runtime } from './runtime.js';

/** How often the main thread looks (ms); a deadlock is reported after two agreeing looks. */
const TICK_MS = 250;

/** The program's own worker threads (not occam's) started from main and still running. */
let programWorkers = 0;
if (isMainThread) {
  // Emitted on the next tick after `new Worker`: occam marks its own before then.
  process.on('worker', (w) => {
    if (ownWorkers.has(w)) return;
    programWorkers++;
    w.once('exit', () => programWorkers--);
  });
}

/**
 * A look at the whole program, or undefined if something may still move. The main thread either
 * waits on processes (a pending wait, none timed), or has nothing left at all ("ended").
 */
function snapshot(rt: Runtime): string | undefined {
  if (rt.timedWaits > 0 || programWorkers > 0) return undefined;
  const ended = rt.pendingAsync === 0 && rt.waits.size === 0;
  if (!ended && (rt.pendingAsync === 0 || rt.waits.size === 0)) return undefined;
  // occam's own: the keep-alive timer (ref'd only while an async op is pending: never once main
  // has ended), and the port of each host running a process not unref'd. Anything else is work
  // that may still come (a timer, I/O, a port of the program's own).
  let timers = 0;
  let ports = 0;
  let stdio = 0;
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'Timeout') timers++;
    else if (r === 'MessagePort') ports++;
    else if (r === 'PipeWrap' || r === 'TTYWrap') stdio++;
    else return undefined;
  }
  if (timers > (ended ? 0 : 1) || ports > hostsHolding() || stdio > stdioHandles()) return undefined;
  rt.heap.sync();
  const m = rt.heap.i32;
  const parts: number[] = [];
  let inProcess = 0;
  for (let slot = 0; slot < MAX_THREADS; slot++) {
    if (slot === rt.slot || Atomics.load(m, slotWord(slot, T_STATE)) !== T_ALIVE) continue;
    if (Atomics.load(m, slotWord(slot, T_RUNNING)) === -1) continue; // a host between processes
    inProcess++;
    const op = Atomics.load(m, slotWord(slot, T_PARKED_ON));
    if (op === 0) return undefined; // running, or waiting with a deadline, or asynchronously
    parts.push(slot, op, Atomics.load(m, slotWord(slot, T_PROGRESS)));
  }
  // A process handed to a host whose thread has not begun its body yet (a worker starting) is
  // not stuck.
  if (inProcess < processesStarted()) return undefined;
  if (ended && inProcess === 0) return undefined; // nothing left blocked: Node exits by itself
  parts.push(rt.progress);
  return `${ended ? 'ended' : 'waits'}:${parts.join(',')}`;
}

/** How many of stdout and stderr are pipes or terminals: they show among the active resources. */
function stdioHandles(): number {
  const kind = (s: NodeJS.WriteStream): unknown => (s as unknown as { _type?: unknown })._type;
  return [process.stdout, process.stderr].filter((s) => kind(s) === 'pipe' || kind(s) === 'tty').length;
}

let started = false;

/**
 * Starts the detector once (main thread): at the first wait, or the first spawn of a program
 * that never waits on its processes.
 */
export function watchProgram(rt: Runtime): void {
  if (started) return;
  started = true;
  start(rt);
}

setDetector(watchProgram);

function start(rt: Runtime): void {
  let last: string | undefined;
  const timer = setInterval(() => {
    const now = snapshot(rt);
    if (now === undefined || now !== last) {
      last = now;
      return;
    }
    last = undefined;
    const report = waitReport();
    const described = formatWaitReport(report);
    if (now.startsWith('ended')) {
      // Main has nothing left and every process is parked: exit, as Go does when main returns,
      // saying what was left blocked (idle hosts are not: they hold nothing open).
      process.stderr.write(`occam: the main thread has finished; exiting with these processes still blocked:\n${described.replace(/^/gm, '  ')}\n`);
      process.exit();
    }
    const err = new DeadlockError(report, described);
    for (const fail of [...rt.waits]) fail(err);
  }, TICK_MS);
  timer.unref(); // only occam's own waits keep the program alive, never the detector
}

