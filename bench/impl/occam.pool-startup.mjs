// pool-startup, occam: one pool's start in a fresh process (forked by ../lib/pool-load.mjs).
import { startupChild } from '../lib/pool-load.mjs';
import { occamPool } from './occam.pool.mjs';
await startupChild(occamPool);
