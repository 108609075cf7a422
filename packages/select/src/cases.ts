/**
 * The cases of a select: a receive, a send, a timer, or `never`. Each has a guard (`when`) that
 * switches it off without rebuilding the case list; a switched-off case, and a receive or send
 * on `null`, is never ready (Go's nil-channel idiom).
 */
import type { Receiver, Sender } from '@occam/core';
import { FIRED, never as neverReady, NOT_READY, now, recvCase, sendCase } from '@occam/core/select-kit';
import type { ChannelCase, Selectable } from '@occam/core/select-kit';
import { InvalidArgumentError } from '@occam/core';

/** What every case has: a guard. */
abstract class Guarded {
  /** Whether the case takes part in the next select (occam's `b & c ? x`). */
  enabled = true;

  /** Sets the guard and returns the case: `recv(ch).when(n < limit)`. */
  when(condition: boolean): this {
    this.enabled = condition;
    return this;
  }

  /** @internal What the engine runs for this case in the next select. */
  abstract selectable(): Selectable;
}

/** A receive case; fires with the value, or with `ok: false` once the channel is closed and drained. */
export class RecvCase<T> extends Guarded {
  /** What kind of case this is (the `kind` of a select's result when it fires). */
  readonly kind = 'recv';
  /** @internal */
  readonly impl: ChannelCase | undefined;
  /** @internal Use `recv()`. */
  constructor(ch: Receiver<T> | null | undefined) {
    super();
    this.impl = ch == null ? undefined : recvCase(ch);
  }
  /** @internal */
  selectable(): Selectable {
    return this.enabled && this.impl !== undefined ? this.impl : neverReady;
  }
}

/** A send case; fires once the value is delivered (or buffered). `value` may be changed between selects. */
export class SendCase<T> extends Guarded {
  /** What kind of case this is (the `kind` of a select's result when it fires). */
  readonly kind = 'send';
  /** The value the next select offers. */
  value: T;
  /** @internal */
  readonly impl: ChannelCase | undefined;
  /** @internal Use `send()`. */
  constructor(ch: Sender<T> | null | undefined, value: T) {
    super();
    this.impl = ch == null ? undefined : sendCase(ch);
    this.value = value;
  }
  /** @internal */
  selectable(): Selectable {
    return this.enabled && this.impl !== undefined ? this.impl : neverReady;
  }
}

/**
 * A virtual deadline channel: ready when the clock reaches its due time. No timer thread and no
 * event-loop timer: a select that waits on it parks with the nearest due time as its timeout.
 * `after` fires once (a select that fires it uses it up; one that picks another case does not);
 * `tick` fires at start + k·period for k = 1, 2, …, so lateness never accumulates (ticks missed
 * while nobody selected are dropped, as Go's ticker does); `deadline` is ready at every select
 * from its due time on (a context's deadline: one for several selects). A spent or stopped timer
 * counts as switched off.
 */
export class Timer extends Guarded implements Selectable {
  /** What kind of case this is (the `kind` of a select's result when it fires). */
  readonly kind = 'timer';
  readonly #start: number;
  /** 0: fires once; > 0: the tick period; -1: stays ready once due. */
  readonly #period: number;
  #k = 1;
  #due: number;
  #firedAt = NaN;

  /** @internal Use `after()`, `tick()` or `deadline()`. */
  constructor(ms: number, kind: 'after' | 'tick' | 'deadline') {
    super();
    if (typeof ms !== 'number' || !(ms >= 0) || (kind === 'tick' && !(ms > 0)) || ms === Infinity) {
      throw new InvalidArgumentError(
        `${kind}(ms) takes a finite number of milliseconds${kind === 'tick' ? ' above 0' : ' of at least 0'}, not ${String(ms)}`,
      );
    }
    this.#start = now();
    this.#period = kind === 'after' ? 0 : kind === 'tick' ? ms : -1;
    this.#due = this.#start + ms;
  }

  /** When the timer is next due (ms on the runtime clock, see `now`); Infinity once spent or stopped. */
  get deadline(): number {
    return this.#due;
  }

  /** The due time of the latest firing (NaN before the first), on this thread's clock (`performance.now()`). */
  get firedAt(): number {
    return this.#firedAt;
  }

  /** Stops the timer: it never fires again. */
  stop(): void {
    this.#due = Infinity;
  }

  /** @internal */
  selectable(): Selectable {
    return this.enabled && this.#due !== Infinity ? this : neverReady;
  }

  /** @internal Fires if due. */
  try(): number {
    const t = now();
    if (t < this.#due) return NOT_READY;
    this.#firedAt = this.#due;
    if (this.#period === 0) this.#due = Infinity;
    else if (this.#period > 0) {
      // The next point on the grid after now: a late select skips the ticks it missed.
      this.#k = Math.max(this.#k + 1, Math.floor((t - this.#start) / this.#period) + 1);
      this.#due = this.#start + this.#k * this.#period;
    }
    return FIRED;
  }

  /** @internal A timer registers nothing; if it is already due, the select starts over and fires it. */
  register(): boolean {
    return this.isReady();
  }

  /** @internal */
  unregister(): void {}

  /** Whether the timer is due now. */
  isReady(): boolean {
    return now() >= this.#due;
  }
}

/** The case that never fires (a stand-in, or a placeholder in a fixed case list). */
export class NeverCase extends Guarded {
  /** What kind of case this is. */
  readonly kind = 'never';
  /** @internal */
  selectable(): Selectable {
    return neverReady;
  }
}

/** Every kind of case. */
export type Case = RecvCase<any> | SendCase<any> | Timer | NeverCase;

/** A receive from `ch` (`null`: a case that is never ready). */
export function recv<T>(ch: Receiver<T> | null | undefined): RecvCase<T> {
  return new RecvCase(ch);
}

/** A send of `value` on `ch` (`null`: a case that is never ready). */
export function send<T>(ch: Sender<T> | null | undefined, value: T): SendCase<T> {
  return new SendCase(ch, value);
}

/** A timer that fires once, `ms` milliseconds from now. Reuse it across selects for an overall deadline. */
export function after(ms: number): Timer {
  return new Timer(ms, 'after');
}

/** A timer that fires every `ms` milliseconds, on a fixed grid from now (no drift). */
export function tick(ms: number): Timer {
  return new Timer(ms, 'tick');
}

/** A timer that is ready at every select from `ms` milliseconds from now on: one deadline shared by several selects. */
export function deadline(ms: number): Timer {
  return new Timer(ms, 'deadline');
}

/** A case that is never ready. */
export function never(): NeverCase {
  return new NeverCase();
}

/** Sets the guard of `c` and returns it: `when(n < limit, send(out, n))`. */
export function when<C extends Case>(condition: boolean, c: C): C {
  c.when(condition);
  return c;
}
