// @ts-check
// The persistent exception store (P, PO) of the model, laid out on the COW device exactly as
// Linux's dm-snap-persistent.c lays it out. Written from the kernel's rules, not from the core.
//
// On disk (little-endian; a chunk is chunkSize sectors):
//   chunk 0: header  u32 magic 0x70416e53, u32 valid, u32 version = 1, u32 chunk_size, zeroes
//   metadata area a at chunk 1 + a * (epa + 1), epa = chunk bytes / 16 entries of
//     {u64 old_chunk, u64 new_chunk}; the table ends at the first entry with new_chunk == 0;
//     each area is followed by its epa data chunks.
// Allocation starts at chunk 2 and steps over metadata chunks. As in the kernel, a commit
// writes the area only when no other allocated exception is still in flight (pending count
// zero) or the area is full; the commits waiting for that write learn its outcome together. An
// invalid store still fills its in-memory area (and zeroes the next area when it fills) but
// never writes the area.
import { SECTOR, getU64, setU64 } from '../blockdev.js';

const MAGIC = 0x70416e53;
const VERSION = 1;
const DEFAULT_CHUNK = 32;

/** Linux's dm_exception_store_set_chunk_size checks; null or the reason. */
export function chunkSizeProblem(/** @type {number} */ cs) {
  if (cs <= 0 || (cs & (cs - 1)) !== 0) return 'chunk size is not a power of 2';
  if (cs > 0x7fffffff >> 9) return 'chunk size is too high';
  return null;
}

export class PersistentStore {
  /** @param {import('../blockdev.js').BlockDev} cow @param {number} chunkSize 0: default @param {boolean} overflow PO */
  constructor(cow, chunkSize, overflow) {
    this.cow = cow;
    this.chunkSize = chunkSize;
    this.overflow = overflow;
    this.valid = true;
    this.epa = 0;
    this.currentArea = 0;
    this.committed = 0;
    this.nextFree = 2;
    /** exceptions allocated and not yet committed (ps->pending_count) */
    this.pendingCount = 0;
    /** @type {Array<(ok: boolean) => void>} commits waiting for the next area write */
    this.callbacks = [];
    /** the current metadata area, in memory */
    this.area = new Uint8Array(0);
  }

  setChunkSize(/** @type {number} */ cs) {
    this.chunkSize = cs;
    this.epa = (cs * SECTOR) / 16;
    this.area = new Uint8Array(cs * SECTOR);
  }

  areaLocation(/** @type {number} */ a) { return 1 + a * (this.epa + 1); }

  /** Chunk I/O on the COW device; false when it failed (e.g. past its end). */
  writeChunk(/** @type {number} */ chunk, /** @type {Uint8Array} */ bytes) {
    return this.cow.io('write', chunk * this.chunkSize, this.chunkSize, bytes).errno === null;
  }

  readChunk(/** @type {number} */ chunk) {
    const r = this.cow.io('read', chunk * this.chunkSize, this.chunkSize);
    return r.errno ? null : /** @type {Uint8Array} */ (r.data);
  }

  writeHeader() {
    const h = new Uint8Array(this.chunkSize * SECTOR);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, this.valid ? 1 : 0, true);
    dv.setUint32(8, VERSION, true);
    dv.setUint32(12, this.chunkSize, true);
    return this.writeChunk(0, h);
  }

  /**
   * Table load: a zeroed COW device becomes a new snapshot (header, then area 0 zeroed);
   * otherwise the header is checked and every area read until one is not full.
   * @param {(oldChunk: number, newChunk: number) => void} add
   * @returns {{errno: string, why: string} | {invalid: boolean}}
   */
  readMetadata(add) {
    if (this.chunkSize === 0) this.chunkSize = DEFAULT_CHUNK;
    this.setChunkSize(this.chunkSize);
    const header = this.readChunk(0);
    if (!header) return { errno: 'EIO', why: 'cannot read the header' };
    const dv = new DataView(header.buffer, header.byteOffset);
    const magic = dv.getUint32(0, true);
    if (magic === 0) {
      if (!this.writeHeader()) return { errno: 'EIO', why: 'cannot write the header' };
      if (!this.writeChunk(1, new Uint8Array(this.chunkSize * SECTOR))) return { errno: 'EIO', why: 'cannot zero area 0' };
      return { invalid: false };
    }
    if (magic !== MAGIC) return { errno: 'ENXIO', why: 'invalid or corrupt snapshot' };
    this.valid = dv.getUint32(4, true) !== 0;
    const version = dv.getUint32(8, true);
    const cs = dv.getUint32(12, true);
    if (cs !== this.chunkSize) {
      const bad = chunkSizeProblem(cs);
      if (bad) return { errno: 'EINVAL', why: `header: ${bad}` };
      this.setChunkSize(cs);
    }
    if (version !== VERSION) return { errno: 'EINVAL', why: `unable to handle snapshot disk version ${version}` };
    if (!this.valid) return { invalid: true };
    for (let a = 0; ; a++) {
      const area = this.readChunk(this.areaLocation(a));
      if (!area) return { errno: 'EIO', why: `cannot read metadata area ${a}` };
      let full = true;
      for (let i = 0; i < this.epa; i++) {
        const oldChunk = getU64(area, i * 16), newChunk = getU64(area, i * 16 + 8);
        if (newChunk === 0) {
          this.committed = i;
          full = false;
          break;
        }
        if (this.nextFree <= newChunk) this.nextFree = newChunk + 1;
        add(oldChunk, newChunk);
      }
      if (!full) {
        this.area = area.slice();
        this.currentArea = a;
        break;
      }
    }
    this.skipMetadata();
    return { invalid: false };
  }

  skipMetadata() {
    if (this.nextFree % (this.epa + 1) === 1) this.nextFree++;
  }

  /** A new COW chunk for an exception, or null when the COW device is full. */
  prepare() {
    if (this.cow.size() < (this.nextFree + 1) * this.chunkSize) return null;
    const chunk = this.nextFree;
    this.nextFree++;
    this.skipMetadata();
    this.pendingCount++;
    return chunk;
  }

  /**
   * persistent_commit_exception: the entry goes into the area; unless copies are still in flight
   * and the area has room, a full area gets the next one zeroed on disk, the area is written
   * (if the store is valid) and every waiting commit learns whether the store is still valid.
   * @param {number} oldChunk @param {number} newChunk @param {(ok: boolean) => void} done
   */
  commit(oldChunk, newChunk, done) {
    setU64(this.area, this.committed * 16, oldChunk);
    setU64(this.area, this.committed * 16 + 8, newChunk);
    this.committed++;
    this.callbacks.push(done);
    this.pendingCount--;
    const full = this.committed === this.epa;
    if (this.pendingCount > 0 && !full) return;
    if (full && !this.writeChunk(this.areaLocation(this.currentArea + 1), new Uint8Array(this.chunkSize * SECTOR))) {
      this.valid = false;
    }
    if (this.valid && !this.writeChunk(this.areaLocation(this.currentArea), this.area)) this.valid = false;
    if (full) {
      this.committed = 0;
      this.currentArea++;
      this.area = new Uint8Array(this.chunkSize * SECTOR);
    }
    const waiting = this.callbacks;
    this.callbacks = [];
    for (const cb of waiting) cb(this.valid);
  }

  /** The snapshot became invalid: so does the header. */
  drop() {
    this.valid = false;
    this.writeHeader();
  }

  /** [sectors allocated, COW sectors, metadata sectors] */
  usage() {
    return [this.nextFree * this.chunkSize, this.cow.size(), (this.currentArea + 2) * this.chunkSize];
  }

  tableArgs() { return `${this.overflow ? 'PO' : 'P'} ${this.chunkSize}`; }

  /**
   * The last run of exceptions to merge back: {oldChunk, newChunk} of the last entry and how
   * many entries before it are consecutive in both; null when none is left.
   */
  prepareMerge() {
    if (this.committed === 0) {
      if (this.currentArea === 0) return null;
      this.currentArea--;
      const area = this.readChunk(this.areaLocation(this.currentArea));
      if (!area) throw new Error('model: cannot read a metadata area back for the merge');
      this.area = area.slice();
      this.committed = this.epa;
    }
    const entry = (/** @type {number} */ i) => [getU64(this.area, i * 16), getU64(this.area, i * 16 + 8)];
    const [lastOld, lastNew] = entry(this.committed - 1);
    let n = 1;
    for (; n < this.committed; n++) {
      const [o, w] = entry(this.committed - 1 - n);
      if (o !== lastOld - n || w !== lastNew - n) break;
    }
    return { oldChunk: lastOld, newChunk: lastNew, count: n };
  }

  /** The last `count` entries were copied back: clear them and write the area. */
  commitMerge(/** @type {number} */ count) {
    for (let i = 0; i < count; i++) this.area.fill(0, (this.committed - 1 - i) * 16, (this.committed - i) * 16);
    if (!this.writeChunk(this.areaLocation(this.currentArea), this.area)) throw new Error('model: cannot write a merged area');
    this.committed -= count;
    this.nextFree = this.areaLocation(this.currentArea) + this.committed + 1;
  }
}
