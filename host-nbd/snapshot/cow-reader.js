// @ts-check
// Reads a dm-snapshot persistent COW device (Linux's format: see core-as/snapshot/persistent-store.ts
// for the layout) without the core: for `dmkit snapshot inspect` and `merge`, and as an
// independent check of what the core writes. Refuses anything it does not fully understand.

export const SNAP_MAGIC = 0x70416e53;
const SECTOR = 512;

/**
 * @typedef {{old: number, new: number}} Exception
 * @typedef {{chunkSize: number, valid: boolean, version: number, exceptions: Exception[],
 *   areas: number, nextFree: number, cowSectors: number,
 *   usage: {allocated: number, total: number, metadata: number}}} CowInfo
 * @param {(position: number, length: number) => Promise<Uint8Array>} read bytes of the COW device
 * @param {number} cowBytes size of the COW device
 * @returns {Promise<CowInfo>}
 */
export async function readCow(read, cowBytes) {
  if (cowBytes < SECTOR) throw new Error(`COW device too small (${cowBytes} bytes) to hold a header`);
  const header = new DataView((await read(0, 16)).slice().buffer);
  const magic = header.getUint32(0, true);
  if (magic === 0) throw new Error('not a snapshot yet: the COW header is blank (a new snapshot would be created on first use)');
  if (magic !== SNAP_MAGIC) throw new Error(`not a dm-snapshot COW device: bad magic 0x${magic.toString(16)} (expected 0x${SNAP_MAGIC.toString(16)})`);
  const valid = header.getUint32(4, true) !== 0;
  const version = header.getUint32(8, true);
  const chunkSize = header.getUint32(12, true);
  if (version !== 1) throw new Error(`unsupported COW format version ${version}`);
  if (!chunkSize || chunkSize & (chunkSize - 1)) throw new Error(`corrupt COW header: chunk size ${chunkSize} is not a power of two`);
  const chunkBytes = chunkSize * SECTOR;
  const perArea = chunkBytes / 16;
  const cowSectors = Math.floor(cowBytes / SECTOR);
  /** @type {Exception[]} */
  const exceptions = [];
  let nextFree = 2;
  let area = 0;
  if (valid) {
    for (;;) {
      const chunk = 1 + (perArea + 1) * area;
      if ((chunk + 1) * chunkBytes > cowBytes) throw new Error(`corrupt COW device: metadata area ${area} lies past its end`);
      const bytes = await read(chunk * chunkBytes, chunkBytes);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let full = true;
      for (let i = 0; i < perArea; i++) {
        const oldChunk = Number(dv.getBigUint64(i * 16, true));
        const newChunk = Number(dv.getBigUint64(i * 16 + 8, true));
        if (newChunk === 0) { full = false; break; }
        if ((newChunk + 1) * chunkBytes > cowBytes) throw new Error(`corrupt COW device: exception ${exceptions.length} points at chunk ${newChunk}, past the end`);
        exceptions.push({ old: oldChunk, new: newChunk });
        if (nextFree <= newChunk) nextFree = newChunk + 1;
      }
      if (!full) break;
      area++;
    }
    if (nextFree % (perArea + 1) === 1) nextFree++;
  }
  return {
    chunkSize, valid, version, exceptions, areas: area + 1, nextFree, cowSectors,
    usage: { allocated: nextFree * chunkSize, total: cowSectors, metadata: (area + 2) * chunkSize },
  };
}
