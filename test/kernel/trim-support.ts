/** Low, deterministic room noise (±`amplitude`, mulberry32 from `seed`). */
export function seededNoise(length: number, amplitude: number, seed: number): Int16Array {
  let a = seed >>> 0;
  const out = new Int16Array(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = Math.round((r * 2 - 1) * amplitude);
  }
  return out;
}
