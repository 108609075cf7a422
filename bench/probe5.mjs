const T=(s)=>console.error("T", (performance.timeOrigin+performance.now()).toFixed(1), s);
T('start');
const { Pool } = await import('@occam/pool');
T('imported');
const pool = new Pool({ module: new URL(process.env.MOD ?? './impl/occam.pool-tasks.ts', import.meta.url), size: 2 });
const r = await pool.run('inc', 1);
T('first-result');
process.exit(0);
