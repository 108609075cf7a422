// Baselines of the pool scenarios: piscina and tinypool at 2 threads, their other options at
// their defaults, running bench/baselines/pool-tasks.mjs.
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import { poolScenarios } from '../lib/pool-load.mjs';

const filename = new URL('./pool-tasks.mjs', import.meta.url).href;

export const piscina = {
  create: () => new Piscina({ filename, minThreads: 2, maxThreads: 2 }),
  run: (pool, x) => pool.run(x, { name: 'inc' }),
  close: (pool) => pool.destroy(),
};

export const tinypool = {
  create: () => new Tinypool({ filename, minThreads: 2, maxThreads: 2 }),
  run: (pool, x) => pool.run(x, { name: 'inc' }),
  close: (pool) => pool.destroy(),
};

export const piscinaScenarios = poolScenarios(piscina, new URL('./pool-startup.piscina.mjs', import.meta.url));
export const tinypoolScenarios = poolScenarios(tinypool, new URL('./pool-startup.tinypool.mjs', import.meta.url));
