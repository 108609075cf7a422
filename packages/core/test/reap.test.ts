// The supervisor's cleaning up after dead threads (src/internal/reap.ts), case by case: each
// case (fixtures/reap-cases.ts) runs as a program of its own that plays the supervisor, on
// thread-table slots left as a thread that died at a chosen point would leave them. A case that
// would make the supervisor wait for ever is killed by the timeout here and fails with a message.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const bin = fileURLToPath(new URL('../bin/occam.mjs', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/reap-cases.ts', import.meta.url));

/** Runs one case; its findings, parsed. */
function run(name: string): Record<string, any> {
  const r = spawnSync(process.execPath, [bin, 'run', fixture, name], { encoding: 'utf8', timeout: 20_000 });
  if (r.signal !== null) throw new Error(`watchdog: case ${name} did not finish within 20 s (the supervisor waits for ever)\n${r.stderr}`);
  if (r.status !== 0) throw new Error(`case ${name} failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('the supervisor never waits for a thread that died too', () => {
  test('the allocator lock held by another dead thread: the channel is still broken, without a name', () => {
    const r = run('allocator-held-by-another-dead-thread');
    expect(r.first.error).toBeUndefined();
    expect(r.first.ms).toBeLessThan(1000);
    expect(r.lock).toBe('broken');
    expect(r.second.error).toBeUndefined();
    expect(r.allocFree).toBe(true); // the second death released it
    expect(r.parked.code).toBe('ERR_PEER_DIED');
    expect(r.parked.message).toBe('wedged is broken: a process died while operating on it; it cannot be used any more');
  });

  test('a party claimed by another dead thread: the disconnect is finished once that death is handled', () => {
    const r = run('claim-held-by-another-dead-thread');
    expect(r.first.error).toBeUndefined();
    expect(r.first.ms).toBeLessThan(1000);
    expect(r.claimedStill).toBe(true); // not settled by the first death: the claim was not its own
    expect(r.second.error).toBeUndefined();
    expect(r.left).toBe(0);
    expect(r.senders).toBe(0);
    expect(r.parked.code).toBe('ERR_PEER_DIED');
  });
});

describe('what a dead thread left is settled, and nothing else', () => {
  test('a claim record left by a claim that lost its race does not settle the live claim', () => {
    const r = run('stale-claim-record');
    expect(r.reaped.error).toBeUndefined();
    expect(r.stillOurs).toBe(true);
    expect(r.sent).toBe(true);
    expect(r.parked).toEqual({ value: 7 });
  });

  test("a dead thread's select that fired leaves no waiter queued; one still waiting is cancelled", () => {
    const r = run('settled-select-of-a-dead-thread');
    expect(r.sent).toBe(true);
    expect(r.before).toEqual({ one: 0, two: 1, three: 1 });
    expect(r.reaped.error).toBeUndefined();
    expect(r.after).toEqual({ one: 0, two: 0, three: 0 });
    expect(r.fired).toBe(3); // ST_DONE
    expect(r.waiting).toBe(4); // ST_CANCELLED
    expect(r.sendToThree).toBe(true); // nobody receives on it any more: a try fails
  });

  test('a step that throws is reported, and the other steps still run and free the slot', () => {
    const r = run('a-failing-step');
    expect(r.reaped.error).toMatch(/AggregateError: occam: cleaning up after broken-record failed/);
    expect(r.slotFree).toBe(true);
    expect(r.senders).toBe(0);
    expect(r.parked.code).toBe('ERR_PEER_DIED');
    expect(r.parked.message).toContain('broken-record');
  });
});
