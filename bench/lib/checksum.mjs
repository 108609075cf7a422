// Checksums shared by the harness (expected values) and the worker files (received values).
// All arithmetic is int32 so both sides agree bit for bit; results are reported as uint32.

/** Order-sensitive fold: a FIFO that reorders or drops an item changes the result. */
export const mix = (s, x) => (Math.imul(s, 31) + x) | 0;

/** The reply a ping-pong partner sends for ping value v. */
export const pong = (v) => (2 * v + 1) | 0;

/** Fold f(i) for i in [0, n) with mix; uint32. */
export function foldMix(n, f) {
  let s = 0;
  for (let i = 0; i < n; i++) s = mix(s, f(i));
  return s >>> 0;
}

/** Sum of i for i in [0, n), uint32 (order-free: used where several consumers share a queue). */
export function sumTo(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + i) | 0;
  return s >>> 0;
}

/** The object sent by the -obj scenarios, and the two numbers its checksum covers. */
export const makeItem = (i) => ({ id: i, name: 'item-' + i, tags: ['a', 'b'] });
export const mixItem = (s, item) => mix(mix(s, item.id), item.name.length);
