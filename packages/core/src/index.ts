/**
 * occam: communicating sequential processes for Node.js. Processes run in worker threads and
 * share nothing; they talk over channels that live in shared memory.
 */
export {
  Channel,
  chan,
  liveChannels,
  poison,
  withPoison,
  type OpOptions,
  type Receiver,
  type RecvError,
  type SendError,
  type Sender,
  type TryRecvError,
  type TrySendError,
} from './channel.js';
export * from './errors.js';
export { registerError } from './internal/errcodec.js';
export { MAX_CAPACITY, MAX_MESSAGE_BYTES, MAX_WAITERS } from './internal/layout.js';
export { main, par, Process, processModule, processName, spawn, type JoinOptions, type SpawnOptions } from './process.js';
export { formatWaitReport, waitReport, type BlockedProcess } from './report.js';
import './internal/deadlock.js'; // deadlock detection on the main thread
export { startRuntime, type RuntimeOptions } from './start.js';
