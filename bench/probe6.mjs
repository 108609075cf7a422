const t0 = performance.now();
await import('@occam/core');
const t1 = performance.now();
const k = await import('@occam/core/pool-kit');
const t2 = performance.now();
const h = await import(new URL('../packages/core/dist/chunks/' + process.argv[2], import.meta.url).href);
const t3 = performance.now();
console.log('core', (t1-t0).toFixed(1), 'pool-kit', (t2-t1).toFixed(1), 'host', (t3-t2).toFixed(1));
