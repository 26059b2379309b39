// @ts-check
// Large file transfers of one event-loop turn, merged before they go to libuv's thread pool
// (reads) or to the file's write thread (writes; file-backing.js) (the block layer's plugging): neighbours in the file, same file and direction, leave as one
// preadv or pwritev. Each pool job costs a wake-up of a pool thread and of the event loop
// (futexes, an eventfd write, context switches; the woken thread often preempts the one that
// woke it), a fifth of the server's CPU for sequential I/O. nbdcopy moves a GiB as 4096 requests
// of 256 KiB; the core emits a connection's reads in batches of up to 17 adjacent commands, and
// over TCP one turn of the event loop often reads several WRITE payloads (docs/performance.md,
// "NBD server").
//
// The engine releases the plug once per turn (setImmediate), so nothing waits on a later event.
// The core-memory Buffer is taken at release time: the memory may have grown meanwhile.

/** A merged job moves at most this much: larger ones keep one pool thread busy too long. */
export const MERGE_MAX_BYTES = 1 << 20;

/**
 * @typedef {import('./file-backing.js').FileBacking} FileBacking
 * @typedef {import('./file-backing.js').Done} Done
 * @typedef {import('./file-backing.js').Part} Part
 */

export class TransferPlug {
  constructor() {
    /** @type {Array<{file: FileBacking, write: boolean, part: Part}>} in arrival order */
    this.held = [];
  }

  get empty() { return this.held.length === 0; }

  /** @param {FileBacking} file @param {boolean} write @param {number} at @param {number} length @param {number} position @param {Done} done */
  add(file, write, at, length, position, done) {
    this.held.push({ file, write, part: { at, length, position, done } });
  }

  /** Fails everything held (the engine is closing). @param {NodeJS.ErrnoException} error */
  fail(error) {
    const held = this.held;
    this.held = [];
    for (const { part } of held) part.done(error);
  }

  /**
   * Starts everything held: runs of adjacent transfers as one job each, in arrival order.
   * @param {Buffer} mem a Buffer over the whole core memory, current
   */
  release(mem) {
    const held = this.held;
    this.held = [];
    let i = 0;
    while (i < held.length) {
      const { file, write, part } = held[i];
      /** @type {Part[]} */
      const run = [part];
      let end = part.position + part.length, bytes = part.length;
      let j = i + 1;
      for (; j < held.length; j++) {
        const next = held[j];
        if (next.file !== file || next.write !== write || next.part.position !== end) break;
        if (bytes + next.part.length > MERGE_MAX_BYTES) break;
        run.push(next.part);
        end += next.part.length;
        bytes += next.part.length;
      }
      if (write) file.writeRun(mem, run);
      else file.readRun(mem, run);
      i = j;
    }
  }
}
