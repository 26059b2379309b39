// @ts-check
// Sector-range locks for read-modify-write. An unaligned write reads its edge sectors, patches
// them and writes them back: no other write may touch those sectors in between. So a
// read-modify-write takes its range exclusively, while aligned writes take theirs shared: they
// wait only for read-modify-writes they overlap, never for each other.
//
// Waiters are served in arrival order among overlapping ranges (a stream of aligned writes
// cannot starve a read-modify-write). The common case, no read-modify-write anywhere near, is
// one Set insertion per write.

/** @typedef {{start:number, end:number, exclusive:boolean, grant: (release: () => void) => void}} Waiter */
/** @typedef {{start:number, end:number, exclusive:boolean}} Held */

export class RangeLocks {
  constructor() {
    /** @type {Set<Held>} */
    this.held = new Set();
    /** @type {Waiter[]} */
    this.waiting = [];
    this.exclusiveHeld = 0;
  }

  /**
   * Calls grant(release) once [start, end) may be used, possibly before returning.
   * @param {number} start @param {number} end sectors @param {boolean} exclusive
   * @param {(release: () => void) => void} grant
   */
  acquire(start, end, exclusive, grant) {
    const w = { start, end, exclusive, grant };
    const free = this.held.size === 0 || (!exclusive && this.exclusiveHeld === 0) || !this.blockedByHeld(w);
    if (free && (this.waiting.length === 0 || !this.waiting.some((e) => RangeLocks.conflict(w, e)))) this.take(w);
    else this.waiting.push(w);
  }

  /** The same as a promise of the release function. @returns {Promise<() => void>} */
  lock(start, end, exclusive) {
    return new Promise((resolve) => this.acquire(start, end, exclusive, resolve));
  }

  /** @param {Waiter} w */
  take(w) {
    w.grant(this.hold(w));
  }

  /** Marks w's range held and returns its release function. @param {Waiter} w */
  hold(w) {
    /** @type {Held} */
    const h = { start: w.start, end: w.end, exclusive: w.exclusive };
    this.held.add(h);
    if (h.exclusive) this.exclusiveHeld++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held.delete(h);
      if (h.exclusive) this.exclusiveHeld--;
      if (this.waiting.length > 0) this.wake();
    };
  }

  /** @param {{start:number, end:number, exclusive:boolean}} w @param {{start:number, end:number, exclusive:boolean}} o */
  static conflict(w, o) {
    return w.start < o.end && o.start < w.end && (w.exclusive || o.exclusive);
  }

  blockedByHeld(w) {
    for (const h of this.held) if (RangeLocks.conflict(w, h)) return true;
    return false;
  }

  /**
   * Grants every waiter that conflicts neither with a held range nor with an earlier waiter.
   * All ranges are marked held before any grant runs: a grant may release at once and re-enter.
   */
  wake() {
    const still = [];
    const granted = [];
    for (const w of this.waiting) {
      if (this.blockedByHeld(w) || still.some((e) => RangeLocks.conflict(w, e))) still.push(w);
      else granted.push([w, this.hold(w)]);
    }
    this.waiting = still;
    for (const [w, release] of granted) w.grant(release);
  }
}
