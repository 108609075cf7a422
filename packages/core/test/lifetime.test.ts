import { describe, expect, test } from 'vitest';
import { runFixture as runNode } from './helpers.js';

describe('heap limits', () => {
  test('a message that does not fit fails with a code, enqueues nothing, and the channel still works', () => {
    const r = runNode('heap-limits-main.mjs');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      'ERR_INVALID_ARGUMENT',
      'ERR_HEAP_EXHAUSTED',
      'len 0',
      'ERR_MESSAGE_TOO_LARGE',
      'len 0',
      'still works',
      'ERR_HEAP_EXHAUSTED, room for as many channels',
    ]);
  });
});

describe('process lifetime', () => {
  test('a pending async op keeps Node alive until it completes', () => {
    const r = runNode('keepalive-main.mjs');
    expect(r.stdout.trim()).toBe('got 7');
    expect(r.status).toBe(0);
  });

  test('a program exits on its own once its processes are joined', () => {
    const r = runNode('exits-main.mjs');
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('got 5 joined 1');
    expect(r.status).toBe(0);
  });
});
