/**
 * What @occam/pool builds on, beyond the public API: errors as plain values (to send a task's
 * error back with its class, code, message and stack) and module preparation (a TypeScript task
 * module compiled once, for every worker to import). Not meant for programs.
 */
export { decodeError, encodeError } from './internal/errcodec.js';
export { loadableModuleUrl as prepareModule } from './internal/compile.js';
