// @ts-check
// Batches a connection's replies into few socket writes. Headers and small payloads are copied
// into one output buffer; large read payloads are written straight from core memory (their
// buffer is released when the socket is done with it). Everything queued in one turn of the
// event loop leaves in one corked write (writev).
//
// With a file sender (a plain socket and the native addon), large reads of pass-through devices
// never enter memory: their replies are file pieces that a libuv pool thread sends with
// sendfile, together with the replies queued around them. While such a send runs, or before
// it while Node's own writes are still leaving, the socket belongs to one writer only and the
// rest of the queue waits: replies never interleave. A client that stops reading holds a pool
// thread for at most SEND_WAIT_MS; the rest of that send then goes through Node's writes.
import { read as readFile } from 'node:fs';
import {
  writeSimpleReply, writeNoneChunk, writeOffsetDataHeader, writeOffsetHole, writeErrorChunk,
  errorChunkBytes, writeBlockStatusChunk, blockStatusChunkBytes, chunkHeaderBytes,
} from '../protocol/transmission.js';

const OUT_BYTES = 256 * 1024;
/** Payloads up to this size are copied: cheaper than a separate write and its bookkeeping. */
const COPY_MAX = 16 * 1024;
/** How long one native send waits for a client to make room in its socket (see above). */
const SEND_WAIT_MS = 50;

/** @typedef {[fd: number, position: number, length: number]} FilePiece */
/**
 * @typedef {object} FileSender
 * @property {number} fd the socket's descriptor
 * @property {number} min reads of at least this many bytes are sent from files (Transmission)
 * @property {(fd: number, pieces: Array<Buffer | FilePiece>, waitMs: number,
 *   done: (error: (Error & {code?: string}) | null, sent: number) => void) => void} sendPieces
 * @property {(pieces: FilePiece[], done: (error: (Error & {code?: string}) | null) => void) => void} checkReadable
 *   brings the pieces' bytes into the page cache, or fails (a disk's read error) before any reply
 *   bytes are queued: a send from the file cannot fail cleanly once the header is out
 */
/** @typedef {Omit<FileSender, 'fd'>} FileSenderSpec what a server hands each plain connection (file-sender.js) */
/** @typedef {(error: NodeJS.ErrnoException | null) => void} FileDone */
/** @typedef {import('../protocol/transmission.js').Echo} Echo */
/** @typedef {[Buffer, (() => void) | null, FilePiece[]?, FileDone?]} Item bytes and their release; or a header, its file pieces and their done */
/** @typedef {{tryClaimOutput: () => boolean, releaseOutput: () => void}} Gate a receive thread's side of the socket (receive-threads.js) */

export class ReplyWriter {
  /**
   * @param {import('node:stream').Writable} output
   * @param {FileSender | null} [sender]
   */
  constructor(output, sender = null) {
    this.output = output;
    this.sender = sender;
    /** Reads this large go to fileReply() (Infinity: never). */
    this.sendFilesMin = sender && sender.min > 0 ? sender.min : Infinity;
    /** Node writes not done yet; whether a native send runs; file bytes queued or being sent. */
    this.nodeWrites = 0;
    this.sending = false;
    this.fileBytes = 0;
    this.afterNodeWrite = () => {
      if (--this.nodeWrites > 0) return;
      if (this.queue.length > 0) this.soon();
      else if (this.claimed) this.releaseIfIdle();
    };
    /** Replies are packed into `out`; bytes before `start` are queued, [start, fill) not yet. */
    this.out = Buffer.allocUnsafe(OUT_BYTES);
    this.start = 0;
    this.fill = 0;
    /** @type {Item[]} */
    this.queue = [];
    this.scheduled = false;
    this.flushBound = () => this.flush();
    /** @type {Gate | null} who else sends replies (a receive thread) */
    this.gate = null;
    this.claimed = false;
    this.retry = /** @type {NodeJS.Timeout | null} */ (null);
  }

  /**
   * Shares the socket with a receive thread that sends replies of its own (receive-threads.js):
   * it may only while nothing of ours is leaving. The thread starts with the socket ours: it is
   * released once what was written before (the handshake's replies) has left.
   * @param {Gate} gate
   */
  share(gate) {
    this.gate = gate;
    this.claimed = true;
    this.writeToNode(Buffer.alloc(0));
  }

  /** The thread is gone: the socket is ours alone. */
  unshare() {
    this.gate = null;
    this.claimed = false;
  }

  /** Whether we may write now: false while the thread is in a reply (flush() tries again soon). */
  claim() {
    if (!this.gate || this.claimed) return true;
    if (!this.gate.tryClaimOutput()) return false;
    this.claimed = true;
    return true;
  }

  /** Releases the socket to the thread when nothing of ours is queued or leaving. */
  releaseIfIdle() {
    if (!this.claimed || this.nodeWrites > 0 || this.sending || this.queue.length > 0 || this.fill !== this.start) return;
    this.claimed = false;
    /** @type {{releaseOutput: () => void}} */ (this.gate).releaseOutput();
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
    if (this.sending || this.queue.length === 0) return;
    const out = this.output;
    if (out.destroyed || !out.writable) {
      const q = this.queue;
      this.queue = [];
      const gone = Object.assign(new Error('the connection is closed'), { code: 'EPIPE' });
      for (const [, release, pieces, done] of q) { if (pieces) this.fileSent(pieces, done, gone); else release?.(); }
      return;
    }
    if (!this.claim()) {
      this.retry ??= setTimeout(() => { this.retry = null; this.flush(); }, 1);
      return;
    }
    const files = this.queue.findIndex((item) => item[2] !== undefined);
    if (files !== 0) this.writeNode(files < 0 ? this.queue.length : files);
    // File replies wait until Node's writes have left: the native send must not overtake them.
    if (this.queue.length > 0 && this.nodeWrites === 0) this.sendNative();
  }

  /** Hands the first n queued items to Node's socket, in one corked write. */
  writeNode(n) {
    const q = this.queue.splice(0, n);
    const out = this.output;
    if (q.length > 1) out.cork();
    for (const [buf, release] of q) this.writeToNode(buf, release);
    if (q.length > 1) out.uncork();
  }

  /** Sends everything queued, from a file reply on, natively (see the top of the file). */
  sendNative() {
    const items = this.queue;
    this.queue = [];
    /** @type {Array<Buffer | FilePiece>} */
    const pieces = [];
    /** @type {Array<Item | null>} the item each piece of bytes came from */
    const owners = [];
    for (const item of items) {
      if (item[0].length > 0) { pieces.push(item[0]); owners.push(item); }
      if (item[2]) for (const f of item[2]) { pieces.push(f); owners.push(null); }
    }
    this.sending = true;
    const sender = /** @type {FileSender} */ (this.sender);
    try {
      sender.sendPieces(sender.fd, pieces, SEND_WAIT_MS, (error, sent) => {
        if (error) { this.sendDone(items, error); return; }
        this.spill(pieces, owners, sent, (spillError) => this.sendDone(items, spillError));
      });
    } catch {
      // It could not start (no descriptor left to duplicate, say): all of it goes through Node.
      this.spill(pieces, owners, 0, (spillError) => this.sendDone(items, spillError));
    }
  }

  /**
   * What a native send left (the client was slow to read) goes through Node's socket, file
   * pieces read into memory first, in order; then `done`. Bytes with a release (payloads in
   * core memory) are released once Node has written them, not before (their owner item's
   * release moves to that write).
   * @param {Array<Buffer | FilePiece>} pieces @param {Array<Item | null>} owners @param {number} sent
   * @param {(error: NodeJS.ErrnoException | null) => void} done
   */
  spill(pieces, owners, sent, done) {
    let i = 0;
    while (i < pieces.length && sent >= pieceLength(pieces[i])) sent -= pieceLength(pieces[i++]);
    const next = () => {
      if (i === pieces.length) { done(null); return; }
      const owner = owners[i];
      const piece = pieces[i++];
      const skip = sent;
      sent = 0;
      if (Buffer.isBuffer(piece)) {
        const release = owner ? owner[1] : null;
        if (owner) owner[1] = null;
        this.writeSpilled(piece.subarray(skip), release);
        next();
        return;
      }
      const [fd, position, length] = piece;
      const buf = Buffer.allocUnsafe(length - skip);
      const fill = (got) => {
        if (got === buf.length) { this.writeSpilled(buf); next(); return; }
        readFile(fd, buf, got, buf.length - got, position + skip + got, (e, n) => {
          if (e) done(e);
          else if (n === 0) done(Object.assign(new Error('the file ends before the read does (shortened while in use?)'), { code: 'EIO' }));
          else fill(got + n);
        });
      };
      fill(0);
    };
    next();
  }

  /** @param {Buffer} buf @param {(() => void) | null} [release] */
  writeSpilled(buf, release) {
    if (buf.length === 0 || this.output.destroyed) { release?.(); return; }
    this.writeToNode(buf, release);
  }

  /**
   * One write to Node's socket, counted until it is done; release (if any) then. It ignores
   * the write's error: close() reports it.
   * @param {Buffer} buf @param {(() => void) | null} [release]
   */
  writeToNode(buf, release) {
    this.nodeWrites++;
    this.output.write(buf, release ? () => { release(); this.afterNodeWrite(); } : this.afterNodeWrite);
  }

  /**
   * A native send (and its spill) ended: its replies are done, and the queue may move on. A
   * failed send leaves a reply half-sent: the connection cannot go on.
   * @param {Item[]} items @param {NodeJS.ErrnoException | null} error
   */
  sendDone(items, error) {
    this.sending = false;
    for (const [, release, pieces, done] of items) {
      if (pieces) this.fileSent(pieces, done, error);
      else release?.();
    }
    if (error && !this.output.destroyed) this.output.destroy(error);
    if (this.queue.length > 0) this.soon();
    else this.releaseIfIdle();
  }

  /** @param {FilePiece[]} pieces @param {FileDone | undefined} done @param {NodeJS.ErrnoException | null} error */
  fileSent(pieces, done, error) {
    for (const p of pieces) this.fileBytes -= p[2];
    done?.(error);
  }

  /** Bytes queued in the socket or for it (for backpressure). */
  get pending() {
    return this.output.writableLength + this.fill - this.start + this.fileBytes;
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

  // Chunks take `ext`, the request they answer, when headers are extended (protocol/transmission.js).

  /**
   * A read reply whose payload is file pieces (header, then the pieces in order): simple, or one
   * OFFSET_DATA chunk. `done` once it was sent, or with the error that stopped it.
   * @param {boolean} structured @param {number} hi @param {number} lo @param {number} offset
   * @param {FilePiece[]} pieces @param {FileDone} done @param {Echo} [ext]
   */
  fileReply(structured, hi, lo, offset, pieces, done, ext) {
    let length = 0;
    for (const p of pieces) length += p[2];
    const b = this.room(chunkHeaderBytes(ext) + 8);
    this.fill = structured ? writeOffsetDataHeader(b, this.fill, true, hi, lo, offset, length, ext) : writeSimpleReply(b, this.fill, 0, hi, lo);
    // The header leaves with its pieces, and so do the bytes packed before it.
    this.queue.push([b.subarray(this.start, this.fill), null, pieces, done]);
    this.start = this.fill;
    this.fileBytes += length;
  }

  /** @param {Echo} [ext] */
  none(hi, lo, ext) {
    const b = this.room(chunkHeaderBytes(ext));
    this.fill = writeNoneChunk(b, this.fill, hi, lo, ext);
  }

  /** An OFFSET_DATA chunk header; its payload must follow (payload()). @param {Echo} [ext] */
  dataHeader(done, hi, lo, offset, length, ext) {
    const b = this.room(chunkHeaderBytes(ext) + 8);
    this.fill = writeOffsetDataHeader(b, this.fill, done, hi, lo, offset, length, ext);
  }

  /** @param {Echo} [ext] */
  hole(done, hi, lo, offset, length, ext) {
    const b = this.room(chunkHeaderBytes(ext) + 12);
    this.fill = writeOffsetHole(b, this.fill, done, hi, lo, offset, length, ext);
  }

  /** A final error chunk (ERROR, or ERROR_OFFSET when offset is given). @param {number} [offset] @param {Echo} [ext] */
  error(hi, lo, errno, message, offset, ext) {
    const b = this.room(errorChunkBytes(message, offset !== undefined, ext));
    this.fill = writeErrorChunk(b, this.fill, hi, lo, errno, message, offset, ext);
  }

  /** @param {{length:number, flags:number}[]} extents @param {Echo} [ext] */
  blockStatus(done, hi, lo, contextId, extents, ext) {
    const b = this.room(blockStatusChunkBytes(extents.length, ext));
    this.fill = writeBlockStatusChunk(b, this.fill, done, hi, lo, contextId, extents, ext);
  }
}

/** @param {Buffer | FilePiece} piece */
function pieceLength(piece) {
  return Buffer.isBuffer(piece) ? piece.length : piece[2];
}
