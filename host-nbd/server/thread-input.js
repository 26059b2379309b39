// @ts-check
// A connection's input while its receive thread reads the socket (receive-threads.js). Stream
// bytes wait here until the connection parses them, in order; the requests the thread did go to
// the connection at once (replies may come in any order, and a suspend waits for them to be
// accounted for); the end of the stream is passed on once every byte before it was parsed.
// Pausing (backpressure) stops the thread reading the socket.

/**
 * @typedef {object} ThreadInputSink
 * @property {() => boolean} ready                      the connection takes stream bytes now
 * @property {(bytes: Buffer) => void} parse            stream bytes, in order
 * @property {(records: Float64Array) => void} requests requests the thread did (IO_RECORD numbers each)
 * @property {(reason: string, bad: boolean) => void} ended the stream ended after the bytes parsed
 */

export class ThreadInput {
  /**
   * @param {import('./receive-threads.js').ReceiveThreads} threads
   * @param {number} sockFd @param {Buffer} initial bytes read before the thread started
   * @param {import('./receive-threads.js').NativeWriteMap | null} map
   * @param {{maxRequest: number, structured: boolean, stallMs: number}} opts
   * @param {ThreadInputSink} sink
   */
  constructor(threads, sockFd, initial, map, opts, sink) {
    this.sink = sink;
    /** Stream bytes not parsed yet, in order. */
    this.inbox = /** @type {Buffer[]} */ ([]);
    /** How the stream ended, once the inbox before it is parsed: [reason, isError]. */
    this.end = /** @type {[string, boolean] | null} */ (null);
    this.paused = false;
    this.resumedAt = performance.now();
    this.native = new threads.Receiver(sockFd, initial, map, opts, (items, end) => this.onEvents(items, end));
  }

  /** @param {Array<Buffer | Float64Array>} items @param {[string, boolean] | null} end */
  onEvents(items, end) {
    for (const item of items) {
      if (item instanceof Float64Array) this.sink.requests(item);
      else this.inbox.push(item);
    }
    if (end) this.end = end;
    this.take();
  }

  /** Hands the connection the bytes it takes now; then the end, once nothing is left before it. */
  take() {
    while (this.inbox.length > 0 && this.sink.ready()) this.sink.parse(/** @type {Buffer} */ (this.inbox.shift()));
    if (this.end && this.inbox.length === 0 && this.sink.ready()) {
      const [reason, bad] = this.end;
      this.end = null;
      this.sink.ended(reason, bad);
    }
  }

  pause() {
    this.native.pause();
    this.paused = true;
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.resumedAt = performance.now();
    this.native.resume();
  }

  /** How long a request has been arriving in part while the thread reads (0 while paused). */
  midRequestMs(now = performance.now()) {
    return this.paused ? 0 : Math.min(this.native.midRequestMs(), now - this.resumedAt);
  }

  /** The WRITE with this cookie the connection parsed was answered (the thread may write those bytes by itself again). */
  writeAnswered(cookieHi, cookieLo) { this.native.writeAnswered(cookieHi, cookieLo); }

  /** Stream bytes not parsed yet are dropped (the connection stops reading). */
  drop() {
    this.inbox = [];
    this.end = null;
  }

  /** Stops the thread; returns the requests it did that were not passed on yet. */
  stop() {
    this.drop();
    return this.native.stop();
  }
}
