// @ts-check
// NBD client byte streams for the protocol fuzzer: generated from the spec (handshakes with bad
// lengths, unknown and repeated options, commands with bad flags, offsets and lengths at and past
// every limit, truncated packets, garbage) and mutated from a corpus. Nothing here knows the
// server's code; a case is just bytes to send.

const NBDMAGIC_REQ = 0x25609513;
const EXTENDED_REQ = 0x21e41c71;
const PAYLOAD_LEN = 1 << 5;
const IHAVEOPT = Buffer.from('IHAVEOPT');
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, PEEK: 4, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED: 8, LIST_META: 9, SET_META: 10, EXTENDED: 11 };

/** @typedef {() => number} Random */

/** @param {Random} r @param {number} n */
const int = (r, n) => Math.floor(r() * n);
/** @template T @param {Random} r @param {T[]} xs @returns {T} */
const pick = (r, xs) => xs[int(r, xs.length)];

function u32(v) { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; }
function u16(v) { const b = Buffer.alloc(2); b.writeUInt16BE(v & 0xffff); return b; }
function str(s) { const b = Buffer.from(s); return Buffer.concat([u32(b.length), b]); }

/** A length field: mostly the truth, sometimes a lie in either direction. */
function lengthField(r, truth) {
  const x = r();
  if (x < 0.8) return truth;
  return pick(r, [0, truth - 1, truth + 1, truth + 1000, 0x7fffffff, 0xffffffff, int(r, 1 << 20)]) >>> 0;
}

function option(r, opt, data) {
  return Buffer.concat([IHAVEOPT, u32(opt), u32(lengthField(r, data.length)), data]);
}

/** An export name: a real one, the default, unknown, very long, invalid UTF-8, with a NUL. */
function exportName(r, names) {
  return pick(r, [
    () => pick(r, names), () => pick(r, names), () => pick(r, names), () => '', () => 'no-such-export',
    () => 'x'.repeat(pick(r, [4095, 4096, 4097, 70000])), () => '\0disk', () => 'é'.repeat(3),
  ])();
}

function nameBytes(r, names) {
  if (r() < 0.05) return Buffer.from([0xff, 0xfe, 0xc0]); // not UTF-8
  return Buffer.from(exportName(r, names));
}

/** GO / INFO data: name, count, info requests (count sometimes lies). */
function infoData(r, names) {
  const n = nameBytes(r, names);
  const reqs = Array.from({ length: int(r, 4) }, () => pick(r, [0, 1, 2, 3, int(r, 65536)]));
  const count = r() < 0.9 ? reqs.length : int(r, 65536);
  return Buffer.concat([u32(lengthField(r, n.length)), n, u16(count), ...reqs.map(u16)]);
}

function metaData(r, names) {
  const n = nameBytes(r, names);
  const queries = Array.from({ length: int(r, 4) }, () => pick(r, ['base:allocation', 'base:', '', 'qemu:dirty-bitmap:x', 'x'.repeat(5000)]));
  const count = r() < 0.9 ? queries.length : pick(r, [0xffffffff, 1000000, queries.length + 1]);
  return Buffer.concat([u32(lengthField(r, n.length)), n, u32(count), ...queries.map(str)]);
}

/** One random option (known ones mostly well-formed, others anything). */
function anyOption(r, names) {
  const opt = r() < 0.85 ? pick(r, Object.values(OPT)) : pick(r, [0, 12, 99, 0x7fffffff, 0xffffffff, int(r, 1 << 30)]);
  let data;
  switch (opt) {
    case OPT.GO: case OPT.INFO: data = infoData(r, names); break;
    case OPT.LIST_META: case OPT.SET_META: data = metaData(r, names); break;
    case OPT.EXPORT_NAME: data = nameBytes(r, names); break;
    default: data = r() < 0.7 ? Buffer.alloc(0) : randomBytes(r, int(r, 64));
  }
  return option(r, opt, data);
}

export function randomBytes(r, n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

/** Client flags: mostly FIXED_NEWSTYLE (| NO_ZEROES), sometimes none or unknown bits. */
function clientFlags(r) {
  return u32(pick(r, [1, 3, 3, 3, 1, 0, 2, 0x80000003, int(r, 2 ** 32)]));
}

const MAX_U64 = 2n ** 64n - 1n;

/** An offset at or past every limit of an export of `size` bytes. */
function offsetField(r, size) {
  return pick(r, [
    () => 0n, () => BigInt(int(r, size)), () => BigInt(int(r, size / 512)) * 512n, () => BigInt(size),
    () => BigInt(size - 512), () => BigInt(size - 1), () => BigInt(size + 512), () => 2n ** 63n, () => MAX_U64,
    () => MAX_U64 - 511n, () => BigInt(int(r, 2 ** 32)) * 4096n,
  ])();
}

function lengthOf(r) {
  return pick(r, [0, 1, 511, 512, 4096, 4097, 65536, 1 << 20, 32 << 20, (32 << 20) + 1, 0x7fffffff, 0xffffffff, int(r, 200000)]);
}

/** A 64-bit length (extended headers): the 32-bit ones, and past 32 bits up to 2^64 - 1. */
function longLengthOf(r, size) {
  return r() < 0.6 ? BigInt(lengthOf(r)) : pick(r, [2n ** 32n, 2n ** 32n + 512n, BigInt(size), 2n ** 40n, 2n ** 63n, MAX_U64]);
}

/**
 * One transmission-phase request (compact, or extended: 32 bytes, a 64-bit length, PAYLOAD_LEN
 * sometimes set); a WRITE, or a request with PAYLOAD_LEN, carries all, part or none of a payload.
 */
function request(r, size, extended = false) {
  const type = r() < 0.9 ? pick(r, [0, 0, 1, 1, 2, 3, 4, 5, 6, 7]) : pick(r, [8, 9, 11, 255, 0xffff]);
  let flags = r() < 0.7 ? pick(r, [0, 0, 1, 2, 4, 8, 16]) : int(r, 65536);
  if (extended && r() < 0.4) flags |= PAYLOAD_LEN;
  let offset = offsetField(r, size);
  let length = extended ? longLengthOf(r, size) : BigInt(lengthOf(r));
  if (r() < 0.5) { length = BigInt(pick(r, [512, 4096, 1000, 65536])); offset = BigInt(int(r, Math.max(1, size - Number(length)))); }
  const h = Buffer.alloc(extended ? 32 : 28);
  h.writeUInt32BE(r() < 0.97 ? (extended ? EXTENDED_REQ : NBDMAGIC_REQ) : int(r, 2 ** 32), 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(int(r, 2 ** 32)), 8);
  h.writeBigUInt64BE(offset, 16);
  if (extended) h.writeBigUInt64BE(length, 24);
  else h.writeUInt32BE(Number(length) >>> 0, 24);
  const hasPayload = type === 1 || (extended && (flags & PAYLOAD_LEN) !== 0);
  if (!hasPayload) return h;
  // The payload, sometimes only part of it (the connection then ends mid-payload).
  const full = Number(length > 256n * 1024n ? 256n * 1024n : length);
  const sent = r() < 0.85 ? full : int(r, full + 1);
  return Buffer.concat([h, randomBytes(r, Math.min(sent, 4096)), Buffer.alloc(Math.max(0, sent - 4096), 0x5a)]);
}

/**
 * A whole generated session: greeting answer, options, and maybe a transmission phase.
 * @param {Random} r @param {{names: string[], size: number}} target
 */
export function generate(r, target) {
  const parts = [clientFlags(r)];
  const style = r();
  if (style < 0.35) {
    // Haggling only: many options, repeated and unknown ones, then maybe abort.
    for (let i = int(r, 12); i >= 0; i--) parts.push(anyOption(r, target.names));
    if (r() < 0.5) parts.push(option(r, OPT.ABORT, Buffer.alloc(0)));
  } else {
    // Get into transmission (usually), then requests: compact, or extended after EXTENDED_HEADERS.
    const extended = r() < 0.25;
    if (extended) parts.push(Buffer.concat([IHAVEOPT, u32(OPT.EXTENDED), u32(0)]));
    if (r() < 0.5) parts.push(option(r, OPT.STRUCTURED, Buffer.alloc(0)));
    if (r() < 0.3) parts.push(option(r, OPT.SET_META, Buffer.concat([str(pick(r, target.names)), u32(1), str('base:allocation')])));
    for (let i = int(r, 3); i > 0; i--) parts.push(anyOption(r, target.names));
    const name = Buffer.from(r() < 0.9 ? pick(r, target.names) : exportName(r, target.names));
    if (r() < 0.2) parts.push(Buffer.concat([IHAVEOPT, u32(OPT.EXPORT_NAME), u32(name.length), name]));
    else parts.push(Buffer.concat([IHAVEOPT, u32(OPT.GO), u32(name.length + 6), u32(name.length), name, u16(0)]));
    for (let i = 1 + int(r, 40); i > 0; i--) parts.push(request(r, target.size, extended));
    if (r() < 0.3) parts.push(request(r, target.size, extended).fill(0, 4, 8)); // DISC-ish with garbage flags
  }
  let bytes = Buffer.concat(parts);
  if (r() < 0.15) bytes = bytes.subarray(0, int(r, bytes.length + 1)); // truncated
  if (r() < 0.05) bytes = randomBytes(r, int(r, 300)); // plain garbage
  return bytes;
}

/** Mutates a corpus entry: bit flips, interesting values, cuts, duplications, splices. */
export function mutate(r, input, other) {
  let b = Buffer.from(input);
  for (let n = 1 + int(r, 4); n > 0; n--) {
    if (b.length === 0) b = randomBytes(r, 16);
    const at = int(r, b.length);
    switch (int(r, 8)) {
      case 0: b[at] ^= 1 << int(r, 8); break;
      case 1: b[at] = pick(r, [0, 0xff, 0x7f, 0x80, 1]); break;
      case 2: if (at + 4 <= b.length) b.writeUInt32BE(pick(r, [0, 0xffffffff, 0x7fffffff, 0x80000000, 512, 0x2000000]), at); break;
      case 3: b = b.subarray(0, at); break;
      case 4: { const end = Math.min(b.length, at + 1 + int(r, 64)); b = Buffer.concat([b, b.subarray(at, end)]); break; }
      case 5: { const end = Math.min(b.length, at + 1 + int(r, 64)); b = Buffer.concat([b.subarray(0, at), b.subarray(end)]); break; }
      case 6: b = Buffer.concat([b.subarray(0, at), other.subarray(int(r, Math.max(1, other.length)))]); break;
      default: b = Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + int(r, 16)), b.subarray(at)]);
    }
  }
  return b.subarray(0, 1 << 20);
}
