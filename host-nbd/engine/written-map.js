// @ts-check
// Which parts of a file we have written since opening it, in 1 MiB granules: without the addon's
// lseek(SEEK_DATA) (file-holes.js), what keeps never-touched parts of a fresh sparse image
// reported as zeroes (block status, fast zero). FileBacking.written holds one.

export class WrittenMap {
  static GRANULE = 1 << 20;

  /** @param {number} bytes */
  constructor(bytes) {
    this.bits = new Uint8Array(Math.ceil(bytes / WrittenMap.GRANULE / 8) + 1);
    this.empty = true;
  }

  /** This map for a file of `bytes` (what is marked stays marked). @param {number} bytes */
  grownTo(bytes) {
    const bigger = new WrittenMap(bytes);
    if (bigger.bits.length < this.bits.length) return this;
    bigger.bits.set(this.bits);
    bigger.empty = this.empty;
    return bigger;
  }

  mark(position, length) {
    if (length <= 0) return;
    const first = Math.floor(position / WrittenMap.GRANULE);
    const last = Math.floor((position + length - 1) / WrittenMap.GRANULE);
    this.empty = false;
    for (let g = first; g <= last; g++) this.bits[g >> 3] |= 1 << (g & 7);
  }

  /**
   * [position, position + length) cut where granules change between written and not.
   * @returns {{length: number, written: boolean}[]}
   */
  runs(position, length) {
    if (this.empty || length <= 0) return [{ length, written: false }];
    const G = WrittenMap.GRANULE;
    const end = position + length;
    const out = [];
    let at = position;
    while (at < end) {
      const g = Math.floor(at / G);
      const written = (this.bits[g >> 3] & (1 << (g & 7))) !== 0;
      const next = Math.min(end, (g + 1) * G);
      const last = out[out.length - 1];
      if (last && last.written === written) last.length += next - at;
      else out.push({ length: next - at, written });
      at = next;
    }
    return out;
  }

}
