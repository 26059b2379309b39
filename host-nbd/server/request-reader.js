// @ts-check
// Cuts the client's byte stream into requests. A WRITE's payload is copied from the socket
// chunk straight into the core buffer the sink allocated for it (or skipped, when the request
// is refused). The reader stops between requests whenever the sink says so (memory or socket
// backpressure, shutdown) and reports where, so no byte is lost or parsed twice.
import { readRequest, readExtendedRequest } from '../protocol/transmission.js';
import { REQUEST_BYTES, EXTENDED_REQUEST_BYTES } from '../protocol/constants.js';

/** What to do with the payload that follows a request header. */
export const PAYLOAD = Object.freeze({ NONE: 0, STORE: 1, SKIP: 2 });

export class NbdRequest {
  constructor() {
    this.magic = 0;
    this.flags = 0;
    this.type = 0;
    this.cookieHi = 0;
    this.cookieLo = 0;
    /** The offset as sent (echoed in extended replies), and as a number. */
    this.offsetHi = 0;
    this.offsetLo = 0;
    this.offset = 0;
    this.length = 0;
    /** Core buffer for a WRITE payload (STORE). */
    this.ptr = 0;
    /** Set when the request was refused at header time: replied once its payload is skipped. */
    this.refusal = /** @type {import('../protocol/errors.js').NbdError | null} */ (null);
    /** A WRITE a receive thread did by itself (receive-threads.js), answered here. */
    this.viaThread = false;
  }
}

/**
 * @typedef {object} RequestSink
 * @property {(req: NbdRequest) => number} header   a PAYLOAD value (STORE: req.ptr is set)
 * @property {(req: NbdRequest) => void} payloadDone a stored payload is complete
 * @property {(req: NbdRequest) => void} skipped     a skipped payload is consumed
 * @property {(req: NbdRequest) => void} badMagic    the stream is out of sync: close
 * @property {() => boolean} stopped                 stop before the next request header
 * @property {() => Buffer} mem                      a Buffer over core memory (fresh after growth)
 */

const HEADER = 0, STORE = 1, SKIP = 2, DEAD = 3;

export class RequestReader {
  /** @param {RequestSink} sink @param {boolean} [extended] 32-byte headers (NBD_OPT_EXTENDED_HEADERS) */
  constructor(sink, extended = false) {
    this.sink = sink;
    this.headerBytes = extended ? EXTENDED_REQUEST_BYTES : REQUEST_BYTES;
    this.decode = extended ? readExtendedRequest : readRequest;
    this.state = HEADER;
    this.head = Buffer.alloc(this.headerBytes);
    this.headFill = 0;
    /** @type {NbdRequest | null} the request whose payload is being read */
    this.req = null;
    this.got = 0;
    /** Payload length of the last request whose payload was stored (0: it had none). */
    this.lastStored = 0;
    /** Stored payload bytes read straight into core memory, and copied there from a chunk. */
    this.placedBytes = 0;
    this.copiedBytes = 0;
  }

  /** True while a payload is being stored (its buffer must be freed if the client goes). */
  get partial() { return this.state === STORE ? this.req : null; }

  /** True while a request is half-read: part of its header, or of its payload. */
  get midRequest() { return this.state === STORE || this.state === SKIP || this.headFill > 0; }

  /** The refused request whose payload is being skipped (it still counts as in flight). */
  get skipping() { return this.state === SKIP ? this.req : null; }

  /**
   * Where the next socket read may put its bytes directly: the rest of a WRITE payload being
   * stored, when at least `minBytes` of it are still to come (a view of core memory, at most
   * `maxBytes`); else null.
   * @param {Buffer} mem @returns {Buffer | null}
   */
  directTarget(mem, minBytes, maxBytes) {
    if (this.state !== STORE) return null;
    const req = /** @type {NbdRequest} */ (this.req);
    const left = req.length - this.got;
    if (left < minBytes) return null;
    const at = req.ptr + this.got;
    return mem.subarray(at, at + Math.min(left, maxBytes));
  }

  /**
   * How many bytes the next socket read should take so that it ends with the next request
   * header, else 0 (no reason to stop there). That is while or after storing a payload of at
   * least `minBytes`: a client writing large blocks likely sends another, and a read that ends
   * with its header lets that payload go straight into core memory (directTarget) instead of
   * through a copy. Call it when directTarget() gave null.
   */
  headerTarget(minBytes) {
    if (this.lastStored < minBytes) return 0;
    if (this.state === HEADER) return this.headerBytes - this.headFill;
    if (this.state === STORE) return /** @type {NbdRequest} */ (this.req).length - this.got + this.headerBytes;
    return 0;
  }

  /** n payload bytes arrived in place, in the buffer directTarget() gave. */
  stored(n) {
    if (this.state !== STORE) return; // the reader was killed meanwhile: nobody wants them
    const req = /** @type {NbdRequest} */ (this.req);
    this.got += n;
    this.placedBytes += n;
    if (this.got === req.length) {
      this.state = HEADER;
      this.req = null;
      this.sink.payloadDone(req);
    }
  }

  /**
   * Consumes chunk[at...]. Returns where it stopped: chunk.length, or earlier when the sink
   * asked to stop (call again with the rest) or the stream went bad.
   * @param {Buffer} chunk @param {number} at
   */
  feed(chunk, at) {
    const end = chunk.length;
    while (at < end) {
      if (this.state === HEADER) {
        if (this.headFill === 0 && this.sink.stopped()) return at;
        if (this.headFill === 0 && end - at >= this.headerBytes) {
          this.onHeader(chunk, at);
          at += this.headerBytes;
        } else {
          const n = Math.min(this.headerBytes - this.headFill, end - at);
          chunk.copy(this.head, this.headFill, at, at + n);
          this.headFill += n;
          at += n;
          if (this.headFill === this.headerBytes) {
            this.headFill = 0;
            this.onHeader(this.head, 0);
          }
        }
      } else if (this.state === STORE) {
        const req = /** @type {NbdRequest} */ (this.req);
        const n = Math.min(req.length - this.got, end - at);
        chunk.copy(this.sink.mem(), req.ptr + this.got, at, at + n);
        this.got += n;
        this.copiedBytes += n;
        at += n;
        if (this.got === req.length) {
          this.state = HEADER;
          this.req = null;
          this.sink.payloadDone(req);
        }
      } else if (this.state === SKIP) {
        const req = /** @type {NbdRequest} */ (this.req);
        const n = Math.min(req.length - this.got, end - at);
        this.got += n;
        at += n;
        if (this.got === req.length) {
          this.state = HEADER;
          this.req = null;
          this.sink.skipped(req);
        }
      } else {
        return end; // DEAD: ignore whatever else arrives
      }
    }
    return at;
  }

  onHeader(b, at) {
    const req = new NbdRequest();
    if (!this.decode(b, at, req)) {
      this.state = DEAD;
      this.sink.badMagic(req);
      return;
    }
    const plan = this.sink.header(req);
    this.lastStored = plan === PAYLOAD.STORE ? req.length : 0;
    if (plan === PAYLOAD.NONE || req.length === 0) {
      if (plan === PAYLOAD.STORE) this.sink.payloadDone(req);
      else if (plan === PAYLOAD.SKIP) this.sink.skipped(req);
      return;
    }
    this.req = req;
    this.got = 0;
    this.state = plan === PAYLOAD.STORE ? STORE : SKIP;
  }

  /** Stops parsing for good (the connection is closing). */
  kill() {
    this.state = DEAD;
  }
}
