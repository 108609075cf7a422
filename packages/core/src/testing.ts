/**
 * Test-only hooks: fault injection (to show that property tests catch a lost or reordered
 * message) and the channel invariant check. Not for production code.
 */
import type { Channel } from './channel.js';
import {
  C_CAP,
  C_FLAGS,
  C_LOCK,
  C_NRECV,
  C_NSEND,
  C_RECEIVERS,
  C_SENDERS,
  C_RECVQ_HEAD,
  C_SENDQ_HEAD,
  F_CLOSED,
  FAULT_DIE_CLAIMING,
  FAULT_DIE_CONCLUDING,
  FAULT_DIE_ADOPTING,
  FAULT_DIE_HANDING_OVER,
  FAULT_DIE_SETTLING,
  FAULT_DROP,
  FAULT_REORDER,
  H_FAULT,
  H_FAULT_COUNT,
  H_MAX_THREADS,
  H_MAX_WAITERS,
  H_RUNNING,
  LOCK_BROKEN,
  MAX_THREADS,
  T_ALIVE,
  T_ROLE,
  T_ROLE_SUPERVISOR,
  T_STATE,
  O_STATE,
  ST_MASK,
  ST_WAITING,
  W_NEXT,
  W_OP,
} from './internal/layout.js';
import { ringLength } from './internal/ring.js';
import { runtime, slotWord } from './internal/runtime.js';
import { ringAt } from './internal/transfer.js';
import { describeHosts, holdSupervisor as setSupervisorHold, retireIdleHosts, startedHosts } from './internal/host.js';

const FAULTS = {
  drop: FAULT_DROP,
  reorder: FAULT_REORDER,
  'die-claiming': FAULT_DIE_CLAIMING,
  'die-settling': FAULT_DIE_SETTLING,
  'die-concluding': FAULT_DIE_CONCLUDING,
  'die-adopting': FAULT_DIE_ADOPTING,
  'die-handing-over': FAULT_DIE_HANDING_OVER,
};

/**
 * Switches a runtime-wide fault on, or off (null): 'drop' (a send's value is lost), 'reorder'
 * (two buffered values swap), 'die-claiming' (a worker thread that claims a waiting party
 * exits there and then, holding the channel's lock and the claim), 'die-settling' (a worker exits
 * between claiming its process's record and storing the result), 'die-concluding' (a worker
 * whose blocking op has completed exits before it takes the outcome: a value handed to it is
 * left in its op), 'die-adopting' (a worker exits having started its process, before it has
 * taken the references its arguments carry), 'die-handing-over' (a worker exits having taken
 * them, before it gives back its spawner's count of their typed ends).
 */
export function setFault(fault: keyof typeof FAULTS | null): void {
  const m = runtime().heap.i32;
  Atomics.store(m, H_FAULT_COUNT, 0);
  Atomics.store(m, H_FAULT, fault === null ? 0 : FAULTS[fault]);
}

/**
 * Takes the channel's lock and keeps it: a process that then dies leaves it held, as a process
 * stopped inside a channel operation would.
 */
export function holdLock(ch: Channel<unknown>): void {
  const h = runtime().heap;
  h.lock((ch.handleWords()[0]! >> 2) + C_LOCK);
}

/** How many users each end of the channel counts now (see internal/reap.ts). */
export function endUsers(ch: Channel<unknown>): { senders: number; receivers: number } {
  const m = runtime().heap.i32;
  const c = ch.handleWords()[0]! >> 2;
  return { senders: Atomics.load(m, c + C_SENDERS), receivers: Atomics.load(m, c + C_RECEIVERS) };
}

/** Who holds the channel's lock: 'free', 'held' or 'broken' (its holder died, see reap.ts). */
export function lockState(ch: Channel<unknown>): 'free' | 'held' | 'broken' {
  const v = Atomics.load(runtime().heap.i32, (ch.handleWords()[0]! >> 2) + C_LOCK);
  return v === 0 ? 'free' : (v & LOCK_BROKEN) !== 0 ? 'broken' : 'held';
}

/**
 * Keeps the supervisor from starting on its timer (it starts shortly after the first worker
 * host, see internal/host.ts) until the returned function is called: for tests of a host that
 * dies first. Main getting stuck on a worker (a lock, a claim) still starts it. Call it before
 * the first spawn of the program; it has no effect once the supervisor is up.
 */
export function holdSupervisor(): () => void {
  setSupervisorHold(true);
  return () => setSupervisorHold(false);
}

/**
 * Ends every idle worker host (main thread); resolves once each has been cleaned up after. A
 * channel that a warm host still holds (garbage it has not collected, a module's state) is then
 * given back: a count of live channels taken after it stays put while threads come and go.
 */
export { retireIdleHosts };

/**
 * One line per worker host (main thread) whose thread has not ended: the process it runs (or
 * idle, or being terminated) and whether it holds the program open. For a program that does not
 * exit: the test runner's lesson watchdog prints it.
 */
export function hostTable(): string[] {
  return describeHosts();
}

/**
 * How many worker threads (hosts) main has started so far: a test that must start none compares
 * it before and after (a thread count would also see hosts warmed earlier still joining).
 */
export function hostsStarted(): number {
  return startedHosts();
}

/**
 * Lowers the most thread-table slots in use runtime-wide (MAX_THREADS), for tests; 0 restores
 * it. A worker that cannot join then fails its process with ERR_TOO_MANY_THREADS.
 */
export function setMaxThreads(n: number): void {
  Atomics.store(runtime().heap.i32, H_MAX_THREADS, n);
}

/** Lowers the most waiters per channel queue (MAX_WAITERS) runtime-wide, for tests; 0 restores it. */
export function setMaxWaiters(n: number): void {
  Atomics.store(runtime().heap.i32, H_MAX_WAITERS, n);
}

/** Bytes of the shared heap handed out so far (its high-water mark) and its mapped length. */
export function heapUsage(): { bump: number; bytes: number } {
  return runtime().heap.usage();
}

/**
 * Thread-table slots in use now by main and the worker hosts (not the supervisor's: it joins on
 * a schedule of its own, see internal/host.ts; `supervisor` is 1 once it has), and the count of
 * process threads running (not parked).
 */
export function threadStats(): { slots: number; running: number; supervisor: number } {
  const m = runtime().heap.i32;
  let slots = 0;
  let supervisor = 0;
  for (let i = 0; i < MAX_THREADS; i++) {
    if (Atomics.load(m, slotWord(i, T_STATE)) !== T_ALIVE) continue;
    if (Atomics.load(m, slotWord(i, T_ROLE)) === T_ROLE_SUPERVISOR) supervisor++;
    else slots++;
  }
  return { slots, running: Atomics.load(m, H_RUNNING), supervisor };
}

/** Checks the invariants stated in transfer.ts under the channel lock; returns the violations found. */
export function checkInvariants(ch: Channel<unknown>): string[] {
  const rt = runtime();
  const h = rt.heap;
  const c = ch.handleWords()[0]! >> 2;
  const bad: string[] = [];
  h.lock(c + C_LOCK);
  try {
    h.sync();
    const m = h.i32;
    const waitingOps = (head: number): { ops: Set<number>; linked: number } => {
      const ops = new Set<number>();
      let linked = 0;
      for (let w = m[c + head]! >> 2; w !== 0; w = m[w + W_NEXT]! >> 2) {
        linked++;
        const op = m[w + W_OP]!;
        if ((Atomics.load(m, (op >> 2) + O_STATE) & ST_MASK) === ST_WAITING) ops.add(op);
      }
      return { ops, linked };
    };
    const senders = waitingOps(C_SENDQ_HEAD);
    const receivers = waitingOps(C_RECVQ_HEAD);
    const cap = m[c + C_CAP]!;
    const count = cap === 0 ? 0 : ringLength(m, ringAt(m, c));
    for (const op of senders.ops) {
      if ([...receivers.ops].some((r) => r !== op)) bad.push('a waiting sender and a waiting receiver of different ops');
    }
    if (count > 0 && receivers.ops.size > 0) bad.push('buffered values with a waiting receiver');
    if (count < cap && senders.ops.size > 0) bad.push('room in the buffer with a waiting sender');
    if (count < 0 || count > cap) bad.push(`count ${count} outside 0..${cap}`);
    if (m[c + C_NSEND] !== senders.linked) bad.push('send-queue count differs from its length');
    if (m[c + C_NRECV] !== receivers.linked) bad.push('receive-queue count differs from its length');
    if ((m[c + C_FLAGS]! & F_CLOSED) !== 0 && senders.ops.size + receivers.ops.size > 0) {
      bad.push('a closed channel with waiting parties');
    }
  } finally {
    h.unlock(c + C_LOCK);
  }
  return bad;
}
