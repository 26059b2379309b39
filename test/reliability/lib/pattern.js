// @ts-check
// Self-describing sector contents for verified I/O: each 512-byte sector written by a test names
// the sector it was meant for and the write that put it there, and the rest of it is derived
// from both. Reading a sector back tells exactly which write (if any) it holds, and whether it
// was corrupted, torn or put at the wrong place.
//
//   bytes 0-3   "DMKR"
//   bytes 4-11  sector number (u64 LE) the data was written to
//   bytes 12-15 write id (u32 LE); 0 is the content a test starts from
//   bytes 16-511 xorshift32 stream seeded from (sector, write id)
// A sector of zeroes (a sparse image never written) reads as the id ZERO_ID.
export const SECTOR = 512;
export const ZERO_ID = 0xffffffff;
const MAGIC = 0x524b4d44; // "DMKR" little-endian

function seedOf(sector, id) {
  let s = (Math.imul(sector >>> 0, 0x9e3779b1) ^ Math.imul(id + 1, 0x85ebca6b) ^ Math.floor(sector / 2 ** 32)) >>> 0;
  return s || 0x1234567;
}

/** Writes the sector pattern of (sector, id) at buf[at...at+512). @param {Buffer} buf */
export function fillSector(buf, at, sector, id) {
  buf.writeUInt32LE(MAGIC, at);
  buf.writeUInt32LE(sector >>> 0, at + 4);
  buf.writeUInt32LE(Math.floor(sector / 2 ** 32), at + 8);
  buf.writeUInt32LE(id, at + 12);
  let s = seedOf(sector, id);
  for (let i = 16; i < SECTOR; i += 4) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    buf.writeUInt32LE(s, at + i);
  }
}

/** `count` sectors from `first`, all written by write `id`. */
export function sectorsOf(first, count, id) {
  const b = Buffer.allocUnsafe(count * SECTOR);
  for (let i = 0; i < count; i++) fillSector(b, i * SECTOR, first + i, id);
  return b;
}

/**
 * Which write a sector holds: the id (ZERO_ID for zeroes), or a string saying what is wrong.
 * @param {Buffer} buf @param {number} at @param {number} sector
 * @returns {number | string}
 */
export function decodeSector(buf, at, sector) {
  if (buf.readUInt32LE(at) !== MAGIC) {
    const zero = buf.subarray(at, at + SECTOR).every((x) => x === 0);
    return zero ? ZERO_ID : 'garbage (no pattern header)';
  }
  const where = buf.readUInt32LE(at + 4) + buf.readUInt32LE(at + 8) * 2 ** 32;
  const id = buf.readUInt32LE(at + 12);
  if (where !== sector) return `data of sector ${where} (write ${id}) found at sector ${sector}`;
  let s = seedOf(sector, id);
  for (let i = 16; i < SECTOR; i += 4) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    if (buf.readUInt32LE(at + i) !== s) return `write ${id} corrupted at byte ${i}`;
  }
  return id;
}
