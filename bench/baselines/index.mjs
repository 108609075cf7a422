// The baseline registry: scenario name → impl name → run(opts) (the contract is in ../run.mjs).
// Each worker file in this folder says in its first line what it measures.
import { pairs, sabEnds, portEnds, runParties } from '../lib/launch.mjs';
import { sabParkM2W, postMessageM2W } from './m2w-main.mjs';
import { SLOT_BYTES, ringBytes, MPMC_BYTES, JSON_SLOT_BYTES } from './layout.mjs';
import { piscinaScenarios, tinypoolScenarios } from './pool.mjs';

const slot = sabEnds(SLOT_BYTES);
const ring = (slotSize) => sabEnds(ringBytes(slotSize));

const pingPong = (file, ends, count = 1) => (opts) => pairs(opts, file, { count, ends });
const stream = (file, ends, data = {}) => (opts) =>
  pairs(opts, file, { roles: ['producer', 'consumer'], ends, data });

function mpmc(opts) {
  const sab = new SharedArrayBuffer(MPMC_BYTES);
  const workers = [];
  for (const index of [0, 1])
    for (const role of ['producer', 'consumer'])
      workers.push({ file: 'sab-ring-mpmc.mjs', data: { sab, role, index } });
  return runParties(opts, workers);
}

export const baselines = {
  'pingpong-w2w': {
    'floor-spin': pingPong('floor-spin-pingpong.mjs', slot),
    'sab-park': pingPong('sab-park-pingpong.mjs', slot),
    postmessage: pingPong('postmessage-pingpong.mjs', portEnds),
  },
  'pingpong-m2w': {
    'sab-park': sabParkM2W,
    postmessage: postMessageM2W,
  },
  'spsc-0-int': {
    'floor-spin': stream('floor-spin-rendezvous.mjs', slot),
    'sab-park': stream('sab-park-rendezvous.mjs', slot),
    postmessage: stream('postmessage-stream.mjs', portEnds, { window: 0 }),
  },
  'spsc-1024-int': {
    'floor-spin': stream('floor-spin-ring.mjs', ring(4)),
    'sab-ring': stream('sab-ring-int.mjs', ring(4)),
    postmessage: stream('postmessage-stream.mjs', portEnds, { window: 1024 }),
  },
  'spsc-1024-obj': {
    'sab-ring': stream('sab-ring-json.mjs', ring(JSON_SLOT_BYTES)),
    postmessage: stream('postmessage-stream.mjs', portEnds, { window: 1024, objects: true }),
  },
  // postMessage has no queue that two consumers can share, so mpmc has only the locked ring.
  'mpmc-1024-int': {
    'sab-ring': mpmc,
  },
  'pingpong-w2w-x2': {
    'floor-spin': pingPong('floor-spin-pingpong.mjs', slot, 2),
    'sab-park': pingPong('sab-park-pingpong.mjs', slot, 2),
    postmessage: pingPong('postmessage-pingpong.mjs', portEnds, 2),
  },
  ...Object.fromEntries(
    Object.keys(piscinaScenarios).map((name) => [name, { piscina: piscinaScenarios[name], tinypool: tinypoolScenarios[name] }]),
  ),
};
