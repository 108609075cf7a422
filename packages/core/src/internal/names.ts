/** Names kept in the shared heap (channel names, process names): UTF-16 code units in a block. */
import type { Heap } from './heap.js';

/** Copies `name` into a fresh heap block; returns its byte offset (free it with `heap.free`). */
export function storeName(h: Heap, name: string): number {
  const at = h.alloc(name.length * 2 + 1);
  h.sync();
  const u8 = h.u8;
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    u8[at + 2 * i] = u & 0xff;
    u8[at + 2 * i + 1] = u >> 8;
  }
  return at;
}

/** Reads `len` code units stored by `storeName` at byte `at`. */
export function loadName(h: Heap, at: number, len: number): string {
  const u8 = h.u8;
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(u8[at + 2 * i]! | (u8[at + 2 * i + 1]! << 8));
  return s;
}
