/**
 * @occam/pool — a worker pool on occam's channels (tasks and results travel over channels).
 *
 * Arrives with the pool issue; until then this package re-exports `spawn` and `par`, whose
 * warm worker hosts already let repeated spawns skip the worker start.
 */
export { par, spawn } from '@occam/core';
