// @ts-check
// The transmission phase as pure functions over caller-owned buffers, so the server can pack
// many replies into one socket write without allocating per reply.
//
//   C: u32 0x25609513 u16 flags u16 type u64 cookie u64 offset u32 length [payload]
//   S: u32 0x67446698 u32 error u64 cookie [data]                            simple reply
//   S: u32 0x668e33ef u16 flags u16 type u64 cookie u32 length payload       structured chunk
//
// Cookies ("handles") are opaque: they are kept as two u32 halves and echoed back unchanged.
import {
  REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, REPLY_TYPE, REPLY_FLAG_DONE,
} from './constants.js';
import { encodeString } from './handshake.js';

/** @typedef {{magic:number, flags:number, type:number, cookieHi:number, cookieLo:number, offset:number, length:number}} Request */

/** A blank request record, to be filled by readRequest. @returns {Request} */
export function newRequest() {
  return { magic: 0, flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offset: 0, length: 0 };
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
  out.offset = b.readUInt32BE(at + 16) * 4294967296 + b.readUInt32BE(at + 20);
  out.length = b.readUInt32BE(at + 24);
  return out.magic === REQUEST_MAGIC;
}

/** Encodes a request (clients and tests). @returns {Buffer} 28 bytes */
export function encodeRequest(type, flags, cookie, offset, length) {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(BigInt(cookie), 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
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

/** 20 bytes. @returns {number} the offset after it */
export function writeChunkHeader(b, at, flags, type, cookieHi, cookieLo, length) {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, at);
  b.writeUInt16BE(flags, at + 4);
  b.writeUInt16BE(type, at + 6);
  b.writeUInt32BE(cookieHi, at + 8);
  b.writeUInt32BE(cookieLo, at + 12);
  b.writeUInt32BE(length, at + 16);
  return at + 20;
}

/** NBD_REPLY_TYPE_NONE with DONE: 20 bytes. */
export function writeNoneChunk(b, at, cookieHi, cookieLo) {
  return writeChunkHeader(b, at, REPLY_FLAG_DONE, REPLY_TYPE.NONE, cookieHi, cookieLo, 0);
}

/** Header of an OFFSET_DATA chunk whose `dataLength` bytes follow: 28 bytes. */
export function writeOffsetDataHeader(b, at, done, cookieHi, cookieLo, offset, dataLength) {
  at = writeChunkHeader(b, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_DATA, cookieHi, cookieLo, 8 + dataLength);
  writeU64(b, at, offset);
  return at + 8;
}

/** An OFFSET_HOLE chunk: `size` bytes at `offset` read as zeroes. 32 bytes. */
export function writeOffsetHole(b, at, done, cookieHi, cookieLo, offset, size) {
  at = writeChunkHeader(b, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_HOLE, cookieHi, cookieLo, 12);
  writeU64(b, at, offset);
  b.writeUInt32BE(size, at + 8);
  return at + 12;
}

/** Bytes an error chunk needs (header included), for sizing buffers. */
export function errorChunkBytes(message, withOffset) {
  return 20 + 6 + encodeString(message).length + (withOffset ? 8 : 0);
}

/**
 * NBD_REPLY_TYPE_ERROR, or ERROR_OFFSET when `offset` is given; always the final chunk here.
 * @returns {number} the offset after it
 */
export function writeErrorChunk(b, at, cookieHi, cookieLo, error, message, offset) {
  const msg = encodeString(message);
  const withOffset = offset !== undefined;
  const type = withOffset ? REPLY_TYPE.ERROR_OFFSET : REPLY_TYPE.ERROR;
  at = writeChunkHeader(b, at, REPLY_FLAG_DONE, type, cookieHi, cookieLo, 6 + msg.length + (withOffset ? 8 : 0));
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

/** Bytes a block status chunk of n extents needs (header included). */
export function blockStatusChunkBytes(n) {
  return 20 + 4 + 8 * n;
}

/**
 * NBD_REPLY_TYPE_BLOCK_STATUS for one metadata context.
 * @param {{length:number, flags:number}[]} extents non-empty, lengths > 0 and < 2^32
 */
export function writeBlockStatusChunk(b, at, done, cookieHi, cookieLo, contextId, extents) {
  at = writeChunkHeader(b, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.BLOCK_STATUS, cookieHi, cookieLo, 4 + 8 * extents.length);
  b.writeUInt32BE(contextId, at);
  at += 4;
  for (const e of extents) {
    b.writeUInt32BE(e.length, at);
    b.writeUInt32BE(e.flags, at + 4);
    at += 8;
  }
  return at;
}
