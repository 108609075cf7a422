/**
 * The shared heap's layout: every record's fields as named word indices, in one place.
 * All offsets are byte offsets into the heap; fields are Int32 words (index = offset / 4 + field).
 *
 *  byte 0                                                   H_FREE..        THREAD_TABLE
 *  ┌──────────────────────────── heap header ─────────────────────────────┐┌──────────────┐┌──── blocks ...
 *  │ magic version runtime bytes allocLock bump nextId progress spinners …││ slot × 256   ││ channels, op
 *  └──────────────────────────────────────────────────────────────────────┘└──────────────┘│ records, values
 *
 *  block:   [ sizeClass | BLOCK_MAGIC ]  payload (8-byte aligned) ...
 *  channel: [ lock flags magic id gen cap senders receivers refs sendq… recvq… nsend nrecv ring name…
 *             rsize rwrap died… ]
 *  op:      [ state parked owner case result ncases seq _ | slot(4) ] waiter × ncases
 *  waiter:  [ next prev chan kind linked case op _ | slot(4) ]
 *  slot:    [ tag len w2 w3 ]   (a float64 lives in w2..w3, 8-byte aligned)
 */

export const HEAP_MAGIC = 0x4f43_4341; // "OCCA"
export const LAYOUT_VERSION = 1;

// ── heap header (word indices) ────────────────────────────────────────────────
// Grouped by cache line (16 words): read-mostly words first, then the allocator's, then the
// counters every thread writes, so that hot writes do not evict the words every op reads.
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_RUNTIME_ID = 2;
/** Current heap length in bytes; a thread whose views are shorter remaps them. */
export const H_BYTES = 3;
export const H_NCPU = 4;
export const H_MAX_BYTES = 5;
export const H_THREADS = 6;
/** Test-only fault injection (testing.ts): 0 off, FAULT_DROP, FAULT_REORDER. */
export const H_FAULT = 7;
/** Test-only override of MAX_WAITERS (0: the default). */
export const H_MAX_WAITERS = 8;
/** Test-only bound on thread-table slots in use (0: MAX_THREADS). */
export const H_MAX_THREADS = 9;
/** A word nothing reads: where a thread without a slot yet records the lock it takes. */
export const H_SPARE = 15;
/** Allocator lock word (owner thread slot + 1); guards H_BUMP, H_FREE and growth. */
export const H_ALLOC_LOCK = 16;
/** First never-allocated byte. Guarded by H_ALLOC_LOCK. */
export const H_BUMP = 17;
/** Free-list heads, one per size class (class k holds blocks of MIN_BLOCK << k bytes). */
export const H_FREE = 18;
export const N_CLASSES = 27;
export const H_NEXT_ID = 48;
export const H_LIVE_CHANNELS = 49;
export const H_FAULT_COUNT = 50;
/**
 * Held-reference tables of dead threads (see T_HELD), stacked through their first word: main
 * gives their references back (which takes the channel module: the supervisor does not load it).
 */
export const H_ORPHAN_REFS = 51;
/**
 * Per small size class (0..6, see heap.ts), the head of a stack of batch records: blocks freed
 * together by one thread's cache, listed in one record ([next, count, block…]) so that the thread
 * taking them reads one record instead of following a chain of blocks (a cache miss each, one
 * after the other, when the blocks were last touched by another core).
 */
export const H_BATCHES = 52;
/** Batch records not in use, stacked through their first word. */
export const H_BATCH_RECORDS = 59;
/**
 * Values of dead threads' ops that hold channel handles, left by a reaper without the channel
 * module (the supervisor) for main to drop: records [next, slot(4)] stacked through `next`.
 */
export const H_ORPHAN_VALUES = 60;
/**
 * Process threads running now (not parked, not idle between processes). Spinning pays only
 * while every running thread has a core: on 2 cores, two ping-pong pairs that spin are slower
 * than two that park.
 */
export const H_RUNNING = 64;
export const HEADER_WORDS = 80;
export const FAULT_DROP = 1;
export const FAULT_REORDER = 2;
export const FAULT_DIE_CLAIMING = 3;
/** Test-only: a worker exits while it settles a process's record (claimed, result not yet stored). */
export const FAULT_DIE_SETTLING = 4;
/** Test-only: a worker exits when its blocking op has completed, before it takes the outcome. */
export const FAULT_DIE_CONCLUDING = 5;
/** Test-only: a worker exits having started its process, before it has taken the arguments' references. */
export const FAULT_DIE_ADOPTING = 6;
/** Test-only: a worker exits having taken its arguments, before it hands over their typed ends. */
export const FAULT_DIE_HANDING_OVER = 7;
/** Every FAULT_PERIOD-th operation misbehaves while a fault is on. */
export const FAULT_PERIOD = 37;

// ── thread table ─────────────────────────────────────────────────────────────
export const MAX_THREADS = 256;
export const T_STATE = 0; // T_FREE / T_ALIVE / T_DEAD
export const T_GEN = 1;
export const T_THREAD_ID = 2;
/** Completed channel operations of this thread (deadlock detection sums them); only it writes. */
export const T_PROGRESS = 3;
/** 1 while this thread counts in H_RUNNING, so that its death can be subtracted. */
export const T_RUNNING = 4;
/** Byte offset of this thread's op list ([count, capacity, op…]: every op record it owns), or 0. */
export const T_OPS = 5;
/**
 * Byte offset of the op record this thread is parked on with no deadline (waitSync), else 0:
 * what a wait-for report (and deadlock detection) reads. Written by the thread only.
 */
export const T_PARKED_ON = 6;
/**
 * Byte offset of the list of channel ends the current process uses ([count, capacity,
 * (channel, id, ends)…]), or 0: what its death takes away (reap.ts). Written by the thread only.
 */
export const T_USES = 7;
/**
 * Word index of the lock this thread takes or holds (stored before taking it): a lock found held
 * by a dead thread is this one. Stale once released; the lock word itself tells.
 */
export const T_HOLDS = 8;
/** The op this thread is claiming and the WAITING state it claims it from (stored before the claim). */
export const T_CLAIM_OP = 9;
export const T_CLAIM_STATE = 10;
/** Byte offset of the current process's name (UTF-16 in a heap block) and its length, or 0. */
export const T_NAME = 11;
export const T_NAME_LEN = 12;
/** What the thread is: T_ROLE_SUPERVISOR for the supervisor, else 0. */
export const T_ROLE = 13;
export const T_ROLE_SUPERVISOR = 1;
/**
 * Byte offset of this worker's table of held references ([next, count, capacity, (channel, id)…]),
 * or 0: the reference each channel handle it adopted holds (one it received, or one a join gave
 * it; its processes' arguments are in their records' claim tables instead), 0 where given back.
 * Written by the thread only. At its death the reaper hands the table to main (H_ORPHAN_REFS).
 */
export const T_HELD = 14;
/**
 * 1 while the thread runs a process spawned with `poisonOnDeath`: if it dies where it cannot
 * poison its channels itself (out of memory), main does, and the supervisor leaves the cleaning
 * up to main for a moment, so that the peers see the poison, not the disconnection.
 */
export const T_POISON_ON_DEATH = 15;
export const T_WORDS = 16; // one cache line per thread: no false sharing of T_PROGRESS
export const T_FREE = 0;
export const T_ALIVE = 1;
export const T_DEAD = 2;
export const THREAD_TABLE_BYTE = HEADER_WORDS * 4;
export const FIRST_BLOCK_BYTE = THREAD_TABLE_BYTE + MAX_THREADS * T_WORDS * 4;

// ── blocks ───────────────────────────────────────────────────────────────────
export const MIN_BLOCK = 16;
export const BLOCK_HEADER = 8;
export const BLOCK_MAGIC = 0x0b10_c000;

// ── channel header ───────────────────────────────────────────────────────────
export const CHAN_MAGIC = 0x0c4a_4e00;
/** Lock word: 0, or owner thread slot + 1, with LOCK_CONTENDED set when someone parks on it. */
// (What every operation reads or writes comes first: with the block's header, the first 14
// words share one cache line. Counts of users and references, names, the generation: after.)
export const C_LOCK = 0;
export const C_FLAGS = 1;
export const C_MAGIC = 2;
export const C_ID = 3;
export const C_NRECV = 4;
export const C_CAP = 5;
/** Users of the send end and of the receive end: processes that use them, and main (reap.ts). */
export const C_SENDERS = 6;
export const C_RECEIVERS = 7;
/** Byte offset of the ring (ring.ts) of a buffered channel, 0 when unbuffered. */
export const C_BUF = 8;
export const C_SENDQ_HEAD = 9;
export const C_SENDQ_TAIL = 10;
export const C_RECVQ_HEAD = 11;
export const C_RECVQ_TAIL = 12;
export const C_NSEND = 13;
export const C_GEN = 14;
export const C_REFS = 15;
export const C_NAME = 16;
export const C_NAME_LEN = 17;
/** The ring's entry count and position modulus (ring.ts), fixed at creation. */
export const C_RSIZE = 18;
export const C_RWRAP = 19;
/** Name (UTF-16 heap block, and length) of the process whose death disconnected or broke it. */
export const C_DIED = 20;
export const C_DIED_LEN = 21;
export const C_WORDS = 22;
export const F_CLOSED = 1;
/** Set with F_BROKEN too: a broken channel fails every op, as a poisoned one does. */
export const F_POISONED = 2;
/** A process died holding the channel's lock: the lock reads LOCK_BROKEN for ever. */
export const F_BROKEN = 4;
/** The last user of the send end died: a receive that would wait fails with ERR_PEER_DIED. */
export const F_SENDERS_GONE = 8;
/** The last user of the receive end died: a send that would wait fails with ERR_PEER_DIED. */
export const F_RECEIVERS_GONE = 16;
/** Flags that end every op: close and poison (and broken, which sets F_POISONED). */
export const F_SHUT = F_CLOSED | F_POISONED;
export const LOCK_CONTENDED = 1 << 30;
/** The lock word of a broken channel: taking it throws (Heap.lock). */
export const LOCK_BROKEN = 1 << 29;

// ── value slot (4 words) ─────────────────────────────────────────────────────
export const S_TAG = 0;
export const S_LEN = 1;
export const S_W2 = 2;
export const S_W3 = 3;
export const SLOT_WORDS = 4;
export const TAG_EMPTY = 0;
export const TAG_UNDEFINED = 1;
export const TAG_NULL = 2;
export const TAG_TRUE = 3;
export const TAG_FALSE = 4;
export const TAG_INT = 5;
export const TAG_F64 = 6;
/** An encoded value in a heap block: S_LEN bytes at offset S_W2; S_W3 = 1 if it holds channel handles. */
export const TAG_BLOCK = 7;

// ── op record (one blocking operation, one waiter per case) ──────────────────
/**
 * (seq << 3) | status; while CLAIMED, ((claimer's thread slot + 1) << 3) | ST_CLAIMED instead
 * (the claimer keeps the sequence number, see T_CLAIM_STATE). Changed only by compareExchange,
 * except DONE (or WAITING again), stored by the claimer.
 */
export const O_STATE = 0;
/** 1 while the owner is (about to be) parked on O_STATE: a claimer notifies only then. */
export const O_PARKED = 1;
export const O_OWNER = 2;
export const O_CASE = 3;
export const O_RESULT = 4;
export const O_NCASES = 5;
export const O_SLOT = 8;
export const O_WORDS = 12;
export const ST_IDLE = 0;
export const ST_WAITING = 1;
export const ST_CLAIMED = 2;
export const ST_DONE = 3;
export const ST_CANCELLED = 4;
export const ST_MASK = 7;
export const R_VALUE = 1;
export const R_CLOSED = 2;
export const R_POISONED = 3;
export const R_PEER_DIED = 4;
/** The channel's queue was full (MAX_WAITERS): the op could not wait. */
export const R_OVERFLOW = 5;

// ── waiter (one case of an op, linked into a channel queue) ──────────────────
export const W_NEXT = 0;
export const W_PREV = 1;
export const W_CHAN = 2;
export const W_KIND = 3;
export const W_LINKED = 4;
export const W_CASE = 5;
export const W_OP = 6;
export const W_SLOT = 8;
export const W_WORDS = 12;
export const K_SEND = 1;
export const K_RECV = 2;

// ── process record ───────────────────────────────────────────────────────────
export const P_STATE = 0; // P_PENDING / P_RUNNING / P_OK / P_FAILED
/** The process id: a terminate request names (record, id), so a reused record is never hit. */
export const P_ID = 1;
/**
 * Byte offset of the claim table of the references the running process's argument handles hold
 * (written by its worker once it has decoded them; 0 if none): [n, off, id, off, id, ...]. An
 * entry is given back once, by whoever first swaps its offset to 0: the handle's own release, or
 * main for a process whose thread died. Freed with the record.
 */
export const P_REFS = 2;
/**
 * 1 once the references the arguments carry are the worker's (listed in the claim table, or held
 * by its handles): until then they are the encoded arguments', and main gives them back from
 * there should the thread die (a death while the worker decodes and lists them: see
 * `releaseArgRefs`). Stored by the worker only.
 */
export const P_TAKEN = 3;
/** The result (or encoded error) once settled. */
export const P_SLOT = 4;
/**
 * The encoded argument array; whoever moves the record out of PENDING owns (decodes or drops) it.
 * Its block is freed with the record.
 */
export const P_ARGS = 8;
/**
 * Byte offset of the table of the typed ends among the arguments that the spawner counted as
 * used by the process (0 if none): [n, then for each: channel offset, id, end, token]. A token
 * (1) is cleared by whoever gives that end's count back: the worker once its own use of the
 * end is counted (`handOverEnds`), or main for a process that never started or died first
 * (`dropPreheld`). Clearing it and giving the count back are one step a death cannot split:
 * two atomics with no call between (see ring.ts, "Death"). Freed with the record.
 */
export const P_PREHELD = 12;
export const P_WORDS = 13;
export const P_PENDING = 0;
export const P_RUNNING = 1;
export const P_OK = 2;
export const P_FAILED = 3;
/** Someone won the right to write the result slot; OK or FAILED follows. */
export const P_SETTLING = 4;

// ── limits ───────────────────────────────────────────────────────────────────
/** Largest channel capacity. Larger buffers belong in your own data structure. */
export const MAX_CAPACITY = 1 << 20;
/**
 * Most parties waiting on one channel in one direction (ERR_TOO_MANY_WAITERS past it): a queue
 * that grows with waiting parties is bounded. Many more waiters than threads can only be async
 * ops piling up, which wants a buffer or a bound on concurrency instead.
 */
export const MAX_WAITERS = 1 << 16;
/** Largest encoded message. */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_HEAP_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_HEAP_BYTES = 1024 * 1024 * 1024;
