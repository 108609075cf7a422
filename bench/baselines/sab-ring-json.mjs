// sab-ring: SPSC ring of 1024 fixed 128-byte slots; objects cross as JSON.stringify + TextEncoder.encodeInto, back with TextDecoder + JSON.parse.
import { data, barrier, now, report } from '../lib/worker.mjs';
import { makeItem, mixItem } from '../lib/checksum.mjs';
import { ringProducer, ringConsumer } from './ring.mjs';
import { CAP, RING_HEADER_BYTES, JSON_SLOT_BYTES as SLOT_SIZE } from './layout.mjs';

const bytes = new Uint8Array(data.sab, RING_HEADER_BYTES, CAP * SLOT_SIZE);
const lengths = new Int32Array(data.sab, RING_HEADER_BYTES, (CAP * SLOT_SIZE) / 4);
const { ops, warmup } = data;

if (data.role === 'producer') {
  const p = ringProducer(data.sab, true);
  const encoder = new TextEncoder();
  const send = (item) => {
    const json = JSON.stringify(item);
    const k = p.reserve();
    const at = k * SLOT_SIZE;
    const { read, written } = encoder.encodeInto(json, bytes.subarray(at + 4, at + SLOT_SIZE));
    if (read !== json.length) throw new Error(`item needs more than ${SLOT_SIZE - 4} bytes`);
    lengths[at >> 2] = written;
    p.publish();
  };
  for (let i = 0; i < warmup; i++) send(makeItem(i));
  barrier();
  const t0 = now();
  for (let i = 0; i < ops; i++) send(makeItem(i));
  report(t0, now());
} else {
  const c = ringConsumer(data.sab, true);
  const decoder = new TextDecoder();
  const recv = () => {
    const at = c.peek() * SLOT_SIZE;
    const item = JSON.parse(decoder.decode(bytes.subarray(at + 4, at + 4 + lengths[at >> 2])));
    c.release();
    return item;
  };
  for (let i = 0; i < warmup; i++) recv();
  barrier();
  const t0 = now();
  let s = 0;
  for (let i = 0; i < ops; i++) s = mixItem(s, recv());
  report(t0, now(), s);
}
