// @ts-check
// The data pattern of docs/vectors.md: mulberry32 seeded with S, each 32-bit output stored
// little-endian, truncated to N bytes. The only code the reference model shares with the hosts.

/**
 * @param {number} seed u32
 * @param {number} length bytes
 * @returns {Uint8Array}
 */
export function pattern(seed, length) {
  const out = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i += 4) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const word = (t ^ (t >>> 14)) >>> 0;
    for (let b = 0; b < 4 && i + b < length; b++) out[i + b] = (word >>> (8 * b)) & 0xff;
  }
  return out;
}
