// @ts-check
// The transmission phase of one connection: each request is checked the way the spec asks
// (unknown command or flag: EINVAL; past the end: EINVAL, or ENOSPC for writes; writing a
// read-only export: EPERM; larger than the maximum request: EINVAL), run on the export, and
// answered as soon as it completes, in whatever order requests finish.
//
// Replies are simple unless structured replies were negotiated; then READ answers with
// OFFSET_DATA / OFFSET_HOLE chunks (read-replies.js), errors carry a message in an ERROR /
// ERROR_OFFSET chunk, and BLOCK_STATUS answers base:allocation. Successful replies to other
// commands stay simple, as the spec allows. With extended headers every reply is a chunk with a
// 32-byte header that echoes the request's offset, a payload follows a WRITE or a request that
// carries NBD_CMD_FLAG_PAYLOAD_LEN, and lengths are 64-bit: TRIM, WRITE_ZEROES and BLOCK_STATUS
// may cover any part of the export (READ, WRITE and CACHE stay within the maximum request size).
import { CMD, CMD_NAMES, CMD_FLAG, NBD_ERR, TFLAG } from '../protocol/constants.js';
import { NbdError, nbdErrorName, nbdErrnoOf } from '../protocol/errors.js';
import { errnoName } from '../../core-as/js/dmcore.js';
import { PAYLOAD, RequestReader, NbdRequest } from './request-reader.js';
import { IO, IO_RECORD, THREAD_CANCELED } from './receive-threads.js';
import { replyToRead } from './read-replies.js';

/** Commands that change data: a receive thread hands over later writes that overlap one until it is answered. */
const CHANGES_DATA = new Set([CMD.WRITE, CMD.TRIM, CMD.WRITE_ZEROES]);
const MAX_EXTENTS = 4096;

/** Command flags each command accepts (before checking what the export advertised). */
const ALLOWED_FLAGS = [
  /* READ */ CMD_FLAG.FUA | CMD_FLAG.DF,
  /* WRITE */ CMD_FLAG.FUA,
  /* DISC */ CMD_FLAG.FUA,
  /* FLUSH */ CMD_FLAG.FUA,
  /* TRIM */ CMD_FLAG.FUA,
  /* CACHE */ CMD_FLAG.FUA,
  /* WRITE_ZEROES */ CMD_FLAG.FUA | CMD_FLAG.NO_HOLE | CMD_FLAG.FAST_ZERO,
  /* BLOCK_STATUS */ CMD_FLAG.FUA | CMD_FLAG.REQ_ONE,
];

/**
 * @typedef {object} TransmissionOptions
 * @property {import('../engine/device-export.js').DeviceExport} exp
 * @property {number} flags transmission flags sent to the client
 * @property {boolean} structured
 * @property {boolean} [extended] extended headers (structured is true with them)
 * @property {{id: number, name: string}[]} contexts selected metadata contexts
 * @property {import('./reply-writer.js').ReplyWriter} writer
 * @property {import('./limits.js').Limits} limits
 * @property {{held: number}} memory          bytes held by every connection of the server
 * @property {(req: NbdRequest, error: NbdError) => void} onError  logs a refused or failed request
 * @property {(reason: string) => void} onFatal   the stream cannot go on: close the connection
 * @property {() => void} onReady                 input may flow again (memory or socket drained)
 * @property {() => void} onDisconnect            NBD_CMD_DISC received
 * @property {() => void} onIdle                  closing, and the last request was answered
 * @property {(req: NbdRequest) => void} [onWriteAnswered] a WRITE, TRIM or WRITE_ZEROES parsed here was answered (receive-threads.js)
 */

export class Transmission {
  /** @param {TransmissionOptions} o */
  constructor(o) {
    this.exp = o.exp;
    this.flags = o.flags;
    this.structured = o.structured;
    this.extended = o.extended ?? false;
    this.contexts = o.contexts;
    this.writer = o.writer;
    this.limits = o.limits;
    this.o = o;
    this.reader = new RequestReader(this, this.extended);
    /** Requests started and not yet answered. */
    this.inflight = 0;
    /** Payload and read bytes held for this connection (and in o.memory, for the server). */
    this.held = 0;
    /** Requests holding some of them. */
    this.holding = 0;
    this.memory = o.memory;
    this.requests = 0;
    this.errors = 0;
    /** No further requests are read: DISC, shutdown, or the client went away. */
    this.closing = false;
    this.canFua = (this.flags & TFLAG.SEND_FUA) !== 0;
    this.canFastZero = (this.flags & TFLAG.SEND_FAST_ZERO) !== 0;
    this.canDf = (this.flags & TFLAG.SEND_DF) !== 0;
  }

  // ---- RequestSink (see request-reader.js)

  stopped() {
    const { held, limits } = this;
    if (this.closing || held > limits.connectionMemory || this.writer.pending > limits.connectionMemory) return true;
    return held > limits.pipelineBytes && this.holding > 1;
  }

  mem() { return this.exp.engine.mem(); }

  badMagic(req) {
    this.closing = true;
    this.o.onFatal(`bad request magic 0x${req.magic.toString(16)} (the stream is out of sync)`);
  }

  /** @param {NbdRequest} req */
  header(req) {
    // A WRITE carries its payload with extended headers too, flag or not: the spec asks writes to
    // set PAYLOAD_LEN, but qemu's client does not (and qemu's server takes them all the same).
    const payload = req.type === CMD.WRITE || (this.extended && (req.flags & CMD_FLAG.PAYLOAD_LEN) !== 0);
    if (this.extended && payload && req.length > this.limits.maxRequest) {
      // Skipping it could take forever (64-bit lengths): the spec asks to disconnect instead.
      this.closing = true;
      this.o.onFatal(`${CMD_NAMES[req.type] ?? `command ${req.type}`}: a payload of ${req.length} bytes is larger than the maximum request size ${this.limits.maxRequest}`);
      return PAYLOAD.NONE;
    }
    this.requests++;
    this.inflight++; // every request is answered exactly once, which counts it down
    const refusal = this.check(req);
    if (payload && req.type !== CMD.WRITE) {
      // A payload this command cannot take: read and dropped, then refused (check() said why).
      req.refusal = refusal ?? new NbdError(NBD_ERR.EINVAL, `${CMD_NAMES[req.type]}: takes no payload`);
      return PAYLOAD.SKIP;
    }
    if (payload) {
      if (refusal) { req.refusal = refusal; return PAYLOAD.SKIP; }
      try {
        req.ptr = this.exp.allocBuffer(req.length);
      } catch (e) {
        req.refusal = /** @type {NbdError} */ (e);
        return PAYLOAD.SKIP;
      }
      this.hold(req.length);
      return PAYLOAD.STORE;
    }
    this.exp.started++;
    if (refusal) this.fail(req, refusal);
    else this.dispatch(req);
    return PAYLOAD.NONE;
  }

  /** @param {NbdRequest} req */
  payloadDone(req) {
    this.exp.started++;
    this.dispatch(req);
  }

  /** @param {NbdRequest} req */
  skipped(req) {
    this.exp.started++;
    this.fail(req, /** @type {NbdError} */ (req.refusal));
  }

  // ---- checks

  /** @param {NbdRequest} req @returns {NbdError | null} */
  check(req) {
    const { type, flags, offset, length } = req;
    const name = CMD_NAMES[type];
    if (name === undefined) return new NbdError(NBD_ERR.EINVAL, `unknown command ${type}`);
    let allowed = ALLOWED_FLAGS[type];
    if (this.extended && type === CMD.WRITE) allowed |= CMD_FLAG.PAYLOAD_LEN;
    if (!this.canFua) allowed &= ~CMD_FLAG.FUA;
    if (!this.canDf) allowed &= ~CMD_FLAG.DF;
    if (!this.canFastZero) allowed &= ~CMD_FLAG.FAST_ZERO;
    if (flags & ~allowed) return new NbdError(NBD_ERR.EINVAL, `${name}: flags 0x${flags.toString(16)} are not valid for this command`);
    if (type === CMD.DISC) return null;
    if (type === CMD.FLUSH) {
      return offset !== 0 || length !== 0 ? new NbdError(NBD_ERR.EINVAL, 'FLUSH: offset and length must be zero') : null;
    }
    const writes = type === CMD.WRITE || type === CMD.TRIM || type === CMD.WRITE_ZEROES;
    if (writes && this.exp.readOnly) return new NbdError(NBD_ERR.EPERM, `${name}: the export is read-only`);
    const sized = type === CMD.READ || type === CMD.WRITE || type === CMD.CACHE;
    if (sized && length > this.limits.maxRequest) {
      return new NbdError(NBD_ERR.EINVAL, `${name}: length ${length} is larger than the maximum request size ${this.limits.maxRequest}`);
    }
    if ((type === CMD.READ || type === CMD.WRITE) && this.memory.held + length > this.limits.serverMemory) {
      return new NbdError(NBD_ERR.ENOMEM, `${name}: the server holds ${this.memory.held} bytes for its clients already (limit ${this.limits.serverMemory}); try again later`);
    }
    if (type === CMD.BLOCK_STATUS) {
      if (this.contexts.length === 0) return new NbdError(NBD_ERR.EINVAL, 'BLOCK_STATUS: no metadata context was negotiated');
      if (length === 0) return new NbdError(NBD_ERR.EINVAL, 'BLOCK_STATUS: length must not be zero');
    }
    const size = this.exp.size();
    if (offset > size || length > size - offset) {
      const errno = type === CMD.WRITE || type === CMD.WRITE_ZEROES ? NBD_ERR.ENOSPC : NBD_ERR.EINVAL;
      return new NbdError(errno, `${name}: ${length} bytes at offset ${offset} run past the end of the export (${size} bytes)`);
    }
    return null;
  }

  // ---- running requests

  /** @param {NbdRequest} req */
  dispatch(req) {
    const exp = this.exp;
    const fua = (req.flags & CMD_FLAG.FUA) !== 0;
    const reply = (/** @type {NbdError | null} */ e) => (e ? this.fail(req, e) : this.ok(req));
    switch (req.type) {
      case CMD.READ: replyToRead(this, req); break;
      case CMD.WRITE:
        exp.write(req.offset, req.length, req.ptr, fua, (e) => { this.release(req.length); reply(e); });
        break;
      case CMD.FLUSH: exp.flush(reply); break;
      case CMD.TRIM: exp.trim(req.offset, req.length, fua, reply); break;
      case CMD.WRITE_ZEROES:
        exp.writeZeroes(req.offset, req.length, {
          fua, noHole: (req.flags & CMD_FLAG.NO_HOLE) !== 0, fastZero: (req.flags & CMD_FLAG.FAST_ZERO) !== 0,
        }, reply);
        break;
      case CMD.CACHE: exp.cache(req.offset, req.length, reply); break;
      case CMD.BLOCK_STATUS: this.blockStatus(req); break;
      case CMD.DISC:
        this.closing = true;
        this.o.onDisconnect();
        this.answered(); // DISC has no reply
        break;
      default: reply(new NbdError(NBD_ERR.EINVAL, `unknown command ${req.type}`));
    }
  }

  /** @param {NbdRequest} req */
  blockStatus(req) {
    const reqOne = (req.flags & CMD_FLAG.REQ_ONE) !== 0;
    let extents;
    try {
      extents = this.exp.blockStatus(req.offset, req.length, reqOne ? 1 : MAX_EXTENTS);
    } catch (e) {
      this.fail(req, new NbdError(NBD_ERR.EIO, `BLOCK_STATUS failed: ${e instanceof Error ? e.message : e}`));
      return;
    }
    if (reqOne && extents[0].length > req.length) extents = [{ length: req.length, flags: extents[0].flags }];
    this.answered();
    this.contexts.forEach((c, i) => {
      this.writer.blockStatus(i === this.contexts.length - 1, req.cookieHi, req.cookieLo, c.id, extents, this.echo(req));
    });
  }

  /**
   * Requests a receive thread did by itself (receive-threads.js; IO_RECORD numbers each):
   * counted, and the writes it could not answer answered. The export has accounted for them
   * already (DeviceExport.threadIoDone).
   * @param {Float64Array} records
   */
  threadRequests(records) {
    for (let i = 0; i < records.length; i += IO_RECORD) {
      this.requests++;
      this.inflight++;
      this.exp.started++;
      const errno = records[i + IO.ERRNO];
      if (records[i + IO.REPLIED]) {
        this.answered();
        if (errno !== 0) this.errors++; // a reply that broke off: the connection ends
        continue;
      }
      const req = new NbdRequest(); // a WRITE: the thread answers every READ it takes
      req.type = CMD.WRITE;
      req.cookieHi = records[i + IO.COOKIE_HI];
      req.cookieLo = records[i + IO.COOKIE_LO];
      req.length = records[i + IO.LENGTH];
      req.offset = records[i + IO.OFFSET];
      req.viaThread = true;
      if (errno === THREAD_CANCELED) this.answered(); // given up as the connection closes: no reply, no failure
      else if (errno === 0) this.ok(req);
      else this.fail(req, new NbdError(nbdErrnoOf(errno), `write of ${req.length} bytes at ${req.offset} failed: ${errnoName(errno)}`));
    }
  }

  /** @param {NbdRequest} req */
  ok(req) {
    if (CHANGES_DATA.has(req.type) && !req.viaThread) this.o.onWriteAnswered?.(req);
    this.answered();
    if (this.extended) this.writer.none(req.cookieHi, req.cookieLo, req); // no simple replies then
    else this.writer.simple(0, req.cookieHi, req.cookieLo);
  }

  /** What extended reply headers echo (the request), or undefined without extended headers. @param {NbdRequest} req */
  echo(req) {
    return this.extended ? req : undefined;
  }

  /**
   * Answers a refused or failed request. `offset` marks where a READ failed (ERROR_OFFSET).
   * @param {NbdRequest} req @param {NbdError} e @param {number} [offset]
   */
  fail(req, e, offset) {
    if (CHANGES_DATA.has(req.type) && !req.viaThread) this.o.onWriteAnswered?.(req);
    this.answered();
    this.errors++;
    this.o.onError(req, e);
    if (this.structured) this.writer.error(req.cookieHi, req.cookieLo, e.errno, e.message, offset, this.echo(req));
    else this.writer.simple(e.errno, req.cookieHi, req.cookieLo);
  }

  /**
   * Stops reading requests for good. A WRITE whose payload had only partly arrived will never
   * run: its buffer is freed and it stops counting as in flight (nothing of it was written).
   */
  stopReading() {
    this.closing = true;
    const partial = this.reader.partial;
    // A refused WRITE whose payload was being skipped gets no reply now: stop counting it too,
    // or the connection would wait for it forever (half-open, never closed).
    const skipping = this.reader.skipping;
    this.reader.kill();
    if (partial) {
      if (partial.ptr) this.exp.free(partial.ptr);
      this.held -= partial.length;
      this.holding--;
      this.memory.held -= partial.length;
      this.answered();
    }
    if (skipping) this.answered();
  }

  /** One request answered (its reply queued). */
  answered() {
    if (--this.inflight === 0 && this.closing) queueMicrotask(this.o.onIdle);
  }

  /** One request holds `bytes` of payload or read data until release(). */
  hold(bytes) {
    this.held += bytes;
    this.holding++;
    this.memory.held += bytes;
  }

  release(bytes) {
    const was = this.stopped();
    this.held -= bytes;
    this.holding--;
    this.memory.held -= bytes;
    if (was && !this.stopped()) this.o.onReady();
  }

  /** Describes an error for logs. */
  static describe(req, e) {
    return `${CMD_NAMES[req.type] ?? `command ${req.type}`} ${req.length}@${req.offset}: ${nbdErrorName(e.errno)}: ${e.message}`;
  }
}
