// @ts-check
// The client side of the fixed newstyle handshake, as the kernel needs it done for it: the kernel
// only speaks transmission phase with simple replies, so we negotiate nothing else (no structured
// replies, no extended headers) and hand it the socket right after NBD_OPT_GO's ACK.
//
//   S: NBDMAGIC IHAVEOPT u16 flags          C: u32 flags
//   C: IHAVEOPT u32 NBD_OPT_GO u32 len  [u32 name-len, name, u16 1, u16 NBD_INFO_BLOCK_SIZE]
//   S: option replies: NBD_REP_INFO (export: u64 size, u16 transmission flags; block sizes),
//      then NBD_REP_ACK — or an error reply whose data is a message for humans.
// A server without NBD_OPT_GO (NBD_REP_ERR_UNSUP) gets NBD_OPT_EXPORT_NAME instead.
import {
  NBDMAGIC, IHAVEOPT, OPTION_REPLY_MAGIC, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES,
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, OPT, REP, INFO, MAX_STRING,
} from '../protocol/constants.js';

const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * @typedef {{size: number, flags: number, blockSize: {min: number, preferred: number, max: number} | null}} ExportInfo
 */

/** Reads exact byte counts from a stream, keeping whatever arrives early. */
class Reader {
  /** @param {import('node:net').Socket} sock */
  constructor(sock) {
    this.sock = sock;
    /** @type {Buffer[]} */
    this.chunks = [];
    this.buffered = 0;
    /** @type {Error | null} */
    this.error = null;
    /** @type {(() => void) | null} */
    this.wake = null;
    this.onData = (/** @type {Buffer} */ b) => { this.chunks.push(b); this.buffered += b.length; this.poke(); };
    this.onEnd = () => { this.error ??= new Error('the server closed the connection during the handshake'); this.poke(); };
    this.onError = (/** @type {Error} */ e) => { this.error ??= e; this.poke(); };
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('error', this.onError);
  }

  poke() {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  /** @param {number} n @returns {Promise<Buffer>} */
  async read(n) {
    while (this.buffered < n) {
      if (this.error) throw this.error;
      await new Promise((resolve) => { this.wake = () => resolve(undefined); });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered = all.length - n;
    return all.subarray(0, n);
  }

  detach() {
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('error', this.onError);
  }
}

/**
 * Negotiates export `name` on `sock` up to transmission phase.
 * @param {import('node:net').Socket} sock
 * @param {string} name
 * @returns {Promise<ExportInfo>}
 */
export async function negotiate(sock, name) {
  const reader = new Reader(sock);
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the NBD handshake took longer than ${HANDSHAKE_TIMEOUT_MS / 1000} s`)), HANDSHAKE_TIMEOUT_MS);
  });
  try {
    const info = await Promise.race([exchange(sock, reader, name), timeout]);
    if (reader.buffered > 0) throw new Error(`the server sent ${reader.buffered} unexpected bytes after the handshake`);
    return info;
  } finally {
    clearTimeout(timer);
    reader.detach();
  }
}

/** @param {import('node:net').Socket} sock @param {Reader} reader @param {string} name */
async function exchange(sock, reader, name) {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > MAX_STRING) throw new Error(`export name longer than ${MAX_STRING} bytes`);
  const hello = await reader.read(18);
  if (hello.readBigUInt64BE(0) !== NBDMAGIC) throw new Error('not an NBD server (bad magic)');
  if (hello.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('the server speaks the oldstyle handshake, which cannot name an export');
  const serverFlags = hello.readUInt16BE(16);
  if (!(serverFlags & FLAG_FIXED_NEWSTYLE)) throw new Error('the server does not support the fixed newstyle handshake');
  const noZeroes = !!(serverFlags & FLAG_NO_ZEROES);
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0));
  sock.write(clientFlags);

  const go = Buffer.alloc(4 + nameBytes.length + 4);
  go.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(go, 4);
  go.writeUInt16BE(1, 4 + nameBytes.length);
  go.writeUInt16BE(INFO.BLOCK_SIZE, 6 + nameBytes.length);
  sock.write(option(OPT.GO, go));

  /** @type {{size: number, flags: number} | null} */
  let exp = null;
  /** @type {ExportInfo['blockSize']} */
  let blockSize = null;
  for (;;) {
    const header = await reader.read(20);
    if (header.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
    const opt = header.readUInt32BE(8);
    const type = header.readUInt32BE(12);
    const length = header.readUInt32BE(16);
    if (opt !== OPT.GO) throw new Error(`reply to option ${opt}, expected NBD_OPT_GO`);
    if (length > 65536) throw new Error(`option reply of ${length} bytes`);
    const data = await reader.read(length);
    if (type === REP.ERR_UNSUP) return exportNameFallback(sock, reader, nameBytes, noZeroes);
    if (type & 0x80000000) throw new Error(refusal(type, name, data));
    if (type === REP.ACK) break;
    if (type !== REP.INFO || length < 2) continue; // other replies carry nothing we need
    const kind = data.readUInt16BE(0);
    if (kind === INFO.EXPORT && length >= 12) exp = { size: Number(data.readBigUInt64BE(2)), flags: data.readUInt16BE(10) };
    if (kind === INFO.BLOCK_SIZE && length >= 14) {
      blockSize = { min: data.readUInt32BE(2), preferred: data.readUInt32BE(6), max: data.readUInt32BE(10) };
    }
  }
  if (!exp) throw new Error('the server acknowledged NBD_OPT_GO without describing the export');
  return { ...exp, blockSize };
}

/** NBD_OPT_EXPORT_NAME: no reply on failure (the server just closes), no block sizes. */
async function exportNameFallback(sock, reader, nameBytes, noZeroes) {
  sock.write(option(OPT.EXPORT_NAME, nameBytes));
  const reply = await reader.read(noZeroes ? 10 : 134);
  return { size: Number(reply.readBigUInt64BE(0)), flags: reply.readUInt16BE(8), blockSize: null };
}

function option(code, data) {
  const b = Buffer.alloc(16 + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(code, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, 16);
  return b;
}

function refusal(type, name, data) {
  const message = data.toString('utf8');
  const why = message ? `: ${message}` : '';
  if (type === REP.ERR_UNKNOWN) return `the server has no export named '${name}'${why}`;
  const known = Object.entries(REP).find(([, v]) => v === type);
  return `the server refused export '${name}' (NBD_REP_${known ? known[0] : `0x${type.toString(16)}`})${why}`;
}
