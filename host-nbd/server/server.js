// @ts-check
// NbdServer: accepts NBD clients on TCP, Unix sockets, systemd-activated sockets, a pair of
// streams (--stdio), a socket handed in (serveSocket) or a socket descriptor handed in (serveFd:
// dmkit attach's socket pairs), and runs one Connection per client.
// close() stops accepting, lets every connection finish the requests it started, and resolves
// when all are gone; the caller then flushes the backing files.
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import { Connection } from './connection.js';
import { DEFAULT_LIMITS } from './limits.js';

/** The reused read buffer of an adopted socket (requests, small payloads). */
const READ_BUFFER_BYTES = 256 * 1024;

/** The first descriptor systemd (or libnbd) passes (sd_listen_fds). */
const SD_LISTEN_FDS_START = 3;

/**
 * @typedef {object} ServerOptions
 * @property {import('./negotiation.js').Exports & {getExport(name: string): any}} exports
 * @property {(line: string) => void} [log]      one line per connection
 * @property {(line: string) => void} [onError]  one line per error
 * @property {Partial<import('./limits.js').Limits>} [limits]
 * @property {import('./tls.js').TlsConfig | null} [tls] offer NBD_OPT_STARTTLS (see tls.js)
 * @property {import('./reply-writer.js').FileSenderSpec | null} [sendFiles]
 *   large reads of pass-through devices go from the files to plain sockets (file-sender.js)
 * @property {import('./receive-threads.js').ReceiveThreads | null} [receiveThreads]
 *   a thread per plain socket reads it and does plain writes itself (receive-threads.js)
 */

export class NbdServer {
  /** @param {ServerOptions} opts */
  constructor(opts) {
    this.exports = opts.exports;
    this.log = opts.log ?? (() => {});
    this.logError = opts.onError ?? this.log;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.tls = opts.tls ?? null;
    this.sendFiles = opts.sendFiles ?? null;
    this.receiveThreads = opts.receiveThreads ?? null;
    /** Payload and read bytes all connections hold (limits.serverMemory caps it). */
    this.memory = { held: 0 };
    /** @type {Set<Connection>} */
    this.connections = new Set();
    /** @type {net.Server[]} */
    this.listeners = [];
    /** @type {string[]} Unix socket files we created */
    this.socketFiles = [];
    this.nextId = 1;
    this.closing = false;
    /** Clients refused for limits.maxConnections. */
    this.refused = 0;
  }

  /** Starts a Connection over input/output (one Duplex twice, or two streams). */
  serve(input, output, peer) {
    const conn = new Connection(this, this.nextId++, input, output, peer);
    this.connections.add(conn);
    conn.start();
    return conn;
  }

  /** Connections that came through the listening sockets (limits.maxConnections caps them). */
  get listened() {
    let n = 0;
    for (const c of this.connections) if (c.viaListener) n++;
    return n;
  }

  /**
   * A client past limits.maxConnections: closed before the greeting. The first refusal of a run
   * of them is logged, then every hundredth, so a flood cannot flood the log as well.
   */
  refuse(sock, peer) {
    sock.destroy();
    if (this.refused++ % 100 === 0) {
      this.logError(`connection from ${peer} refused: ${this.limits.maxConnections} clients are connected already ` +
        `(--max-connections); ${this.refused} refused so far`);
    }
  }

  /** Serves a connected socket (e.g. one end of a socketpair). */
  serveSocket(socket, peer = 'socket') {
    if (socket instanceof net.Socket && typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    const conn = this.serve(socket, socket, peer);
    const fd = /** @type {any} */ (socket)._handle?.fd;
    const plain = socket instanceof net.Socket && !(socket instanceof tls.TLSSocket);
    if (plain && typeof fd === 'number' && fd >= 0) conn.sockFd = fd; // sendfile may write to it
    return conn;
  }

  /**
   * Serves an accepted socket whose reads go where the connection says (Node's `onread` with a
   * buffer chosen per read): the rest of a large WRITE payload lands straight in core memory, in
   * reads as large as the payload, everything else in one reused buffer. Node only offers that to
   * sockets it creates, so the accepted socket's handle moves to a new Socket (the old one, left
   * without a handle, is destroyed: that closes nothing but lets net.Server count it gone).
   * Without a handle to move (another runtime), Node's own reads are used.
   * @param {net.Socket} sock accepted with pauseOnConnect
   */
  adopt(sock, peer) {
    const handle = /** @type {any} */ (sock)._handle;
    if (!handle || typeof handle.useUserBuffer !== 'function') {
      sock.setNoDelay(true);
      return this.serve(sock, sock, peer);
    }
    /** @type {any} */ (sock)._handle = null;
    sock.destroy();
    return this.serveDirected({ handle }, handle.fd, peer);
  }

  /**
   * Serves a connected socket descriptor (one end of a socket pair: `dmkit attach`) the way an
   * accepted socket is served: reads directed by the connection, so a receive thread may take
   * the stream over. The connection owns the descriptor from here on.
   * @param {number} fd
   */
  serveFd(fd, peer) {
    return this.serveDirected({ fd }, fd, peer);
  }

  /**
   * A Socket on `from` (a handle or a descriptor) whose reads go where the connection says. No
   * byte is read before the connection exists: libuv reads only once this turn has ended.
   * @param {{handle: any} | {fd: number}} from @param {number | undefined} fd
   */
  serveDirected(from, fd, peer) {
    const scratch = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    /** @type {Connection | null} */
    let conn = null;
    const sock = new net.Socket({
      ...from, allowHalfOpen: true, readable: true, writable: true,
      onread: { buffer: () => (conn ? conn.readTarget() : scratch), callback: (n, buf) => (conn ? conn.onRead(n, buf) : false) },
    });
    sock.setNoDelay(true);
    conn = new Connection(this, this.nextId++, sock, sock, peer, scratch);
    if (typeof fd === 'number' && fd >= 0) conn.sockFd = fd;
    this.connections.add(conn);
    conn.start();
    return conn;
  }

  /** Serves one connection on two streams (--stdio); resolves when it ends. */
  serveStream(input, output) {
    return this.serve(input, output, 'stdio').done;
  }

  /** @param {Connection} conn */
  closed(conn) {
    this.connections.delete(conn);
  }

  /** @returns {net.Server} */
  newListener(peerOf) {
    // Paused on connect: no byte is read before adopt() decides where reads go.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
      if (this.closing) { sock.destroy(); return; }
      const peer = peerOf(sock);
      if (this.listened >= this.limits.maxConnections) { this.refuse(sock, peer); return; }
      if (this.tls) sock.setNoDelay(true);
      const conn = this.tls
        ? this.serve(sock, sock, peer) // STARTTLS wraps this very socket: keep Node's own reads
        : this.adopt(sock, peer);
      conn.viaListener = true;
    });
    server.on('error', (e) => this.logError(`listener error: ${e.message}`));
    this.listeners.push(server);
    return server;
  }

  /** @param {string} host @param {number} port @returns {Promise<net.AddressInfo>} */
  listenTcp(host, port) {
    const server = this.newListener((s) => `${s.remoteAddress}:${s.remotePort}`);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve(/** @type {net.AddressInfo} */ (server.address()));
      });
    });
  }

  /** Listens on a Unix socket; a stale socket file is replaced, a live one is an error. */
  async listenUnix(path) {
    if (fs.existsSync(path)) {
      if (!fs.statSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
      if (await isLive(path)) throw new Error(`another server is listening on ${path}`);
      fs.unlinkSync(path);
    }
    const server = this.newListener(() => 'unix');
    await new Promise((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`cannot listen on ${path}: ${e.message}`)));
      server.listen(path, () => resolve(undefined));
    });
    this.socketFiles.push(path);
  }

  /**
   * Serves the listening sockets passed by systemd or libnbd (LISTEN_FDS / LISTEN_PID).
   * Returns how many there were; the variables are removed so children do not inherit them.
   */
  serveSystemdSockets() {
    const n = Number(process.env.LISTEN_FDS);
    if (!Number.isInteger(n) || n < 1) throw new Error(`LISTEN_FDS='${process.env.LISTEN_FDS}' is not a positive number`);
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDNAMES;
    for (let fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
      const server = this.newListener((s) => s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : `fd ${fd}`);
      server.listen({ fd });
    }
    return n;
  }

  /** Stops accepting, lets connections finish what they started, resolves when all are closed. */
  async close() {
    this.closing = true;
    // net.Server.close() calls back only once every connection is gone: start it, do not wait.
    const listenersClosed = Promise.all(this.listeners.map((l) => new Promise((resolve) => l.close(() => resolve(undefined)))));
    this.listeners = [];
    for (const path of this.socketFiles) {
      try { fs.unlinkSync(path); } catch { /* already gone */ }
    }
    this.socketFiles = [];
    const conns = [...this.connections];
    for (const c of conns) c.shutdown('server shutting down');
    const all = Promise.all(conns.map((c) => c.done));
    let timer;
    const cut = new Promise((resolve) => {
      timer = setTimeout(() => {
        for (const c of this.connections) c.close(`still busy ${this.limits.shutdownMs} ms after shutdown began`, true);
        resolve(undefined);
      }, this.limits.shutdownMs);
    });
    await Promise.race([all, cut]);
    clearTimeout(timer);
    await listenersClosed;
  }
}

function isLive(path) {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
