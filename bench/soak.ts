/**
 * The soak (`pnpm soak [--seconds N]`, default 60): a network of producer workers sends
 * sequence-numbered messages through rendezvous and buffered channels, each send a select over
 * two channels, to main, which receives with a select over all of them; meanwhile workers die at
 * random moments, at least once a second: main terminates one, and others exit or throw on their
 * own at a message they drew at spawn. Every few seconds main also poisons a channel and puts a
 * new one in its place. Dead or poisoned producers are replaced at once.
 *
 * A message is acknowledged when its send returned to its producer (which then tells main on an
 * acknowledgement channel of its own). At the end it prints:
 *   sent (offered, as far as seen), acknowledged, received, discarded by poison and by death
 *   (acknowledged messages left in a channel that was poisoned, or broken by a death: at most its
 *   capacity each), duplicated (must be 0), lost — acknowledged but neither received nor
 *   discarded (must be 0), threads leaked (from /proc/self/task, less the runtime's own live
 *   threads; must be 0), and channels leaked (live channels beyond those at the start, once
 *   main has let go of its own; must be 0)
 * Then (the last quarter of the time) a pool of 2 workers runs ~200 tasks at a time that
 * return, throw, exit their worker, are aborted or time out, beside up to two processes on
 * workers of their own (`pool.spawn`), some of them terminated: every task and process must
 * settle exactly once, with an outcome its kind allows (any may fail with its worker's death).
 * It exits non-zero if a must-be-0 figure is not 0, or if anything hangs (a watchdog).
 *
 * Run: occam run bench/soak.ts [--seconds N]
 */
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  chan,
  ChannelPoisonedError,
  liveChannels,
  main,
  PeerDiedError,
  spawn,
  type Channel,
  type Process,
  type Receiver,
  type Sender,
} from '@occam/core';
import { threadStats } from '@occam/core/testing';

/** Runs the garbage collector (and, soon after, the finalizers of the handles it collects). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** The runtime's own threads: main, the worker hosts and (once it is up) the supervisor. */
function runtimeThreads(): number {
  const t = threadStats();
  return t.slots + t.supervisor;
}
import { Pool } from '@occam/pool';
import { recv, select, selectAsync, send } from '@occam/select';

// ── the producer (a worker process) ──────────────────────────────────────────

const SEQ = 10_000_000; // message = pid * SEQ + seq

/**
 * Sends pid·SEQ + 0, 1, 2, … each as a select over its two channels, and acknowledges each send
 * that returned: [seq, which of the two], on the channel it receives first on `acks` (a handle
 * it holds by receiving it, not as an argument: its death must give that one back too). Dies by
 * `how` at message `dieAt`; returns when `quit` closes.
 */
export function producer(
  pid: number,
  outs: [Sender<number>, Sender<number>],
  acks: Receiver<Sender<[number, number]>>,
  quit: Receiver<never>,
  dieAt: number,
  how: 'exit' | 'throw' | 'none',
): string {
  const ack = acks.recv();
  try {
    for (let seq = 0; ; seq++) {
      if (seq === dieAt && how === 'exit') process.exit(1);
      if (seq === dieAt && how === 'throw') throw new Error(`soak: producer ${pid} dies as planned`);
      const msg = pid * SEQ + seq;
      const r = select([send(outs[0], msg), send(outs[1], msg), recv(quit)]);
      if (r.index === 2) return 'quit';
      ack.send([seq, r.index]);
    }
  } finally {
    ack.release();
  }
}

/** A channel holding `ack`'s send end, for a producer to receive (see `producer`). */
function ackDelivery(ack: Channel<[number, number]>): Receiver<Sender<[number, number]>> {
  const box = chan<Sender<[number, number]>>(1);
  const tx = ack.sender();
  box.trySend(tx);
  tx.release();
  const rx = box.receiver();
  box.release();
  return rx;
}

// ── main: the network, the killing, the books ────────────────────────────────

interface Slot {
  /** Channel generation id (a replaced channel gets a new one). */
  cid: number;
  ch: Channel<number>;
}

interface Producer {
  pid: number;
  proc: Process<string>;
  cids: [number, number];
  ack: Channel<[number, number]>;
}

const CAPS = [0, 0, 1, 8];

function tasks(): number {
  try {
    return readdirSync('/proc/self/task').length;
  } catch {
    return -1; // not Linux: not measured
  }
}

const rand = (n: number): number => Math.floor(Math.random() * n);
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

main(async () => {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 60;
  if (!(seconds > 0)) throw new Error('--seconds needs a positive number');
  // Three quarters of the time for the channel network, a quarter for the pool.
  const channelsOk = await channelSoak(seconds * 0.75);
  const poolOk = await poolSoak(seconds * 0.25);
  console.log(channelsOk && poolOk ? 'soak: passed' : 'soak: FAILED');
  process.exit(channelsOk && poolOk ? 0 : 1);
});

/** The channel network under random deaths and poison (see the top of the file); true if it passed. */
async function channelSoak(seconds: number): Promise<boolean> {
  const channelsBefore = liveChannels();

  let nextCid = 1;
  const slots: Slot[] = CAPS.map((cap, k) => ({ cid: nextCid++, ch: chan<number>(cap, { name: `d${k}` }) }));
  const capOf = new Map(slots.map((s) => [s.cid, s.ch.cap]));
  const quit = chan<never>(0, { name: 'quit' });

  // The books.
  const acked = new Map<number, number>(); // message → channel cid it was acknowledged on
  const received = new Set<number>();
  let receipts = 0;
  let duplicated = 0;
  const maxSeq = new Map<number, number>(); // pid → highest seq seen
  const poisonedCids = new Set<number>();
  const brokenCids = new Set<number>();
  const deaths = { terminated: 0, exited: 0, threw: 0, poisoned: 0, peerDied: 0 };

  const seen = (msg: number): void => {
    const pid = Math.floor(msg / SEQ);
    maxSeq.set(pid, Math.max(maxSeq.get(pid) ?? -1, msg % SEQ));
  };

  // Warm up (a host, the supervisor, libuv's threads) before counting threads.
  await spawn(import.meta.url, 'producer', [0, [chan<number>(1).sender(), chan<number>(1).sender()], ackDelivery(chan(1)), quit.receiver(), 0, 'throw']).join().catch(() => undefined);
  // The supervisor starts 100 ms after the first host: counted before it has joined the runtime,
  // its thread would show as one that went away (-1).
  for (let i = 0; i < 300 && threadStats().supervisor === 0; i++) await tick(10);
  const tasksBefore = tasks();
  const slotsBefore = runtimeThreads();

  let stopping = false;
  let nextPid = 1;
  const live = new Map<number, Producer>();
  const ackChannels: Producer[] = [];

  // Producer k sends on channels PAIRS[k]: each channel has three producers. A producer that
  // ends is replaced by one on the same two channels (as they are now).
  const PAIRS: [number, number][] = [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2], [1, 3]];
  const start = (k: number): void => {
    const pid = nextPid++;
    const [a, b] = PAIRS[k]!;
    const ack = chan<[number, number]>(1024, { name: `ack${pid}` });
    const r = rand(3);
    const how = r === 0 ? 'exit' : r === 1 ? 'throw' : 'none';
    const proc = spawn<string>(
      import.meta.url,
      'producer',
      [pid, [slots[a]!.ch.sender(), slots[b]!.ch.sender()], ackDelivery(ack), quit.receiver(), 500 + rand(20_000), how],
      { name: `producer${pid}` },
    );
    const p: Producer = { pid, proc, cids: [slots[a]!.cid, slots[b]!.cid], ack };
    live.set(pid, p);
    ackChannels.push(p);
    proc.join().then(
      () => {
        live.delete(pid);
        if (!stopping) start(k);
      },
      (e: unknown) => {
        live.delete(pid);
        if (e instanceof ChannelPoisonedError) deaths.poisoned++;
        else if (e instanceof PeerDiedError) deaths.peerDied++;
        else if (String(e).includes('terminated')) deaths.terminated++;
        else if (String(e).includes('exit code')) deaths.exited++;
        else deaths.threw++;
        if (!stopping) start(k);
      },
    );
  };
  for (let k = 0; k < PAIRS.length; k++) start(k);

  /** Takes acknowledgements in (a broken ack channel just stops giving them). */
  const drainAcks = (): void => {
    for (const p of ackChannels) {
      for (;;) {
        const r = p.ack.tryRecv();
        if (r.isErr()) break;
        const [seq, which] = r.value;
        const msg = p.pid * SEQ + seq;
        acked.set(msg, p.cids[which]!);
        seen(msg);
      }
    }
  };

  /** A channel that was poisoned or broken is replaced; its producers die and are replaced too. */
  const replace = (k: number, why: 'poison' | 'broken'): void => {
    const old = slots[k]!;
    (why === 'poison' ? poisonedCids : brokenCids).add(old.cid);
    if (why === 'poison') old.ch.poison();
    const fresh = { cid: nextCid++, ch: chan<number>(CAPS[k]!, { name: `d${k}` }) };
    capOf.set(fresh.cid, fresh.ch.cap);
    slots[k] = fresh;
  };

  // The receiving loop: a select over every channel, as they are now.
  const receiving = (async () => {
    while (!stopping) {
      const now = slots.slice();
      try {
        const r = await selectAsync(now.map((s) => recv(s.ch)), { timeout: 50 });
        if (!r.ok) continue; // (no channel is ever closed)
        receipts++;
        if (received.has(r.value)) duplicated++;
        received.add(r.value);
        seen(r.value);
      } catch (e) {
        if (e instanceof PeerDiedError) {
          // Broken by a death, or its producers all died: a broken channel is replaced; a
          // disconnected one reconnects when its replacement producers are spawned.
          now.forEach((s, k) => s.ch.broken && slots[k] === s && replace(k, 'broken'));
          await tick(1);
        } else if (!(e instanceof ChannelPoisonedError) && (e as { code?: string }).code !== 'ERR_TIMEOUT') throw e;
      }
    }
  })();

  // The killing, and the poisoning, for `seconds`.
  const began = Date.now();
  let nextPoison = began + 2000 + rand(2000);
  let lastReport = began;
  while (Date.now() - began < seconds * 1000) {
    await tick(50 + rand(850)); // a kill at a random moment, at least once a second
    const victims = [...live.values()];
    if (victims.length > 0) void victims[rand(victims.length)]!.proc.terminate();
    if (Date.now() > nextPoison) {
      replace(rand(slots.length), 'poison');
      nextPoison = Date.now() + 2000 + rand(2000);
    }
    drainAcks();
    if (Date.now() - lastReport > 5000) {
      lastReport = Date.now();
      const t = Math.round((Date.now() - began) / 1000);
      console.log(`  ${t}s: ${acked.size} acknowledged, ${receipts} received, deaths ${JSON.stringify(deaths)}`);
    }
  }

  // Wind down: producers quit, main takes what is left, then does the books.
  stopping = true;
  quit.close();
  const dog = setTimeout(() => {
    console.error(`soak: HANG — ${live.size} producers did not end within 20 s of quit`);
    process.exit(2);
  }, 20_000);
  while (live.size > 0) await tick(10);
  await receiving;
  for (const s of slots) {
    for (;;) {
      const r = s.ch.tryRecv();
      if (r.isErr()) break;
      receipts++;
      if (received.has(r.value)) duplicated++;
      received.add(r.value);
      seen(r.value);
    }
  }
  drainAcks();
  clearTimeout(dog);

  const discardedBy = { poison: 0, death: 0 };
  const leftIn = new Map<number, number>();
  let lost = 0;
  for (const [msg, cid] of acked) {
    if (received.has(msg)) continue;
    const n = (leftIn.get(cid) ?? 0) + 1;
    leftIn.set(cid, n);
    // Left in a channel that was poisoned or broken: dropped with it, at most its capacity.
    if (poisonedCids.has(cid) && n <= capOf.get(cid)!) discardedBy.poison++;
    else if (brokenCids.has(cid) && n <= capOf.get(cid)!) discardedBy.death++;
    else lost++;
  }
  let sent = 0;
  for (const s of maxSeq.values()) sent += s + 1;

  // Threads: idle hosts stay for reuse, and are the runtime's own; anything else is a leak.
  await tick(200);
  const tasksAfter = tasks();
  const slotsAfter = runtimeThreads();
  const leaked = tasksBefore < 0 ? 0 : tasksAfter - tasksBefore - (slotsAfter - slotsBefore);

  console.log(`soak, channels: ${seconds} s, ${nextPid - 1} producers started, deaths ${JSON.stringify(deaths)}`);
  console.log(`  channels poisoned ${poisonedCids.size}, broken by a death ${brokenCids.size}`);
  console.log(`  sent (offered, as far as seen) ${sent}`);
  console.log(`  acknowledged                   ${acked.size}`);
  console.log(`  received                       ${receipts}`);
  console.log(`  discarded by poison            ${discardedBy.poison}`);
  console.log(`  discarded by death             ${discardedBy.death}`);
  console.log(`  duplicated (must be 0)         ${duplicated}`);
  console.log(`  lost (must be 0)               ${lost}   (acknowledged, neither received nor discarded)`);
  console.log(`  threads leaked (must be 0)     ${leaked}   (tasks ${tasksBefore} → ${tasksAfter}, runtime threads ${slotsBefore} → ${slotsAfter})`);
  for (const q of [quit, ...slots.map((s) => s.ch), ...ackChannels.map((p) => p.ack)]) q.release();
  // Channels: main's handles released above, or garbage (collected now); every worker's given
  // back at its process's end or its death. Anything else is a leak.
  let channelsLeaked = 0;
  for (let i = 0; i < 50; i++) {
    collectGarbage();
    await tick(20);
    channelsLeaked = liveChannels() - channelsBefore;
    if (channelsLeaked <= 0) break;
  }
  console.log(`  channels leaked (must be 0)    ${Math.max(0, channelsLeaked)}   (live ${channelsBefore} → ${liveChannels()})`);
  return duplicated === 0 && lost === 0 && leaked === 0 && channelsLeaked <= 0;
}

// ── the pool soak ────────────────────────────────────────────────────────────

type Kind = 'ok' | 'fail' | 'exit' | 'abort' | 'timeout' | 'later' | 'process' | 'terminated';
const KINDS: Kind[] = ['ok', 'ok', 'ok', 'ok', 'fail', 'exit', 'abort', 'timeout', 'later', 'process', 'terminated'];
/** Processes (`pool.spawn`) at once: each takes a worker of its own. */
const MAX_PROCESSES = 2;

/**
 * A pool under tasks that return, throw, exit their worker, are aborted or time out, ~200 in
 * flight, and up to two processes at a time on workers of their own (`spawn`), some of them
 * terminated: every task and process must settle exactly once, with an outcome its kind allows.
 * True if so.
 */
async function poolSoak(seconds: number): Promise<boolean> {
  const pool = new Pool<typeof import('./soak-tasks.js')>({ module: new URL('./soak-tasks.ts', import.meta.url), size: 2, depth: 8, abortGrace: 50 });
  const settles = new Map<number, number>();
  const wrong: string[] = [];
  const tally = new Map<string, number>();
  let started = 0;
  let inFlight = 0;
  let processes = 0;
  const launch = (): void => {
    const id = started++;
    let kind = KINDS[rand(KINDS.length)]!;
    if ((kind === 'process' || kind === 'terminated') && processes >= MAX_PROCESSES) kind = 'ok';
    const ac = new AbortController();
    const spawned = kind === 'process' || kind === 'terminated' ? pool.spawn('slow', id, 2 + rand(20)) : undefined;
    if (spawned !== undefined) {
      processes++;
      if (kind === 'terminated') setTimeout(() => void spawned.terminate(), rand(15));
      void spawned.join().then(
        () => processes--,
        () => processes--,
      );
    }
    const p =
      spawned !== undefined ? spawned.join()
      : kind === 'ok' ? pool.run('ok', id)
      : kind === 'fail' ? pool.run('fail', id)
      : kind === 'exit' ? pool.run('exit')
      : kind === 'later' ? pool.run('later', id, rand(5))
      : kind === 'abort' ? pool.runWith({ signal: ac.signal }, 'slow', id, 2 + rand(20))
      : pool.runWith({ timeout: 1 + rand(10) }, 'slow', id, 2 + rand(20));
    if (kind === 'abort') setTimeout(() => ac.abort(), rand(15));
    inFlight++;
    settles.set(id, 0);
    const settled = (outcome: string): void => {
      settles.set(id, settles.get(id)! + 1);
      tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
      inFlight--;
      // Any task may fail with its worker's death (a task that exits takes the others it holds).
      const allowed: Record<Kind, string[]> = {
        ok: ['value'], fail: ['E_SOAK'], exit: ['ERR_WORKER_DIED'], later: ['value'],
        abort: ['value', 'ERR_ABORTED'], timeout: ['value', 'ERR_TIMEOUT'],
        process: ['value'], terminated: ['value', 'ERR_PROCESS_FAILED'],
      };
      if (outcome !== 'ERR_WORKER_DIED' && !allowed[kind].includes(outcome)) wrong.push(`${kind} task ${id} ended ${outcome}`);
    };
    p.then(
      (v) => settled(v === id + 1 ? 'value' : `wrong value ${v}`),
      (e: { code?: string }) => settled(e.code ?? String(e)),
    );
  };
  const began = Date.now();
  while (Date.now() - began < seconds * 1000) {
    while (inFlight < 200) launch();
    await tick(1);
  }
  const dog = setTimeout(() => {
    console.error(`soak, pool: HANG — ${inFlight} tasks unsettled 20 s after the last was started`);
    process.exit(2);
  }, 20_000);
  while (inFlight > 0) await tick(5);
  await pool.close();
  clearTimeout(dog);
  await tick(200);
  const twice = [...settles.values()].filter((n) => n > 1).length;
  const never = [...settles.values()].filter((n) => n === 0).length;
  console.log(`soak, pool: ${seconds} s, ${started} tasks: ${JSON.stringify(Object.fromEntries(tally))}`);
  console.log(`  settled twice (must be 0)      ${twice}`);
  console.log(`  never settled (must be 0)      ${never}`);
  console.log(`  wrong outcome (must be 0)      ${wrong.length}${wrong.length > 0 ? `   e.g. ${wrong.slice(0, 3).join('; ')}` : ''}`);
  return twice === 0 && never === 0 && wrong.length === 0;
}
