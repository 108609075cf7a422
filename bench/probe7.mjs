const t0 = performance.now();
const { prepareModule } = await import('@occam/core/pool-kit');
const t1 = performance.now();
const u = await prepareModule(new URL('./impl/occam.pool-tasks.ts', import.meta.url).href);
const t2 = performance.now();
const u2 = await prepareModule(new URL('./impl/occam.pool-tasks.ts', import.meta.url).href);
const t3 = performance.now();
console.log('import', (t1-t0).toFixed(1), 'prepare', (t2-t1).toFixed(1), 'again', (t3-t2).toFixed(1));
