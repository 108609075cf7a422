// Shared-memory layouts of the SAB baselines, as Int32Array indices. One place, so the
// worker files and the main-side code (m2w) cannot disagree.

/**
 * Slot: ping-pong and rendezvous (8 bytes).
 *
 *   [0] STATE  PONG/EMPTY = 0: the first party's turn (write VALUE, set PING/FULL)
 *              PING/FULL  = 1: the second party's turn (read VALUE, answer, reset)
 *   [1] VALUE  written before STATE flips, read after seeing it flip
 */
export const STATE = 0;
export const VALUE = 1;
export const SLOT_BYTES = 8;
export const PONG = 0;
export const PING = 1;
export const EMPTY = PONG;
export const FULL = PING;

/**
 * SPSC ring (1024 slots). Each index word gets its own 64-byte line so the producer's
 * and the consumer's stores do not share a cache line.
 *
 *   word  0        HEAD     next slot to read; written by the consumer only
 *   word 16        TAIL     next slot to write; written by the producer only
 *   word 32        C_WAIT   1 while the consumer may be parked on TAIL
 *   word 48        P_WAIT   1 while the producer may be parked on HEAD
 *   byte 256 ...   slots    CAP x SLOT_SIZE bytes; a slot is free iff TAIL - HEAD < CAP
 *
 * HEAD and TAIL count items (never wrapped to CAP); the slot of item n is n & MASK.
 */
export const HEAD = 0;
export const TAIL = 16;
export const C_WAIT = 32;
export const P_WAIT = 48;
export const RING_HEADER_BYTES = 256;
export const CAP = 1024;
export const MASK = CAP - 1;
export const ringBytes = (slotSize) => RING_HEADER_BYTES + CAP * slotSize;
/** sab-ring's object ring: a slot is [int32 byte length][UTF-8 JSON, at most 124 bytes]. */
export const JSON_SLOT_BYTES = 128;

/**
 * MPMC ring (1024 int slots) under one futex mutex.
 *
 *   word  0   LOCK     0 free, 1 held, 2 held and someone may be parked on it
 *   word 16   M_HEAD   next slot to read      } guarded by LOCK; written with Atomics.store
 *   word 17   M_TAIL   next slot to write     } because waiters compare them outside it
 *   word 18   NE_WAIT  consumers parked (or about to park) on M_TAIL   } guarded by LOCK
 *   word 19   NF_WAIT  producers parked (or about to park) on M_HEAD   }
 *   word 64.. DATA     CAP int32 slots
 */
export const LOCK = 0;
export const M_HEAD = 16;
export const M_TAIL = 17;
export const NE_WAIT = 18;
export const NF_WAIT = 19;
export const M_DATA = 64;
export const MPMC_BYTES = (M_DATA + CAP) * 4;
