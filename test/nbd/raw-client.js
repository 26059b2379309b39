// @ts-check
// A deliberately dumb NBD client for malformed-traffic tests: it writes whatever bytes a test
// gives it and reads exact byte counts back. Written from the spec, independent of the server
// code (it shares no module with host-nbd/).
import net from 'node:net';

export const MAGIC = {
  NBD: Buffer.from('NBDMAGIC'),
  IHAVEOPT: Buffer.from('IHAVEOPT'),
  REPLY: Buffer.from([0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9]),
  REQUEST: 0x25609513,
  SIMPLE: 0x67446698,
  STRUCTURED: 0x668e33ef,
};

/** One request header, as the spec lays it out (for tests that batch requests in one write). */
export function requestHeader(type, cookie, offset, length, flags = 0) {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(MAGIC.REQUEST, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(cookie), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length >>> 0, 24);
  return h;
}

export class RawClient {
  /** @param {net.Socket} sock */
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    /** @type {(() => void) | null} */
    this.wake = null;
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake?.(); });
    sock.on('end', () => { this.ended = true; this.wake?.(); });
    sock.on('close', () => { this.ended = true; this.wake?.(); });
    sock.on('error', () => { this.ended = true; this.wake?.(); });
  }

  /** @param {string} path Unix socket */
  static connect(path) {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Resolves with exactly n bytes, or null if the server closed first. @returns {Promise<Buffer | null>} */
  async read(n, ms = 10_000) {
    const t0 = Date.now();
    while (this.buf.length < n) {
      if (this.ended) return null;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise((r) => { this.wake = () => r(undefined); setTimeout(r, 50); });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves true once the server closed the connection (within ms). */
  async closed(ms = 10_000) {
    const t0 = Date.now();
    while (!this.ended) {
      if (Date.now() - t0 > ms) return false;
      await new Promise((r) => { this.wake = () => r(undefined); setTimeout(r, 50); });
    }
    return true;
  }

  write(bytes) { this.sock.write(bytes); }
  destroy() { this.sock.destroy(); }

  /** Reads the 18-byte greeting and answers with client flags. */
  async handshake(clientFlags = 1) {
    const g = await this.read(18);
    if (!g || !g.subarray(0, 8).equals(MAGIC.NBD) || !g.subarray(8, 16).equals(MAGIC.IHAVEOPT)) throw new Error('bad greeting');
    const f = Buffer.alloc(4);
    f.writeUInt32BE(clientFlags >>> 0);
    this.write(f);
    return g.readUInt16BE(16);
  }

  option(opt, data = Buffer.alloc(0)) {
    const h = Buffer.alloc(16);
    MAGIC.IHAVEOPT.copy(h, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.write(Buffer.concat([h, data]));
  }

  /** @returns {Promise<{option: number, type: number, data: Buffer} | null>} */
  async optionReply() {
    const h = await this.read(20);
    if (!h) return null;
    if (!h.subarray(0, 8).equals(MAGIC.REPLY)) throw new Error(`bad option reply magic ${h.subarray(0, 8).toString('hex')}`);
    const len = h.readUInt32BE(16);
    const data = len ? await this.read(len) : Buffer.alloc(0);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: /** @type {Buffer} */ (data) };
  }

  /** NBD_OPT_GO on `name` with no information requests; returns the final reply type. */
  async go(name) {
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.option(7, d);
    for (;;) {
      const r = await this.optionReply();
      if (!r) throw new Error('closed during GO');
      if (r.type !== 3) return r.type; // not NBD_REP_INFO
    }
  }

  request(type, flags, cookie, offset, length, payload) {
    const h = requestHeader(type, cookie, offset, length, flags);
    this.write(payload ? Buffer.concat([h, payload]) : h);
  }

  /** A simple reply: {error, cookie}, plus `dataLength` bytes of data when error is 0. */
  async simpleReply(dataLength = 0) {
    const h = await this.read(16);
    if (!h) return null;
    if (h.readUInt32BE(0) !== MAGIC.SIMPLE) throw new Error(`bad reply magic ${h.readUInt32BE(0).toString(16)}`);
    const error = h.readUInt32BE(4);
    const data = error === 0 && dataLength ? await this.read(dataLength) : null;
    return { error, cookie: Number(h.readBigUInt64BE(8)), data };
  }
}
