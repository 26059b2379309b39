// @ts-check
// Batches a connection's replies into few socket writes. Headers and small payloads are copied
// into one output buffer; large read payloads are written straight from core memory (their
// buffer is released when the socket is done with it). Everything queued in one turn of the
// event loop leaves in one corked write (writev).
import {
  writeSimpleReply, writeNoneChunk, writeOffsetDataHeader, writeOffsetHole, writeErrorChunk,
  errorChunkBytes, writeBlockStatusChunk, blockStatusChunkBytes,
} from '../protocol/transmission.js';

const OUT_BYTES = 256 * 1024;
/** Payloads up to this size are copied: cheaper than a separate write and its bookkeeping. */
const COPY_MAX = 16 * 1024;

export class ReplyWriter {
  /** @param {import('node:stream').Writable} output */
  constructor(output) {
    this.output = output;
    /** Replies are packed into `out`; bytes before `start` are queued, [start, fill) not yet. */
    this.out = Buffer.allocUnsafe(OUT_BYTES);
    this.start = 0;
    this.fill = 0;
    /** @type {Array<[Buffer, (() => void) | null]>} */
    this.queue = [];
    this.scheduled = false;
    this.flushBound = () => this.flush();
  }

  /**
   * Room for n more bytes in the output buffer. A full buffer is left to the queued slices
   * that point into it (they keep it alive until written) and a new one is started.
   * @returns {Buffer}
   */
  room(n) {
    if (this.fill + n > this.out.length) {
      this.cut();
      this.out = Buffer.allocUnsafe(Math.max(OUT_BYTES, n));
      this.start = this.fill = 0;
    }
    this.soon();
    return this.out;
  }

  /** Queues the bytes packed since the last cut (in order with payloads queued after them). */
  cut() {
    if (this.fill === this.start) return;
    this.queue.push([this.out.subarray(this.start, this.fill), null]);
    this.start = this.fill;
  }

  soon() {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.flushBound);
  }

  flush() {
    this.scheduled = false;
    this.cut();
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    const out = this.output;
    if (out.destroyed || !out.writable) {
      for (const [, done] of q) done?.();
      return;
    }
    if (q.length > 1) out.cork();
    for (const [buf, done] of q) out.write(buf, done ?? undefined); // done ignores the write's error: close() reports it
    if (q.length > 1) out.uncork();
  }

  /** Bytes queued in the socket (for backpressure). */
  get pending() {
    return this.output.writableLength + this.fill - this.start;
  }

  // ---- replies

  simple(error, hi, lo) {
    const b = this.room(16);
    this.fill = writeSimpleReply(b, this.fill, error, hi, lo);
  }

  /**
   * Payload bytes from core memory. `release` is called once they are no longer needed.
   * @param {Buffer} mem @param {number} start @param {number} length @param {() => void} release
   */
  payload(mem, start, length, release) {
    if (length <= COPY_MAX) {
      const b = this.room(length);
      mem.copy(b, this.fill, start, start + length);
      this.fill += length;
      release();
      return;
    }
    this.cut();
    this.soon();
    this.queue.push([mem.subarray(start, start + length), release]);
  }

  none(hi, lo) {
    const b = this.room(20);
    this.fill = writeNoneChunk(b, this.fill, hi, lo);
  }

  /** An OFFSET_DATA chunk header; its payload must follow (payload()). */
  dataHeader(done, hi, lo, offset, length) {
    const b = this.room(28);
    this.fill = writeOffsetDataHeader(b, this.fill, done, hi, lo, offset, length);
  }

  hole(done, hi, lo, offset, length) {
    const b = this.room(32);
    this.fill = writeOffsetHole(b, this.fill, done, hi, lo, offset, length);
  }

  /** A final error chunk (ERROR, or ERROR_OFFSET when offset is given). */
  error(hi, lo, errno, message, offset) {
    const b = this.room(errorChunkBytes(message, offset !== undefined));
    this.fill = writeErrorChunk(b, this.fill, hi, lo, errno, message, offset);
  }

  /** @param {{length:number, flags:number}[]} extents */
  blockStatus(done, hi, lo, contextId, extents) {
    const b = this.room(blockStatusChunkBytes(extents.length));
    this.fill = writeBlockStatusChunk(b, this.fill, done, hi, lo, contextId, extents);
  }
}
