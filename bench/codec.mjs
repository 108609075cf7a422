// Codec micro-benchmark: encode+decode round trips of occam's codec against the
// baselines a user would otherwise pick (v8.serialize+deserialize, JSON), all in this
// one process run. Prints ns/op (median of rounds) and writes bench/results/codec.json.
//
//   node scripts/build.mjs && node bench/codec.mjs [--quick]
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { decode, encode, HANDLE_BRAND } from '../packages/core/dist/internal/codec.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 5 : 15;
const ROUND_MS = quick ? 40 : 120;

class FakeHandle {
  constructor(id) {
    this.id = id;
  }
  get [HANDLE_BRAND]() {
    return true;
  }
}
const hooks = {
  encodeHandle: (h) => [h.id, 0, 0, 0, 0, 0],
  decodeHandle: (w) => new FakeHandle(w[0]),
};

const scenarios = {
  'small object': { id: 7, name: 'item-7', tags: ['a', 'b'] },
  'array of 100 ints': Array.from({ length: 100 }, (_, i) => i * 3),
  '20 small objects': Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}`, ok: i % 2 === 0 })),
  'string, 1 KiB ascii': 'x'.repeat(1024),
  'string, 1 Ki UTF-16 units': 'ж'.repeat(1024),
  'bytes, 64 KiB': new Uint8Array(65536).fill(7),
  'object with a Date (v8 path)': { id: 7, at: new Date(0), tags: ['a', 'b'] },
};

const contenders = {
  occam: (x) => decode(encode(x, hooks), hooks),
  v8: (x) => v8.deserialize(v8.serialize(x)),
  JSON: (x) => JSON.parse(JSON.stringify(x)),
};

let sink;
/** Runs `f(x)` in batches for about ROUND_MS and returns ns per call. */
function round(f, x) {
  let n = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(ROUND_MS * 1e6);
  let now = start;
  while (now < stop) {
    for (let i = 0; i < 64; i++) sink = f(x);
    n += 64;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const results = [];
for (const [scenario, value] of Object.entries(scenarios)) {
  const names = Object.keys(contenders).filter((c) => !(c === 'JSON' && value instanceof Uint8Array));
  const times = Object.fromEntries(names.map((c) => [c, []]));
  for (const c of names) round(contenders[c], value); // warm up
  // Interleave contenders round by round so that drift hits them alike.
  for (let r = 0; r < ROUNDS; r++) for (const c of names) times[c].push(round(contenders[c], value));
  const row = { scenario, bytes: encode(value, hooks).length };
  for (const c of names) row[c] = median(times[c]);
  results.push(row);
}

const fmt = (x) => (x === undefined ? '—' : x < 1000 ? x.toFixed(0) : x.toFixed(0).replace(/\B(?=(\d{3})+$)/g, ','));
console.log(`node ${process.version}, ${ROUNDS} rounds × ${ROUND_MS} ms, median ns per encode+decode`);
console.log(
  ['scenario'.padEnd(30), 'bytes'.padStart(7), 'occam'.padStart(9), 'v8'.padStart(9), 'JSON'.padStart(9),
    'v8/occam'.padStart(9), 'JSON/occam'.padStart(11)].join(' '),
);
for (const r of results) {
  console.log(
    [r.scenario.padEnd(30), String(r.bytes).padStart(7), fmt(r.occam).padStart(9), fmt(r.v8).padStart(9),
      fmt(r.JSON).padStart(9), (r.v8 / r.occam).toFixed(1).padStart(8) + '×',
      (r.JSON === undefined ? '—' : (r.JSON / r.occam).toFixed(1) + '×').padStart(11)].join(' '),
  );
}
const out = new URL('./results/codec.json', import.meta.url);
writeFileSync(out, JSON.stringify({ node: process.version, rounds: ROUNDS, roundMs: ROUND_MS, results }, null, 2) + '\n');
console.log(`wrote ${out.pathname}`);
void sink;
