// pool-startup, piscina: one pool's start in a fresh process (forked by ../lib/pool-load.mjs).
import { startupChild } from '../lib/pool-load.mjs';
import { piscina } from './pool.mjs';
await startupChild(piscina);
