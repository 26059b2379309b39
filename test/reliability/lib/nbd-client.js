// @ts-check
// A pipelined NBD client for the reliability tests (crashes, faults, load, fuzzing's verifier).
// Written from the spec (NetworkBlockDevice/nbd doc/proto.md) and sharing no module with
// host-nbd/, so the server is checked by an independent peer. Fixed newstyle, NBD_OPT_GO,
// simple replies, any number of requests in flight. A request's promise rejects with an
// NbdReplyError carrying the errno the server sent, or with a plain Error when the connection
// died before the reply (the caller cannot know whether such a write happened).
import net from 'node:net';

const IHAVEOPT = Buffer.from('IHAVEOPT');
const NBDMAGIC = Buffer.from('NBDMAGIC');
const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const OPT_GO = 7, OPT_STARTTLS = 5;
const REP_ACK = 1, REP_INFO = 3;
export const CMD = Object.freeze({ READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6 });
export const CMD_FLAG_FUA = 1;

export class NbdReplyError extends Error {
  /** @param {number} errno @param {string} what */
  constructor(errno, what) {
    super(`${what}: server replied errno ${errno}`);
    this.errno = errno;
  }
}

/** Reads exact byte counts from a socket during the handshake. */
class ByteReader {
  /** @param {import('node:stream').Duplex} sock */
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    /** @type {{n: number, resolve: (b: Buffer) => void, reject: (e: Error) => void} | null} */
    this.want = null;
    this.error = /** @type {Error | null} */ (null);
    this.onData = (/** @type {Buffer} */ d) => { this.buf = Buffer.concat([this.buf, d]); this.poke(); };
    this.onEnd = () => { this.error ??= new Error('server closed the connection during the handshake'); this.poke(); };
    this.onError = (/** @type {Error} */ e) => { this.error ??= e; this.poke(); };
    sock.on('data', this.onData).on('end', this.onEnd).on('close', this.onEnd).on('error', this.onError);
  }

  poke() {
    const w = this.want;
    if (!w) return;
    if (this.buf.length >= w.n) {
      this.want = null;
      const out = this.buf.subarray(0, w.n);
      this.buf = this.buf.subarray(w.n);
      w.resolve(out);
    } else if (this.error) {
      this.want = null;
      w.reject(this.error);
    }
  }

  /** @param {number} n @returns {Promise<Buffer>} */
  read(n) {
    return new Promise((resolve, reject) => { this.want = { n, resolve, reject }; this.poke(); });
  }

  /** Stops listening; returns bytes read past the handshake. */
  detach() {
    this.sock.off('data', this.onData).off('end', this.onEnd).off('close', this.onEnd).off('error', this.onError);
    return this.buf;
  }
}

/** One option request: IHAVEOPT, option, length, data. */
function optionBytes(option, data = Buffer.alloc(0)) {
  const h = Buffer.alloc(16);
  IHAVEOPT.copy(h, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

/** Reads one option reply. @param {ByteReader} r */
async function optionReply(r) {
  const h = await r.read(20);
  if (h.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
  const len = h.readUInt32BE(16);
  const data = len ? await r.read(len) : Buffer.alloc(0);
  return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
}

/**
 * @typedef {object} ConnectOptions
 * @property {string} [socket]  Unix socket path
 * @property {string} [host]    TCP host (with port)
 * @property {number} [port]
 * @property {string} exportName
 * @property {(sock: net.Socket) => Promise<import('node:stream').Duplex>} [startTls]
 *   when given, NBD_OPT_STARTTLS is sent first and this upgrades the socket
 */

export class NbdClient {
  /** @param {ConnectOptions} opts @returns {Promise<NbdClient>} */
  static async connect(opts) {
    const raw = await new Promise((resolve, reject) => {
      const s = opts.socket ? net.connect(opts.socket) : net.connect(/** @type {number} */ (opts.port), opts.host ?? '127.0.0.1');
      s.once('connect', () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
    });
    raw.setNoDelay(true);
    /** @type {import('node:stream').Duplex} */
    let sock = raw;
    let r = new ByteReader(sock);
    try {
      const g = await r.read(18);
      if (!g.subarray(0, 8).equals(NBDMAGIC) || !g.subarray(8, 16).equals(IHAVEOPT)) throw new Error('not a newstyle NBD server');
      const serverFlags = g.readUInt16BE(16);
      if (!(serverFlags & 1)) throw new Error('server does not speak fixed newstyle');
      const clientFlags = Buffer.alloc(4);
      clientFlags.writeUInt32BE(1 | (serverFlags & 2)); // FIXED_NEWSTYLE, NO_ZEROES if offered
      sock.write(clientFlags);
      if (opts.startTls) {
        sock.write(optionBytes(OPT_STARTTLS));
        const rep = await optionReply(r);
        if (rep.type !== REP_ACK) throw new NbdReplyError(rep.type, `STARTTLS refused (${rep.data.toString()})`);
        r.detach();
        sock = await opts.startTls(raw);
        r = new ByteReader(sock);
      }
      const name = Buffer.from(opts.exportName);
      const go = Buffer.alloc(4 + name.length + 2);
      go.writeUInt32BE(name.length, 0);
      name.copy(go, 4);
      sock.write(optionBytes(OPT_GO, go));
      let size = -1, flags = 0;
      for (;;) {
        const rep = await optionReply(r);
        if (rep.type === REP_INFO && rep.data.readUInt16BE(0) === 0) {
          size = Number(rep.data.readBigUInt64BE(2));
          flags = rep.data.readUInt16BE(10);
        } else if (rep.type === REP_ACK) break;
        else if (rep.type & 0x80000000) throw new NbdReplyError(rep.type, `GO ${opts.exportName} refused (${rep.data.toString()})`);
      }
      if (size < 0) throw new Error('GO finished without NBD_INFO_EXPORT');
      const rest = r.detach();
      return new NbdClient(sock, size, flags, rest);
    } catch (e) {
      r.detach();
      sock.destroy();
      raw.destroy();
      throw e;
    }
  }

  /** @param {import('node:stream').Duplex} sock @param {number} size @param {number} flags @param {Buffer} rest */
  constructor(sock, size, flags, rest) {
    this.sock = sock;
    this.size = size;
    this.flags = flags;
    /** @type {Map<number, {type: number, length: number, what: string, resolve: (v: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.nextCookie = 1;
    /** @type {Set<Promise<any>>} requests not answered yet (close() waits for them) */
    this.promises = new Set();
    this.buf = Buffer.alloc(0);
    /** Set once the connection failed: every later request fails at once. */
    this.dead = /** @type {Error | null} */ (null);
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => this.die(e));
    sock.on('close', () => this.die(new Error('connection closed')));
    if (rest.length) this.onData(rest);
  }

  /** @param {Buffer} d */
  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let at = 0;
    while (this.buf.length - at >= 16) {
      const b = this.buf;
      if (b.readUInt32BE(at) !== SIMPLE_REPLY_MAGIC) { this.die(new Error(`bad reply magic 0x${b.readUInt32BE(at).toString(16)}`)); return; }
      const error = b.readUInt32BE(at + 4);
      const cookie = Number(b.readBigUInt64BE(at + 8));
      const req = this.pending.get(cookie);
      if (!req) { this.die(new Error(`reply for unknown cookie ${cookie}`)); return; }
      const dataLen = req.type === CMD.READ && error === 0 ? req.length : 0;
      if (b.length - at < 16 + dataLen) break;
      this.pending.delete(cookie);
      if (error) req.reject(new NbdReplyError(error, req.what));
      else req.resolve(dataLen ? Buffer.from(b.subarray(at + 16, at + 16 + dataLen)) : undefined);
      at += 16 + dataLen;
    }
    this.buf = at === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(at);
  }

  /** @param {Error} e */
  die(e) {
    if (!this.dead) this.dead = e;
    for (const req of this.pending.values()) req.reject(new Error(`${req.what}: ${this.dead.message} before the reply`));
    this.pending.clear();
    this.sock.destroy();
  }

  get inflight() { return this.pending.size; }

  /** @returns {Promise<any>} */
  request(type, flags, offset, length, payload, what) {
    if (this.dead) return Promise.reject(new Error(`${what}: ${this.dead.message}`));
    const cookie = this.nextCookie++;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    const p = new Promise((resolve, reject) => {
      this.pending.set(cookie, { type, length, what, resolve, reject });
      if (payload) { this.sock.cork(); this.sock.write(h); this.sock.write(payload); this.sock.uncork(); }
      else this.sock.write(h);
    });
    this.promises.add(p);
    const forget = () => { this.promises.delete(p); };
    p.then(forget, forget);
    return p;
  }

  /** @returns {Promise<Buffer>} */
  read(offset, length) { return this.request(CMD.READ, 0, offset, length, null, `READ ${length}@${offset}`); }
  /** @param {number} offset @param {Buffer} data */
  write(offset, data, fua = false) {
    return this.request(CMD.WRITE, fua ? CMD_FLAG_FUA : 0, offset, data.length, data, `WRITE ${data.length}@${offset}`);
  }
  flush() { return this.request(CMD.FLUSH, 0, 0, 0, null, 'FLUSH'); }
  trim(offset, length) { return this.request(CMD.TRIM, 0, offset, length, null, `TRIM ${length}@${offset}`); }
  writeZeroes(offset, length) { return this.request(CMD.WRITE_ZEROES, 0, offset, length, null, `WRITE_ZEROES ${length}@${offset}`); }

  /** Sends NBD_CMD_DISC once the replies in flight arrived, and waits for the server to close. */
  async close() {
    if (this.dead) return;
    await Promise.allSettled(this.promises);
    if (this.dead) return;
    const closed = new Promise((resolve) => this.sock.once('close', resolve));
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(CMD.DISC, 6);
    this.sock.end(h);
    await closed;
  }

  destroy() { this.die(new Error('closed by the client')); }
}
