// pool-startup, tinypool: one pool's start in a fresh process (forked by ../lib/pool-load.mjs).
import { startupChild } from '../lib/pool-load.mjs';
import { tinypool } from './pool.mjs';
await startupChild(tinypool);
