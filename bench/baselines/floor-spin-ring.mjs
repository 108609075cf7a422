// floor-spin: SPSC ring of 1024 ints in a SAB that only spins when empty/full (never parks) — the floor for spsc-1024-int.
import { data } from '../lib/worker.mjs';

data.park = false;
await import('./sab-ring-int.mjs');
