// @ts-check
// The transient exception store (N) of dm-snap-transient.c: exceptions live in memory only;
// COW chunks are handed out from the start of the device, nothing else is written to it.
export class TransientStore {
  /** @param {import('../blockdev.js').BlockDev} cow @param {number} chunkSize */
  constructor(cow, chunkSize) {
    this.cow = cow;
    this.chunkSize = chunkSize;
    this.overflow = false;
    this.valid = true;
    /** in sectors */
    this.nextFree = 0;
  }

  /** @returns {{errno: string, why: string} | {invalid: boolean}} */
  readMetadata() { return { invalid: false }; }

  prepare() {
    if (this.cow.size() < this.nextFree + this.chunkSize) return null;
    const chunk = this.nextFree / this.chunkSize;
    this.nextFree += this.chunkSize;
    return chunk;
  }

  /** transient_commit_exception: nothing to write, it just succeeds. @param {number} _old @param {number} _new @param {(ok: boolean) => void} done */
  commit(_old, _new, done) { done(true); }

  drop() { this.valid = false; }

  usage() { return [this.nextFree, this.cow.size(), 0]; }

  tableArgs() { return `N ${this.chunkSize}`; }
}
