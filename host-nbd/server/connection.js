// @ts-check
// One client: the fixed newstyle handshake (bytes in, negotiation.js decides), then the
// transmission phase (transmission.js), then a clean close. Input and output may be one socket
// or two streams (--stdio). Whatever the client does, only this connection is affected.
// NBD_OPT_STARTTLS turns the socket into a TLS session (tls.js) and haggling starts over in it.
import net from 'node:net';
import { OPTION_HEADER_BYTES, OPT, REP, REQUEST_BYTES } from '../protocol/constants.js';
import { greeting, parseClientFlags, parseOptionHeader, optionError } from '../protocol/handshake.js';
import { Negotiation, transmissionFlags } from './negotiation.js';
import { Transmission } from './transmission.js';
import { ReplyWriter } from './reply-writer.js';
import { startTls } from './tls.js';
import { ThreadInput } from './thread-input.js';

const FLAGS = 0, OPTION_HEADER = 1, OPTION_DATA = 2, OPTION_SKIP = 3, TRANSMISSION = 4, CLOSED = 5, TLS_HANDSHAKE = 6;

/**
 * @typedef {object} ConnectionHost
 * @property {import('./negotiation.js').Exports & {getExport(name: string): any}} exports
 * @property {import('./limits.js').Limits} limits
 * @property {import('./tls.js').TlsConfig | null} [tls] TLS offered with NBD_OPT_STARTTLS
 * @property {{held: number}} [memory] bytes held by all connections (shared)
 * @property {(line: string) => void} log      one line per connection
 * @property {(line: string) => void} logError one line per error
 * @property {(c: Connection) => void} closed
 * @property {import('./receive-threads.js').ReceiveThreads | null} [receiveThreads] a thread per plain
 *   socket reads it in the transmission phase and does plain writes itself (receive-threads.js)
 */

/** WRITE payloads with at least this much still to come are read straight into core memory. */
const DIRECT_MIN = 32 * 1024;
const DIRECT_MAX = 8 << 20;

export class Connection {
  /**
   * @param {ConnectionHost} host @param {number} id
   * @param {import('node:stream').Duplex | import('node:stream').Readable} input
   * @param {import('node:stream').Writable} output @param {string} peer
   * @param {Buffer} [scratch] given for a socket whose reads we direct (server.js adopt()): the
   *   buffer for every read that is not a large payload; input arrives through onRead() then
   */
  constructor(host, id, input, output, peer, scratch) {
    this.host = host;
    this.scratch = scratch ?? null;
    /** The scratch buffer's first REQUEST_BYTES (in transmission: one header of its kind): a read of exactly one request header. */
    this.scratchHead = scratch ? scratch.subarray(0, REQUEST_BYTES) : Buffer.alloc(0);
    /** The core-memory view the pending read was pointed at, if any. */
    this.direct = /** @type {Buffer | null} */ (null);
    this.id = id;
    this.input = input;
    this.output = output;
    this.peer = peer;
    /** Came through a listening socket (counted against limits.maxConnections). */
    this.viaListener = false;
    this.phase = FLAGS;
    this.pending = Buffer.alloc(0);
    this.option = 0;
    this.optionLength = 0;
    this.skipLeft = 0;
    /** @type {Negotiation | null} */
    this.negotiation = null;
    /** @type {Transmission | null} */
    this.tx = null;
    /** @type {import('../engine/device-export.js').DeviceExport | null} */
    this.exp = null;
    /** @type {[Buffer, number] | null} input not parsed yet (the reader was stopped) */
    this.stash = null;
    this.closeReason = '';
    /** What the connection is about (export, reply style, contexts), for its closing log line. */
    this.what = '';
    this.loggedErrors = 0;
    /** TLS is up on this connection. */
    this.secure = false;
    /** @type {Array<[import('node:events').EventEmitter, string, (...args: any[]) => void]>} */
    this.listeners = [];
    this.timer = /** @type {NodeJS.Timeout | null} */ (null);
    /** Transmission phase: checks that half-sent requests and unread replies keep moving. */
    this.watchdog = /** @type {NodeJS.Timeout | null} */ (null);
    this.lastInput = 0;
    /** The socket's descriptor, for sendfile (server.js adopt()); -1 when there is none. */
    this.sockFd = -1;
    this.lastOutputLength = 0;
    this.lastOutput = 0;
    /** @type {ThreadInput | null} a receive thread reads the socket (startReceiver) */
    this.threadInput = null;
    /** @type {Promise<void>} */
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  start() {
    this.attach();
    this.timer = setTimeout(() => this.close(`no transmission phase after ${this.host.limits.handshakeMs} ms`), this.host.limits.handshakeMs);
    this.timer.unref?.();
    this.output.write(greeting());
  }

  /** Listens to input and output (again after STARTTLS replaced them). */
  attach() {
    const { input, output } = this;
    const on = (emitter, event, fn) => { emitter.on(event, fn); this.listeners.push([emitter, event, fn]); };
    if (!this.scratch) on(input, 'data', (chunk) => this.onData(chunk)); // else onRead() gets the bytes
    input.resume();
    // A client that stops sending still gets the replies to what it sent.
    on(input, 'end', () => this.shutdown('client disconnected'));
    on(input, 'close', () => this.close('connection closed'));
    on(input, 'error', (e) => this.close(`input error: ${e.message}`));
    if (output !== input) on(output, 'error', (e) => this.close(`output error: ${e.message}`));
    on(output, 'drain', () => this.resumeInput());
  }

  detach() {
    for (const [emitter, event, fn] of this.listeners) emitter.off(event, fn);
    this.listeners = [];
  }

  /**
   * What TLS this connection may negotiate. Over two streams (--stdio) TLS cannot start: with
   * TLS required, such a client gets nothing at all (closed, not open).
   */
  tlsState() {
    const tls = this.host.tls;
    const available = this.input === this.output && this.input instanceof net.Socket;
    return { mode: tls ? tls.mode : /** @type {const} */ ('off'), active: this.secure, available };
  }

  log(line) { this.host.log(`connection ${this.id} (${this.peer}): ${line}`); }

  /**
   * Directed reads: where the next read of the socket goes (called by Node before each read).
   * The rest of a large WRITE payload goes to its core buffer; after one, reads stop at the end
   * of the next request header (in the scratch buffer), so that a following large payload goes
   * to its core buffer too.
   */
  readTarget() {
    const tx = this.tx;
    const scratch = /** @type {Buffer} */ (this.scratch);
    this.direct = null;
    if (!tx || this.phase !== TRANSMISSION) return scratch;
    this.direct = tx.reader.directTarget(tx.mem(), DIRECT_MIN, DIRECT_MAX);
    if (this.direct) return this.direct;
    const head = tx.reader.headerTarget(DIRECT_MIN);
    if (head === 0 || head >= scratch.length) return scratch;
    return head === this.scratchHead.length ? this.scratchHead : scratch.subarray(0, head);
  }

  /**
   * Directed reads: n bytes arrived in buf. Returns false to stop reading (Node pauses the
   * socket) while requests wait in the stash.
   * @param {number} n @param {Buffer} buf
   */
  onRead(n, buf) {
    if (this.phase === CLOSED || this.threadInput) return false;
    if (buf === this.direct) {
      this.lastInput = performance.now();
      /** @type {Transmission} */ (this.tx).reader.stored(n);
      return true;
    }
    if (this.phase === TRANSMISSION) {
      this.onData(buf.subarray(0, n)); // the stash may point into the scratch buffer: reading stops then
      return this.stash === null;
    }
    this.onData(Buffer.from(buf.subarray(0, n))); // the handshake keeps bytes across reads
    return true;
  }

  /** @param {Buffer} chunk */
  onData(chunk) {
    if (this.phase === TRANSMISSION) { this.lastInput = performance.now(); this.feed(chunk, 0); return; }
    if (this.phase === CLOSED) return;
    if (this.phase === TLS_HANDSHAKE) { this.close('plain-text data followed NBD_OPT_STARTTLS before the TLS handshake', true); return; }
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.handshake();
  }

  // ---- handshake

  /** Takes n bytes from the handshake input, or null if they have not all arrived. */
  take(n) {
    if (this.pending.length < n) return null;
    const b = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return b;
  }

  handshake() {
    for (;;) {
      if (this.phase === FLAGS) {
        const b = this.take(4);
        if (!b) return;
        const flags = parseClientFlags(b);
        if (!flags.ok) { this.close(flags.error, true); return; }
        this.negotiation = new Negotiation(this.host.exports, flags, this.tlsState());
        this.phase = OPTION_HEADER;
      } else if (this.phase === OPTION_HEADER) {
        const b = this.take(OPTION_HEADER_BYTES);
        if (!b) return;
        const h = parseOptionHeader(b);
        if (!h.ok) { this.close(h.error, true); return; }
        this.option = h.option;
        this.optionLength = h.length;
        if (h.length > this.host.limits.maxOptionBytes) {
          this.skipLeft = h.length;
          this.phase = OPTION_SKIP;
        } else {
          this.phase = OPTION_DATA;
        }
      } else if (this.phase === OPTION_DATA) {
        const data = this.take(this.optionLength);
        if (!data) return;
        this.phase = OPTION_HEADER;
        if (!this.runOption(this.option, Buffer.from(data))) return;
      } else if (this.phase === OPTION_SKIP) {
        const n = Math.min(this.skipLeft, this.pending.length);
        this.pending = this.pending.subarray(n);
        this.skipLeft -= n;
        if (this.skipLeft > 0) return;
        this.phase = OPTION_HEADER;
        const why = `option data of ${this.optionLength} bytes is larger than ${this.host.limits.maxOptionBytes}`;
        if (this.option === OPT.EXPORT_NAME) { this.close(why, true); return; }
        this.output.write(optionError(this.option, REP.ERR_TOO_BIG, why));
      } else {
        // TRANSMISSION: whatever followed the GO reply in the same chunk is the first requests.
        const rest = this.pending;
        this.pending = Buffer.alloc(0);
        if (rest.length > 0) this.feed(rest, 0);
        return;
      }
    }
  }

  /** @returns {boolean} whether to go on reading input in the handshake loop */
  runOption(option, data) {
    const neg = /** @type {Negotiation} */ (this.negotiation);
    const outcome = neg.handle(option, data);
    if (outcome.next === 'starttls') return this.startTls(outcome.replies[0]);
    if (outcome.replies.length > 0) this.output.write(outcome.replies.length === 1 ? outcome.replies[0] : Buffer.concat(outcome.replies));
    switch (outcome.next) {
      case 'continue': return true;
      case 'abort': this.close('client aborted the handshake'); return false;
      case 'close': this.close(/** @type {string} */ (outcome.reason), true); return false;
      case 'go': return this.go(/** @type {any} */ (outcome.export), /** @type {string} */ (outcome.name));
      default: return false;
    }
  }

  /**
   * Sends STARTTLS's ACK, then runs the TLS handshake on the socket; haggling starts over inside
   * TLS with a fresh negotiation (nothing agreed in plain text carries over). A client may not
   * send anything between the option and the handshake: bytes that arrived in plain text after
   * STARTTLS would otherwise be taken as if they came through TLS.
   */
  startTls(ack) {
    if (this.pending.length > 0) {
      this.close('plain-text data followed NBD_OPT_STARTTLS before the TLS handshake', true);
      return false;
    }
    const raw = /** @type {net.Socket} */ (this.input);
    this.phase = TLS_HANDSHAKE;
    this.detach();
    raw.on('error', () => {}); // the TLS socket reports what happens on it from now on
    raw.write(ack, () => {
      if (this.phase === CLOSED) return;
      const { secure, ready } = startTls(raw, /** @type {import('./tls.js').TlsConfig} */ (this.host.tls));
      // The TLS socket owns the connection now: close() must destroy it, not the raw one.
      this.input = this.output = secure;
      ready.then(() => {
        if (this.phase === CLOSED) return;
        this.secure = true;
        this.attach();
        const flags = /** @type {Negotiation} */ (this.negotiation).client;
        this.negotiation = new Negotiation(this.host.exports, flags, this.tlsState());
        this.phase = OPTION_HEADER;
        this.log(`TLS established (${secure.getProtocol()}, ${secure.getCipher()?.name ?? 'unknown cipher'})`);
      }, (e) => this.close(e.message, true));
    });
    return false;
  }

  /** Enters the transmission phase on `exp`, chosen by the client as `name`. */
  go(exp, name) {
    const neg = /** @type {Negotiation} */ (this.negotiation);
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    try {
      exp.open();
    } catch (e) {
      this.close(`cannot open ${exp.name}: ${e instanceof Error ? e.message : e}`, true);
      return false;
    }
    this.exp = exp;
    const contexts = neg.contextsFor(name);
    this.tx = new Transmission({
      exp,
      flags: transmissionFlags(exp, neg.structured),
      structured: neg.structured,
      extended: neg.extended,
      contexts,
      writer: new ReplyWriter(this.output, this.fileSender()),
      limits: this.host.limits,
      memory: this.host.memory ?? { held: 0 },
      onError: (req, e) => this.requestError(req, e),
      onFatal: (reason) => this.close(reason, true),
      onReady: () => this.resumeInput(),
      onDisconnect: () => { this.closeReason = 'client sent NBD_CMD_DISC'; },
      onIdle: () => this.finish(),
      onWriteAnswered: (req) => this.threadInput?.writeAnswered(req.cookieHi, req.cookieLo),
    });
    this.phase = TRANSMISSION;
    const threads = this.host.receiveThreads;
    // Only where it can do something: for other devices it would be one more hop for every
    // request. Only on sockets whose reads we direct (adopted by the server): pausing those stops
    // Node's reads at once, where a plain Node socket reads ahead into its buffer (bytes the
    // thread would never see; found by the kernel client over a socket pair, dmkit attach).
    if (threads && this.scratch && this.sockFd >= 0 && !this.secure && !neg.extended && exp.threadMapped) this.startReceiver(threads, exp);
    this.lastInput = this.lastOutput = performance.now();
    const stallMs = this.host.limits.stallMs;
    this.watchdog = setInterval(() => this.checkStall(stallMs), Math.max(50, stallMs / 4));
    this.watchdog.unref?.();
    // Said once, when the connection closes: one log line per connection.
    if (this.scratch) this.scratchHead = this.scratch.subarray(0, this.tx.reader.headerBytes);
    const replies = neg.extended ? 'extended headers' : neg.structured ? 'structured replies' : 'simple replies';
    this.what = [`export ${exp.name}`, replies, ...contexts.map((c) => c.name)].join(', ');
    return true;
  }

  /**
   * From here on a thread reads the socket (receive-threads.js): Node stops reading it, and the
   * bytes that came after the GO option are the thread's first input.
   * @param {import('./receive-threads.js').ReceiveThreads} threads
   * @param {import('../engine/device-export.js').DeviceExport} exp
   */
  startReceiver(threads, exp) {
    this.input.pause();
    const tx = /** @type {Transmission} */ (this.tx);
    const { maxRequest, stallMs } = this.host.limits;
    try {
      this.threadInput = new ThreadInput(threads, this.sockFd, this.pending, exp.writeMap, { maxRequest, structured: tx.structured, stallMs }, {
        ready: () => !this.stash && this.phase === TRANSMISSION,
        parse: (bytes) => { this.lastInput = performance.now(); this.feed(bytes, 0); },
        requests: (records) => this.threadRequests(records),
        ended: (reason, bad) => (bad ? this.close(reason, true) : this.shutdown(reason)),
      });
    } catch (e) {
      this.log(`requests are read on the event loop: ${e instanceof Error ? e.message : e}`);
      this.input.resume();
      return;
    }
    this.pending = Buffer.alloc(0);
    tx.writer.share(this.threadInput.native);
  }

  /** Requests the thread did: accounted for on the export, then counted (and answered). @param {Float64Array} records */
  threadRequests(records) {
    const tx = /** @type {Transmission} */ (this.tx);
    /** @type {import('../engine/device-export.js').DeviceExport} */ (this.exp).threadIoDone(records);
    if (this.phase !== TRANSMISSION) return;
    tx.threadRequests(records);
    if (tx.stopped()) this.pauseInput(); // replies pile up: the client is not reading them
  }

  pauseInput() {
    if (this.threadInput) this.threadInput.pause();
    else this.input.pause();
  }

  /** Stops the thread; what it did and nobody took yet is accounted for (and answered, unless closed). */
  stopReceiver() {
    const input = this.threadInput;
    if (!input) return;
    this.threadInput = null;
    for (const records of input.stop()) this.threadRequests(records);
    this.tx?.writer.unshare();
  }

  /** Large reads from files straight to this socket: when the server can, and it is a plain one (not TLS, not stdio). */
  fileSender() {
    const s = this.host.sendFiles;
    return s && this.sockFd >= 0 ? { ...s, fd: this.sockFd } : null;
  }

  // ---- transmission

  /**
   * Closes a connection whose client stopped half-way through a request, or stopped reading
   * replies (they wait in the socket and nothing of them leaves), for stallMs. A connection that
   * is merely idle, or waits for slow backing I/O, is left alone.
   */
  checkStall(stallMs) {
    const tx = this.tx;
    if (!tx || this.phase !== TRANSMISSION) return;
    const now = performance.now();
    const threadMid = this.threadInput?.midRequestMs(now) ?? 0;
    if ((tx.reader.midRequest && !this.stash && now - this.lastInput > stallMs) || threadMid > stallMs) {
      this.close(`a request stopped arriving half-way: nothing for ${stallMs} ms`, true);
      return;
    }
    const queued = this.output.writableLength;
    if (queued === 0 || queued < this.lastOutputLength) this.lastOutput = now;
    this.lastOutputLength = queued;
    if (now - this.lastOutput > stallMs) this.close(`the client stopped reading replies: none taken for ${stallMs} ms`, true);
  }

  /** Parses requests from chunk[at...]; keeps the rest when the reader stops (backpressure). */
  feed(chunk, at) {
    const tx = /** @type {Transmission} */ (this.tx);
    const stop = tx.reader.feed(chunk, at);
    if (stop < chunk.length && this.phase === TRANSMISSION && !tx.closing) {
      this.stash = [chunk, stop];
      this.pauseInput();
    }
  }

  resumeInput() {
    const tx = this.tx;
    if (!tx || this.phase !== TRANSMISSION || tx.closing || tx.stopped()) return;
    const stash = this.stash;
    if (stash) {
      this.stash = null;
      this.feed(stash[0], stash[1]);
      if (this.stash) return;
    }
    const input = this.threadInput;
    if (!input) { this.input.resume(); return; }
    input.take();
    if (this.stash || this.phase !== TRANSMISSION || tx.closing || tx.stopped()) return;
    input.resume();
  }

  requestError(req, e) {
    if (this.loggedErrors++ < this.host.limits.loggedErrors) {
      this.host.logError(`connection ${this.id} (${this.peer}): ${Transmission.describe(req, e)}`);
    } else if (this.loggedErrors === this.host.limits.loggedErrors + 1) {
      this.host.logError(`connection ${this.id} (${this.peer}): further errors are only counted`);
    }
  }

  /** After DISC or at shutdown, once every request was answered: flush replies and close. */
  finish() {
    if (this.phase === CLOSED) return;
    const tx = this.tx;
    if (tx && tx.inflight > 0) return;
    this.stopReceiver(); // the socket is ours alone from here: the last replies leave at once
    tx?.writer.flush();
    this.close(this.closeReason || 'client disconnected', false, true);
  }

  /**
   * Stops reading. In transmission, requests already started still complete (and their replies
   * go out while the client listens): only then is the connection closed.
   */
  shutdown(reason) {
    if (this.phase === CLOSED) return;
    if (this.phase !== TRANSMISSION) { this.close(reason); return; }
    const tx = /** @type {Transmission} */ (this.tx);
    this.closeReason ||= reason; // NBD_CMD_DISC, if it came first, is the better reason
    this.pauseInput();
    this.stash = null;
    this.threadInput?.drop(); // stream bytes not parsed yet are dropped, as the stash is
    tx.stopReading();
    if (tx.inflight === 0) this.finish();
  }

  /**
   * Ends the connection. `bad`: the client broke the protocol (logged as an error).
   * `graceful`: end the output after queued replies instead of cutting it.
   */
  close(reason, bad = false, graceful = false) {
    if (this.phase === CLOSED) return;
    const wasTransmitting = this.phase === TRANSMISSION;
    this.phase = CLOSED;
    // No read may land after this (a directed read could target a payload buffer freed below).
    this.input.pause();
    this.stopReceiver();
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    const tx = this.tx;
    if (tx) {
      tx.stopReading();
      this.stash = null;
    }
    if (this.exp) {
      try { this.exp.close(); } catch { /* the device is gone already */ }
    }
    const summary = tx ? ` [${this.what}, ${tx.requests} request(s), ${tx.errors} error(s)]` : ' [in the handshake]';
    const line = `connection ${this.id} (${this.peer}) closed: ${reason}${summary}`;
    if (bad) this.host.logError(line);
    else this.host.log(line);
    const { input, output } = this;
    if (graceful || !wasTransmitting) {
      // Let queued bytes (the last replies, an ABORT's ACK) reach the client first.
      output.end(() => input.destroy());
      setTimeout(() => { output.destroy(); input.destroy(); }, 5000).unref?.();
    } else {
      output.destroy();
      input.destroy();
    }
    this.host.closed(this);
    /** @type {() => void} */ (this.resolveDone)();
  }
}
