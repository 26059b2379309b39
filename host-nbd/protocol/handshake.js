// @ts-check
// The fixed newstyle handshake as pure functions: bytes in, values out, and the server's
// messages as Buffers. No sockets here; server/negotiation.js drives the exchange.
//
//   S: NBDMAGIC IHAVEOPT u16 handshake-flags        C: u32 client-flags
//   C: IHAVEOPT u32 option u32 length data           (repeated)
//   S: u64 0x3e889045565a9 u32 option u32 type u32 length data    (option replies)
//   S: u64 size u16 transmission-flags [124 zero bytes]           (NBD_OPT_EXPORT_NAME only)
import {
  NBDMAGIC, IHAVEOPT, OPTION_REPLY_MAGIC, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES,
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, INFO, GREETING_BYTES, OPTION_HEADER_BYTES, MAX_STRING,
} from './constants.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The server's first 18 bytes: both magics and the handshake flags we offer. */
export function greeting() {
  const b = Buffer.alloc(GREETING_BYTES);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  return b;
}

/**
 * The client's 32-bit flags. We offer both flags a client may set; any other bit means the
 * client speaks something we do not, and the spec says to drop the connection.
 * @param {Buffer} b 4 bytes
 * @returns {{ok: true, fixedNewstyle: boolean, noZeroes: boolean} | {ok: false, error: string}}
 */
export function parseClientFlags(b) {
  const flags = b.readUInt32BE(0);
  const known = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;
  if (flags & ~known) return { ok: false, error: `client flags 0x${flags.toString(16)} include unknown bits` };
  return { ok: true, fixedNewstyle: !!(flags & FLAG_C_FIXED_NEWSTYLE), noZeroes: !!(flags & FLAG_C_NO_ZEROES) };
}

/**
 * @param {Buffer} b 16 bytes
 * @returns {{ok: true, option: number, length: number} | {ok: false, error: string}}
 */
export function parseOptionHeader(b) {
  if (b.length < OPTION_HEADER_BYTES) return { ok: false, error: 'short option header' };
  const magic = b.readBigUInt64BE(0);
  if (magic !== IHAVEOPT) return { ok: false, error: `bad option magic 0x${magic.toString(16)}` };
  return { ok: true, option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

/** One option reply: header plus data. @param {number} option @param {number} type @param {Buffer} [data] */
export function optionReply(option, type, data = Buffer.alloc(0)) {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

/** An error reply carries a message for humans (truncated to the spec's string limit). */
export function optionError(option, type, message) {
  return optionReply(option, type, encodeString(message));
}

/** The answer to NBD_OPT_EXPORT_NAME: size, flags, and 124 zeroes unless NO_ZEROES was agreed. */
export function exportNameReply(size, flags, noZeroes) {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

// ---- option data

/** Reads a u32-length-prefixed string; returns [text, next] or an error string. */
function readString(data, at, what) {
  if (at + 4 > data.length) return { error: `${what}: length runs past the option data` };
  const len = data.readUInt32BE(at);
  if (len > data.length - at - 4) return { error: `${what}: ${len} bytes run past the option data` };
  if (len > MAX_STRING) return { error: `${what} is longer than ${MAX_STRING} bytes` };
  let text;
  try { text = utf8.decode(data.subarray(at + 4, at + 4 + len)); } catch { return { error: `${what} is not valid UTF-8` }; }
  if (text.includes('\0')) return { error: `${what} contains a NUL character` };
  return { text, next: at + 4 + len };
}

/**
 * NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, u16 information requests.
 * @param {Buffer} data
 * @returns {{ok: true, name: string, requests: number[]} | {ok: false, error: string}}
 */
export function parseInfoRequest(data) {
  const name = readString(data, 0, 'export name');
  if (name.error !== undefined) return { ok: false, error: name.error };
  let at = /** @type {number} */ (name.next);
  if (at + 2 > data.length) return { ok: false, error: 'missing the number of information requests' };
  const count = data.readUInt16BE(at);
  at += 2;
  if (data.length - at !== count * 2) {
    return { ok: false, error: `${count} information requests need ${count * 2} bytes, got ${data.length - at}` };
  }
  const requests = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(at + 2 * i));
  return { ok: true, name: /** @type {string} */ (name.text), requests };
}

/**
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT: export name, u32 count, queries.
 * @param {Buffer} data
 * @returns {{ok: true, name: string, queries: string[]} | {ok: false, error: string}}
 */
export function parseMetaContextRequest(data) {
  const name = readString(data, 0, 'export name');
  if (name.error !== undefined) return { ok: false, error: name.error };
  let at = /** @type {number} */ (name.next);
  if (at + 4 > data.length) return { ok: false, error: 'missing the number of queries' };
  const count = data.readUInt32BE(at);
  at += 4;
  // Each query needs at least its 4-byte length: refuse counts the data cannot hold before looping.
  if (count > (data.length - at) / 4) return { ok: false, error: `${count} queries do not fit in the option data` };
  const queries = [];
  for (let i = 0; i < count; i++) {
    const q = readString(data, at, `query ${i + 1}`);
    if (q.error !== undefined) return { ok: false, error: q.error };
    queries.push(/** @type {string} */ (q.text));
    at = /** @type {number} */ (q.next);
  }
  if (at !== data.length) return { ok: false, error: `${data.length - at} bytes after the last query` };
  return { ok: true, name: /** @type {string} */ (name.text), queries };
}

// ---- reply data

/** NBD_REP_SERVER: u32 name length, name, then a description for humans. */
export function serverReplyData(name, description) {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

/** NBD_INFO_EXPORT: u16 type, u64 size, u16 transmission flags. */
export function infoExport(size, flags) {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(INFO.EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION: u16 type and a string. */
export function infoString(type, text) {
  const s = encodeString(text);
  const b = Buffer.alloc(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

/** NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum. */
export function infoBlockSize(min, preferred, max) {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max >>> 0, 10);
  return b;
}

/** NBD_REP_META_CONTEXT: u32 context id, name. */
export function metaContextReplyData(id, name) {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

/** UTF-8 bytes of a message, cut at the spec's 4096-byte string limit on a character boundary. */
export function encodeString(text) {
  let b = Buffer.from(text, 'utf8');
  if (b.length <= MAX_STRING) return b;
  let end = MAX_STRING;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}
