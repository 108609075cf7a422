/**
 * The wait-for report: which processes are parked with no deadline, and on which channel
 * operations. It is what a deadlock report is made of, and a first look at a program that
 * seems stuck: `console.log(formatWaitReport(waitReport()))`.
 */
import { isMainThread } from 'node:worker_threads';
import { channelNameAt } from './channel.js';
import { InvalidArgumentError } from './errors.js';
import {
  K_SEND,
  MAX_THREADS,
  O_NCASES,
  O_WORDS,
  T_ALIVE,
  T_PARKED_ON,
  T_STATE,
  T_THREAD_ID,
  W_CHAN,
  W_KIND,
  W_LINKED,
  W_WORDS,
} from './internal/layout.js';
import { runtime, slotWord } from './internal/runtime.js';

/** Names the process on a worker thread; set by the host module when it loads (main thread). */
let processOnThread: (threadId: number) => string | undefined = () => undefined;

/** Counts processes started on hosts and not yet ended; set by the host module (main thread). */
let startedProcesses: () => number = () => 0;

/** Counts hosts that hold main's event loop open (running a process not unref'd). */
let holdingHosts: () => number = () => 0;

/** Names the process of a process record (byte offset); set by the host module (main thread). */
let processOfRecord: (rec: number) => string | undefined = () => undefined;

/** @internal */
export function setHostInfo(
  namer: (threadId: number) => string | undefined,
  started: () => number,
  holding: () => number,
  recordNamer: (rec: number) => string | undefined,
): void {
  processOnThread = namer;
  startedProcesses = started;
  holdingHosts = holding;
  processOfRecord = recordNamer;
}

/** @internal Hosts running a process that holds the program open: each shows as one MessagePort. */
export function hostsHolding(): number {
  return holdingHosts();
}

/** @internal occam's own worker threads (hosts, the supervisor); any other Worker is the program's. */
export const ownWorkers = new WeakSet<object>();

/** @internal Processes started and not yet ended (main thread). */
export function processesStarted(): number {
  return startedProcesses();
}

/**
 * One process parked with no deadline, and the operations it waits on (one per select case), or
 * the process it waits to end (`joinSync`, with `waitsOn` empty).
 */
export interface BlockedProcess {
  /** The process's name (as `Process.name`), or `thread <id>` for a thread that runs none. */
  process: string;
  /** The channel operations it is parked on (several for a select). */
  waitsOn: { channel: string; op: 'send' | 'recv' }[];
  /** The name of the process it joins, if it is parked in `joinSync`. */
  joins?: string;
}

/**
 * Every process parked now in a blocking operation with no deadline, with the channels and
 * operations it waits on. A snapshot: a process may move on as it is taken. Main thread only.
 */
export function waitReport(): BlockedProcess[] {
  if (!isMainThread) throw new InvalidArgumentError('waitReport() runs on the main thread');
  const rt = runtime();
  rt.heap.sync();
  const m = rt.heap.i32;
  const report: BlockedProcess[] = [];
  for (let slot = 0; slot < MAX_THREADS; slot++) {
    if (Atomics.load(m, slotWord(slot, T_STATE)) !== T_ALIVE) continue;
    const op = Atomics.load(m, slotWord(slot, T_PARKED_ON));
    if (op === 0) continue;
    const threadId = Atomics.load(m, slotWord(slot, T_THREAD_ID));
    const name = processOnThread(threadId) ?? `thread ${threadId}`;
    if (op < 0) {
      // Parked in joinSync: -op is the joined process's record (see Process.joinSync).
      report.push({ process: name, waitsOn: [], joins: processOfRecord(-op) ?? 'a process' });
      continue;
    }
    const waitsOn: BlockedProcess['waitsOn'] = [];
    for (let i = 0; i < m[(op >> 2) + O_NCASES]!; i++) {
      const w = (op >> 2) + O_WORDS + i * W_WORDS;
      if (Atomics.load(m, w + W_LINKED) === 0) continue;
      waitsOn.push({ channel: channelNameAt(rt, m[w + W_CHAN]!), op: m[w + W_KIND] === K_SEND ? 'send' : 'recv' });
    }
    if (waitsOn.length > 0) report.push({ process: name, waitsOn });
  }
  return report;
}

/** The report as lines of text: `name: send on a | recv on b`, one process a line. */
export function formatWaitReport(report: readonly BlockedProcess[]): string {
  if (report.length === 0) return 'no process is blocked';
  return report
    .map((p) => `${p.process}: ${p.joins !== undefined ? `join of ${p.joins}` : p.waitsOn.map((w) => `${w.op} on ${w.channel}`).join(' | ')}`)
    .join('\n');
}
