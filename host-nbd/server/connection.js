// @ts-check
// One client: the fixed newstyle handshake (bytes in, negotiation.js decides), then the
// transmission phase (transmission.js), then a clean close. Input and output may be one socket
// or two streams (--stdio). Whatever the client does, only this connection is affected.
// NBD_OPT_STARTTLS turns the socket into a TLS session (tls.js) and haggling starts over in it.
//
// The handshake's input: handshake-phase.js. Where an adopted socket's reads go:
// directed-reads.js. A receive thread reading the socket instead: connection-receiver.js. Clients
// that stop half-way through a request, or stop reading replies: stall-watchdog.js.
import net from 'node:net';
import { REQUEST_BYTES } from '../protocol/constants.js';
import { greeting } from '../protocol/handshake.js';
import { Negotiation, transmissionFlags } from './negotiation.js';
import { Transmission } from './transmission.js';
import { ReplyWriter } from './reply-writer.js';
import { FLAGS, TRANSMISSION, CLOSED, TLS_HANDSHAKE } from './connection-phases.js';
import * as handshakePhase from './handshake-phase.js';
import * as directedReads from './directed-reads.js';
import * as receiver from './connection-receiver.js';
import { watchStalls, checkStall } from './stall-watchdog.js';

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
    /** @type {import('./thread-input.js').ThreadInput | null} a receive thread reads the socket (startReceiver) */
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

  /** Directed reads: where the next read of the socket goes (directed-reads.js). */
  readTarget() { return directedReads.readTarget(this); }

  /**
   * Directed reads: n bytes arrived in buf. Returns false to stop reading (Node pauses the
   * socket) while requests wait in the stash.
   * @param {number} n @param {Buffer} buf
   */
  onRead(n, buf) { return directedReads.onRead(this, n, buf); }

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
  take(n) { return handshakePhase.take(this, n); }

  /** Cuts the handshake input into flags, options and their data (handshake-phase.js). */
  handshake() { handshakePhase.handshake(this); }

  /** @returns {boolean} whether to go on reading input in the handshake loop */
  runOption(option, data) { return handshakePhase.runOption(this, option, data); }

  /** Sends STARTTLS's ACK, then runs the TLS handshake; haggling starts over inside TLS (handshake-phase.js). */
  startTls(ack) { return handshakePhase.startTls(this, ack); }

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
    watchStalls(this);
    // Said once, when the connection closes: one log line per connection.
    if (this.scratch) this.scratchHead = this.scratch.subarray(0, this.tx.reader.headerBytes);
    const replies = neg.extended ? 'extended headers' : neg.structured ? 'structured replies' : 'simple replies';
    this.what = [`export ${exp.name}`, replies, ...contexts.map((c) => c.name)].join(', ');
    return true;
  }

  /** From here on a thread reads the socket (connection-receiver.js). */
  startReceiver(threads, exp) { receiver.startReceiver(this, threads, exp); }

  /** Requests the thread did: accounted for on the export, then counted (and answered). @param {Float64Array} records */
  threadRequests(records) { receiver.threadRequests(this, records); }

  pauseInput() {
    if (this.threadInput) this.threadInput.pause();
    else this.input.pause();
  }

  /** Stops the thread; what it did and nobody took yet is accounted for (and answered, unless closed). */
  stopReceiver() { receiver.stopReceiver(this); }

  /** Large reads from files straight to this socket: when the server can, and it is a plain one (not TLS, not stdio). */
  fileSender() {
    const s = this.host.sendFiles;
    return s && this.sockFd >= 0 ? { ...s, fd: this.sockFd } : null;
  }

  // ---- transmission

  /** Closes the connection if its client stopped mid-request or stopped reading replies (stall-watchdog.js). */
  checkStall(stallMs) { checkStall(this, stallMs); }

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
