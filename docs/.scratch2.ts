import { chan, main, spawn, liveChannels, type Receiver } from '@occam/core';
import { select, selectAsync, recv, send, after } from '@occam/select';

export function defaultFlag(ch: Receiver<number>, flag: boolean): string {
  const r = select([recv(ch)], { default: flag });
  // Typed as Selected<[RecvCase<number>]>: index 0 only; but at runtime:
  return `index=${r.index} kind=${r.kind}`;
}
export function spentTimer(): string {
  const t = after(1);
  select([t]);
  try {
    select([t], { timeout: 300 });
    return 'fired';
  } catch (e) {
    return `spent timer alone: ${(e as { code: string }).code} (would wait forever without timeout)`;
  }
}
main(async () => {
  const ch = chan<number>();
  console.log(await spawn<string>(import.meta.url, 'defaultFlag', [ch.receiver(), true]).join());
  console.log(await spawn<string>(import.meta.url, 'spentTimer', []).join());
  // send case that loses, carrying a channel handle
  const nobody = chan<{ reply: unknown }>(0);
  const base = liveChannels();
  for (let i = 0; i < 50; i++) {
    const reply = chan<number>(1);
    const r = await selectAsync([send(nobody, { reply }), after(1)]);
    if (r.index !== 1) throw new Error('?');
    reply.release();
  }
  await new Promise((res) => setTimeout(res, 50));
  console.log('live channels before', base, 'after', liveChannels());
});
