// @ts-check
// Which chunks of a `snapshot-origin` device the receive threads may write without the core.
//
// An origin write must first let every snapshot copy the chunks it overwrites (the core's
// originWrite). Once every snapshot has copied a chunk, writes there go straight on, exactly as
// a linear target's would, until a snapshot of the origin resumes (it may be a new one that has
// copied nothing). So the export publishes its origin segments to the threads as guarded linear
// extents with one mark per chunk, all clear; after each write the core completed there, the
// event loop asks the core (originCopied) about the chunks under it and marks those copied. A
// thread writes only where every chunk under the write is marked (write_map.h), and anything
// else goes to the core as before. The registry withdraws these publications and waits for the
// threads' writes before any resume, and publishes them afresh after it (marks clear again).
//
// Chunks are the smallest chunk of the origin's snapshots. Any size would be correct (the core
// answers for every snapshot chunk under the range asked about); that one marks no more than a
// copy covers, and is doubled only to keep the marks of a huge device within MAX_MARKS bits.
// With no snapshot at all the segments are published unguarded.

const SECTOR = 512;
/** At most this many marks per device (16 MiB of bits, untouched pages cost nothing). */
export const MAX_MARKS = 2 ** 27;

export class OriginMarks {
  /**
   * @param {import('../../core-as/js/dmcore.js').DmCore} core
   * @param {number} id the mapped device
   * @param {number} chunkSectors
   * @param {import('../server/receive-threads.js').NativeWriteMap} map
   * @param {number} deviceBytes
   */
  constructor(core, id, chunkSectors, map, deviceBytes) {
    this.core = core;
    this.id = id;
    this.chunk = chunkSectors;
    this.map = map;
    this.deviceBytes = deviceBytes;
  }

  /**
   * Marks for the `snapshot-origin` segments of device `id` ({start, length} in sectors, from
   * the live table), or null when no snapshot watches any of them (nothing to guard).
   * @param {import('../../core-as/js/dmcore.js').DmCore} core @param {number} id
   * @param {Array<{start: number}>} originSegs @param {import('../server/receive-threads.js').NativeWriteMap} map
   * @param {number} deviceBytes
   */
  static of(core, id, originSegs, map, deviceBytes) {
    let chunk = 0;
    for (const seg of originSegs) {
      const c = core.originChunk(id, seg.start) ?? 0;
      if (c > 0 && (chunk === 0 || c < chunk)) chunk = c;
    }
    if (chunk === 0) return null;
    while (deviceBytes / (chunk * SECTOR) > MAX_MARKS) chunk *= 2;
    return new OriginMarks(core, id, chunk, map, deviceBytes);
  }

  /** What publish() takes with guarded extents: [chunk bytes, device bytes]. */
  publication() { return [this.chunk * SECTOR, this.deviceBytes]; }

  /**
   * A write of [first, first + count) sectors went through the core and succeeded: marks each
   * chunk under it that the core says needs no copy any more.
   * @param {number} first @param {number} count
   */
  wrote(first, count) {
    const c0 = Math.floor(first / this.chunk), c1 = Math.floor((first + count - 1) / this.chunk);
    for (let c = c0; c <= c1; c++) {
      if (this.core.originCopied(this.id, c * this.chunk, this.chunk)) this.map.mark(c, 1);
    }
  }
}
