// @ts-check
// Sector-range locks for read-modify-write: an unaligned write reads its edge sectors, patches
// them and writes them back, so no other write may touch those sectors in between.
// Aligned writes only wait for read-modify-writes they overlap; RMWs wait for every overlap.

export class RangeLocks {
  constructor() {
    /** @type {Set<{start:number, end:number, rmw:boolean, done:Promise<void>}>} */
    this.active = new Set();
  }

  /**
   * Waits until [start, end) may be written, then holds it; call the returned release when done.
   * @param {number} start @param {number} end sectors @param {boolean} rmw
   */
  async acquire(start, end, rmw) {
    for (;;) {
      const blocker = [...this.active].find((e) => e.start < end && start < e.end && (rmw || e.rmw));
      if (!blocker) break;
      await blocker.done;
    }
    let release = () => {};
    const entry = { start, end, rmw, done: new Promise((r) => { release = /** @type {() => void} */ (r); }) };
    this.active.add(entry);
    return () => { this.active.delete(entry); release(); };
  }
}
