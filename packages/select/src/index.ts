/**
 * @occam/select — wait on many channel operations at once and commit to exactly one (occam's
 * ALT, Go's select), across processes in any worker.
 *
 * ```ts
 * import { select, recv, send, after } from '@occam/select';
 * const r = select([recv(requests), send(log, line), after(100)]);
 * switch (r.index) {
 *   case 0: if (r.ok) serve(r.value); break; // r.ok false: requests is closed
 *   case 1: break;                           // the line was sent
 *   case 2: break;                           // 100 ms passed first
 * }
 * ```
 */
export { after, deadline, never, NeverCase, recv, RecvCase, send, SendCase, tick, Timer, when, type Case } from './cases.js';
export {
  select,
  selectAsync,
  type Defaulted,
  type Received,
  type Selected,
  type SelectOptions,
  type Sent,
  type TimerFired,
} from './select.js';
export { EmptySelectError } from '@occam/core';
