/**
 * @occam/select — waiting on many channel operations at once (select/alt).
 *
 * The engine underneath already runs every send and receive as a one-case select (see
 * @occam/core's waiter engine); the user-facing `select` with guards, timers, `default` and
 * fair/priority choice arrives with the select issue. Until then this package only re-exports
 * the channel constructor, so a program can depend on it already.
 */
export { chan } from '@occam/core';
