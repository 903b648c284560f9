import { it } from 'vitest';
import { rig } from './support.ts';

it('drop idle then run', async () => {
  const r = await rig({ config: () => ({ asr: { timeoutMs: 1500 }, correction: { timeoutMs: 1000 }, transport: { headersTimeoutMs: 400, bodyTimeoutMs: 400 } }) });
  const kinds: Record<string, number> = {};
  for (let i = 0; i < 150; i++) {
    r.server.closeConnections();
    const t = performance.now();
    const o = await r.run();
    const k = o.kind === 'failed' ? o.error.code : o.kind;
    kinds[k] = (kinds[k] ?? 0) + 1;
    if (o.kind !== 'done') console.log(i, k, Math.round(performance.now() - t), o.kind === 'failed' ? o.error.message : o.record.warnings, JSON.stringify(o.record.timings));
  }
  console.log(kinds);
  console.log(r.logText().split('\n').filter((l) => /attempt/.test(l)).slice(0, 20).join('\n'));
  await r.close();
}, 120000);
