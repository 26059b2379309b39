// The data-pattern PRNG of docs/vectors.md (mulberry32), so hosts and tests fill buffers with
// the same bytes in every language: each 32-bit word is stored little-endian.

export function patternFill(buf: usize, len: usize, seed: u32): void {
  let s = seed;
  let i: usize = 0;
  while (i < len) {
    s += 0x6D2B79F5;
    let t = s;
    t = (t ^ (t >>> 15)) * (t | 1);
    t ^= t + (t ^ (t >>> 7)) * (t | 61);
    const word = t ^ (t >>> 14);
    if (len - i >= 4) {
      store<u32>(buf + i, word);
      i += 4;
    } else {
      for (let b: u32 = 0; i < len; b += 8, i++) store<u8>(buf + i, <u8>(word >>> b));
    }
  }
}
