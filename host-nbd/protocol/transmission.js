// @ts-check
// The transmission phase as pure functions over caller-owned buffers, so the server can pack
// many replies into one socket write without allocating per reply.
//
//   C: u32 0x25609513 u16 flags u16 type u64 cookie u64 offset u32 length [payload]
//   S: u32 0x67446698 u32 error u64 cookie [data]                            simple reply
//   S: u32 0x668e33ef u16 flags u16 type u64 cookie u32 length payload       structured chunk
// With extended headers (NBD_OPT_EXTENDED_HEADERS) both directions use 32-byte headers:
//   C: u32 0x21e41c71 u16 flags u16 type u64 cookie u64 offset u64 length [payload if PAYLOAD_LEN]
//   S: u32 0x6e8a278c u16 flags u16 type u64 cookie u64 offset u64 length payload   every reply
//
// Cookies ("handles") are opaque: they are kept as two u32 halves and echoed back unchanged, and
// so is a request's offset in an extended reply (`ext`, the request answered: its raw halves).
import {
  REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, REPLY_TYPE, REPLY_FLAG_DONE,
  EXTENDED_REQUEST_MAGIC, EXTENDED_REPLY_MAGIC,
} from './constants.js';
import { encodeString } from './handshake.js';

/** @typedef {{magic:number, flags:number, type:number, cookieHi:number, cookieLo:number, offsetHi:number, offsetLo:number, offset:number, length:number}} Request */
/** The request an extended reply answers: its offset, as sent. @typedef {{offsetHi:number, offsetLo:number}} Echo */

/** A blank request record, to be filled by readRequest. @returns {Request} */
export function newRequest() {
  return { magic: 0, flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offsetHi: 0, offsetLo: 0, offset: 0, length: 0 };
}

/**
 * Decodes the 28-byte request header at `at` into `out`. Offsets past 2^53 lose precision
 * but stay past the end of any export, which is all the server needs to know about them.
 * @param {Buffer} b @param {number} at @param {Request} out
 * @returns {boolean} whether the magic is right (if not, the stream cannot be trusted)
 */
export function readRequest(b, at, out) {
  out.magic = b.readUInt32BE(at);
  out.flags = b.readUInt16BE(at + 4);
  out.type = b.readUInt16BE(at + 6);
  out.cookieHi = b.readUInt32BE(at + 8);
  out.cookieLo = b.readUInt32BE(at + 12);
  out.offsetHi = b.readUInt32BE(at + 16);
  out.offsetLo = b.readUInt32BE(at + 20);
  out.offset = out.offsetHi * 4294967296 + out.offsetLo;
  out.length = b.readUInt32BE(at + 24);
  return out.magic === REQUEST_MAGIC;
}

/**
 * Decodes the 32-byte extended request header at `at` into `out`. A length past 2^53 loses
 * precision the same way an offset does: it stays larger than any export or payload limit.
 * @param {Buffer} b @param {number} at @param {Request} out
 * @returns {boolean} whether the magic is right
 */
export function readExtendedRequest(b, at, out) {
  readRequest(b, at, out);
  out.length = b.readUInt32BE(at + 24) * 4294967296 + b.readUInt32BE(at + 28);
  return out.magic === EXTENDED_REQUEST_MAGIC;
}

/** Encodes a request (clients and tests). @returns {Buffer} 28 bytes, or 32 when extended */
export function encodeRequest(type, flags, cookie, offset, length, extended = false) {
  const b = Buffer.alloc(extended ? 32 : 28);
  b.writeUInt32BE(extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(BigInt(cookie), 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  if (extended) b.writeBigUInt64BE(BigInt(length), 24);
  else b.writeUInt32BE(length, 24);
  return b;
}

function writeU64(b, at, value) {
  b.writeUInt32BE(Math.floor(value / 4294967296), at);
  b.writeUInt32BE(value >>> 0, at + 4);
}

/** 16 bytes. @returns {number} the offset after it */
export function writeSimpleReply(b, at, error, cookieHi, cookieLo) {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, at);
  b.writeUInt32BE(error, at + 4);
  b.writeUInt32BE(cookieHi, at + 8);
  b.writeUInt32BE(cookieLo, at + 12);
  return at + 16;
}

/** Bytes of a chunk header: structured (20), or extended (32) when `ext` is given. @param {Echo} [ext] */
export function chunkHeaderBytes(ext) {
  return ext ? 32 : 20;
}

/**
 * A reply chunk's header: structured, or extended when `ext` (the request it answers) is given.
 * @param {Echo} [ext] @returns {number} the offset after it
 */
export function writeChunkHeader(b, at, flags, type, cookieHi, cookieLo, length, ext) {
  b.writeUInt32BE(ext ? EXTENDED_REPLY_MAGIC : STRUCTURED_REPLY_MAGIC, at);
  b.writeUInt16BE(flags, at + 4);
  b.writeUInt16BE(type, at + 6);
  b.writeUInt32BE(cookieHi, at + 8);
  b.writeUInt32BE(cookieLo, at + 12);
  if (!ext) {
    b.writeUInt32BE(length, at + 16);
    return at + 20;
  }
  b.writeUInt32BE(ext.offsetHi, at + 16);
  b.writeUInt32BE(ext.offsetLo, at + 20);
  writeU64(b, at + 24, length);
  return at + 32;
}

/** NBD_REPLY_TYPE_NONE with DONE. @param {Echo} [ext] */
export function writeNoneChunk(b, at, cookieHi, cookieLo, ext) {
  return writeChunkHeader(b, at, REPLY_FLAG_DONE, REPLY_TYPE.NONE, cookieHi, cookieLo, 0, ext);
}

/** Header of an OFFSET_DATA chunk whose `dataLength` bytes follow (header + 8). @param {Echo} [ext] */
export function writeOffsetDataHeader(b, at, done, cookieHi, cookieLo, offset, dataLength, ext) {
  at = writeChunkHeader(b, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_DATA, cookieHi, cookieLo, 8 + dataLength, ext);
  writeU64(b, at, offset);
  return at + 8;
}

/** An OFFSET_HOLE chunk: `size` bytes at `offset` read as zeroes (header + 12). @param {Echo} [ext] */
export function writeOffsetHole(b, at, done, cookieHi, cookieLo, offset, size, ext) {
  at = writeChunkHeader(b, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_HOLE, cookieHi, cookieLo, 12, ext);
  writeU64(b, at, offset);
  b.writeUInt32BE(size, at + 8);
  return at + 12;
}

/** Bytes an error chunk needs (header included), for sizing buffers. @param {Echo} [ext] */
export function errorChunkBytes(message, withOffset, ext) {
  return chunkHeaderBytes(ext) + 6 + encodeString(message).length + (withOffset ? 8 : 0);
}

/**
 * NBD_REPLY_TYPE_ERROR, or ERROR_OFFSET when `offset` is given; always the final chunk here.
 * @param {number} [offset] @param {Echo} [ext] @returns {number} the offset after it
 */
export function writeErrorChunk(b, at, cookieHi, cookieLo, error, message, offset, ext) {
  const msg = encodeString(message);
  const withOffset = offset !== undefined;
  const type = withOffset ? REPLY_TYPE.ERROR_OFFSET : REPLY_TYPE.ERROR;
  at = writeChunkHeader(b, at, REPLY_FLAG_DONE, type, cookieHi, cookieLo, 6 + msg.length + (withOffset ? 8 : 0), ext);
  b.writeUInt32BE(error, at);
  b.writeUInt16BE(msg.length, at + 4);
  msg.copy(b, at + 6);
  at += 6 + msg.length;
  if (withOffset) {
    writeU64(b, at, /** @type {number} */ (offset));
    at += 8;
  }
  return at;
}

/** Bytes a block status chunk of n extents needs (header included). @param {Echo} [ext] */
export function blockStatusChunkBytes(n, ext) {
  return ext ? 32 + 8 + 16 * n : 20 + 4 + 8 * n;
}

/**
 * The extents of one metadata context: NBD_REPLY_TYPE_BLOCK_STATUS (lengths below 2^32), or
 * with extended headers BLOCK_STATUS_EXT (64-bit lengths, and the descriptor count filled in).
 * @param {{length:number, flags:number}[]} extents non-empty, lengths > 0
 * @param {Echo} [ext]
 */
export function writeBlockStatusChunk(b, at, done, cookieHi, cookieLo, contextId, extents, ext) {
  const flags = done ? REPLY_FLAG_DONE : 0;
  if (ext) {
    at = writeChunkHeader(b, at, flags, REPLY_TYPE.BLOCK_STATUS_EXT, cookieHi, cookieLo, 8 + 16 * extents.length, ext);
    b.writeUInt32BE(contextId, at);
    b.writeUInt32BE(extents.length, at + 4);
    at += 8;
    for (const e of extents) {
      writeU64(b, at, e.length);
      b.writeUInt32BE(0, at + 8);
      b.writeUInt32BE(e.flags, at + 12);
      at += 16;
    }
    return at;
  }
  at = writeChunkHeader(b, at, flags, REPLY_TYPE.BLOCK_STATUS, cookieHi, cookieLo, 4 + 8 * extents.length);
  b.writeUInt32BE(contextId, at);
  at += 4;
  for (const e of extents) {
    b.writeUInt32BE(e.length, at);
    b.writeUInt32BE(e.flags, at + 4);
    at += 8;
  }
  return at;
}
