// occam's pool as a pool-scenario adapter: 2 workers, a TypeScript task module.
import { Pool } from '@occam/pool';

const module = new URL('./occam.pool-tasks.ts', import.meta.url);

export const occamPool = {
  create: () => new Pool({ module, size: 2 }),
  run: (pool, x) => pool.run('inc', x),
  close: (pool) => pool.close(),
};
