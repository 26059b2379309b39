// @ts-check
// A mapped device seen as an NBD export: byte offsets become sector requests to the core.
//
// Aligned requests go straight through, their payload already in core memory. Unaligned reads
// are widened to whole sectors. Unaligned writes are read-modify-written: the partial edge
// sectors are read, patched and written back with the rest, under an exclusive range lock;
// aligned writes hold their range shared, so they only ever wait for a read-modify-write they
// overlap (the scheme of dm-ebs and nbdkit's blocksize filter).
//
// Callers validate ranges against size() and the read-only flag first (server/requests.js);
// errors come back as NbdError with a message naming the request.
import { OP, FLAG, ERRNO, errnoName } from '../../core-as/js/dmcore.js';
import { RangeLocks } from './range-lock.js';
import { NbdError, nbdErrnoOf } from '../protocol/errors.js';
import { NBD_ERR } from '../protocol/constants.js';
import { IO, IO_RECORD, IO_PIECE, PIECE } from '../server/receive-threads.js';
import { OriginMarks } from './origin-marks.js';

const SECTOR = 512;
/**
 * Targets that hand a read's bytes over exactly as their backing files hold them. Only tables
 * made of these, straight onto files, may send reads from the files to the socket (others change
 * the data). The snapshot targets qualify because a read sent from the files counts as running
 * until the socket took its bytes (Engine.submitFileRead): a copy-out of a chunk that a snapshot
 * read is still reading from the origin waits for it, as it waits for a pread.
 */
const PASS_THROUGH = new Set(['linear', 'striped', 'snapshot-origin', 'snapshot', 'snapshot-merge']);
/** Largest READ / WRITE / CACHE we take (and advertise): the spec's portable maximum. */
export const MAX_REQUEST = 32 << 20;
/** Zero-filled writes (NO_HOLE, targets without write-zeroes) go in pieces of this size. */
const ZERO_WRITE_BYTES = 1 << 20;
/** The most sectors one DISCARD / WRITE_ZEROES goes to the core with (its count is a u32). */
const RANGE_SECTORS_MAX = 2 ** 31;

/** @typedef {(error: NbdError | null) => void} Done */

function ioError(status, what, detail) {
  return new NbdError(nbdErrnoOf(status), `${what} failed: ${detail || errnoName(status)}`);
}

/** The backing device names a PASS_THROUGH table line uses. @param {{target: string, args: string[]}} seg */
function devicesOf(seg) {
  switch (seg.target) {
    case 'linear': case 'snapshot-origin': return [seg.args[0]];
    case 'snapshot': case 'snapshot-merge': return [seg.args[0], seg.args[1]]; // origin, COW
    default: return seg.args.slice(2).filter((_, i) => i % 2 === 0); // striped: #stripes chunk (dev offset)...
  }
}

export class DeviceExport {
  /**
   * @param {import('./engine.js').Engine} engine
   * @param {import('./allocation.js').AllocationMap} allocation
   * @param {string} name mapped device name
   * @param {{readOnly?: boolean, description?: string, writeMap?: import('../server/receive-threads.js').NativeWriteMap | null}} [opts]
   *   writeMap: where connections' receive threads may write by themselves (publishWrites)
   */
  constructor(engine, allocation, name, opts = {}) {
    this.engine = engine;
    this.core = engine.core;
    this.allocation = allocation;
    this.name = name;
    this.id = this.core.findDevice(name);
    this.description = opts.description ?? `dmkit mapped device ${name}`;
    this.readOnly = !!opts.readOnly;
    this.locks = new RangeLocks();
    /** NBD requests started or refused on this export, all connections (`dmkit exports`). */
    this.started = 0;
    /** READs whose bytes went from the backing files straight to a socket (readToSink). */
    this.sentFromFiles = 0;
    /** WRITEs and READs a connection's receive thread did by itself (threadIoDone). */
    this.writtenByThreads = 0;
    this.readByThreads = 0;
    this.bytes = 0;
    this.writeMap = opts.writeMap ?? null;
    /** Origin chunks threads may write (publishWrites); null when nothing is guarded. @type {OriginMarks | null} */
    this.originMarks = null;
    /** The live table has snapshot-origin segments (republished around every resume: registry.js). */
    this.hasOrigins = false;
    /** The write map holds something: a connection's receive thread could read or write (publishWrites). */
    this.threadMapped = false;
    /** The write map is published now (threadMapped says it has been since the last resume). */
    this.published = false;
    /** Suspends waiting for the receive threads' writes to be accounted for (withdrawWrites). */
    this.writeWaiters = /** @type {Array<() => void>} */ ([]);
    this.refresh();
  }

  /** Re-reads the size after the live table changed (resume), and where threads may write. */
  refresh() {
    this.bytes = Number(this.core.deviceSize(this.id)) * SECTOR;
    this.filesOnly = this.passesFilesThrough();
    this.publishWrites();
  }

  /**
   * Publishes where receive threads may do plain reads and writes by themselves
   * (receive-threads.js): each `linear` segment straight onto an image file, each `striped` one
   * whose stripes are all image files, and each `snapshot-origin` one onto an image file (writes
   * there only over chunks every snapshot has copied: origin-marks.js), while the device is
   * live; writes only where neither the export nor the file is read-only. The thread does what
   * the core's mapping would have asked for (a pread or pwrite at the remapped offset; for a
   * striped request one per chunk, on its stripe's file, a stripe's consecutive rows in one
   * call); the rest, and everything while suspended, goes through the core.
   */
  publishWrites() {
    const map = this.writeMap;
    if (!map) return;
    let segs;
    try { segs = this.allocation.segments(this.name); } catch { segs = []; }
    const origins = segs.filter((seg) => seg.target === 'snapshot-origin');
    this.hasOrigins = origins.length > 0;
    const live = this.core.info(this.id).state === 'ACTIVE';
    const marks = live && this.hasOrigins ? OriginMarks.of(this.core, this.id, origins, map, this.bytes) : null;
    this.originMarks = marks;
    const extents = live ? this.writeExtents(segs, marks !== null) : [];
    if (extents.length > 0) map.publish(extents, marks?.publication());
    else map.withdraw();
    this.threadMapped = extents.length > 0;
    this.published = extents.length > 0;
  }

  /**
   * @param {Array<{start: number, length: number, target: string, args: string[]}>} segs the live table
   * @param {boolean} guardOrigins snapshot-origin segments are written only over marked chunks
   * @returns {number[][]} per linear or snapshot-origin segment onto a file, or per stripe of a
   *   striped segment onto files: [start, end, fd, filePos, backing id, writable (1/0), chunk,
   *   stripes, stripe, guarded (1/0)] (bytes; chunk 0, stripes 1 for linear)
   */
  writeExtents(segs, guardOrigins) {
    const out = [];
    /** @param {number} start @param {number} end @param {number[]} f fileExtent's @param {number[]} stripe chunk, stripes, stripe */
    const add = (start, end, f, stripe, guarded = false) => {
      // A file threads may write: every FLUSH syncs it (file-backing.js).
      if (f[3]) /** @type {import('./file-backing.js').FileBacking} */ (this.engine.files[f[2]]).threadWritable = true;
      out.push([start, end, ...f, ...stripe, guarded ? 1 : 0]);
    };
    for (const seg of segs) {
      const start = seg.start * SECTOR, end = (seg.start + seg.length) * SECTOR;
      if (seg.target === 'linear') {
        const f = this.fileExtent(seg.args[0], seg.args[1]);
        if (f) add(start, end, f, [0, 1, 0]);
      } else if (seg.target === 'striped') {
        const stripes = Number(seg.args[0]), chunk = Number(seg.args[1]) * SECTOR;
        const files = [];
        for (let i = 0; i < stripes; i++) files.push(this.fileExtent(seg.args[2 + 2 * i], seg.args[3 + 2 * i]));
        if (files.every(Boolean)) files.forEach((f, i) => add(start, end, /** @type {number[]} */ (f), [chunk, stripes, i]));
      } else if (seg.target === 'snapshot-origin') {
        // Sector for sector from sector 0, as the kernel's origin target maps.
        const f = this.fileExtent(seg.args[0], String(seg.start));
        if (f) add(start, end, f, [0, 1, 0], guardOrigins);
      }
    }
    return out;
  }

  /**
   * [fd, filePos, backing id, writable (1/0)] for a table's `<dev> <offset>` naming an open image
   * file (not a mapped device), else null.
   * @param {string} dev @param {string} offset in sectors
   */
  fileExtent(dev, offset) {
    if (dev === undefined || this.allocation.isDevice(dev)) return null;
    const tag = this.engine.backingIdOf(dev);
    const file = tag === undefined ? undefined : this.engine.files[tag];
    if (!file || file.closed) return null;
    return [file.fd, Number(offset) * SECTOR, /** @type {number} */ (tag), !this.readOnly && !file.readOnly ? 1 : 0];
  }

  /**
   * Stops receive threads writing this device by themselves; resolves once every write they did
   * is accounted for (threadIoDone), so that a suspend holds all of the device's I/O.
   * @returns {Promise<void>}
   */
  withdrawWrites() {
    const map = this.writeMap;
    if (!map) return Promise.resolve();
    map.withdraw();
    this.published = false;
    if (map.inflight() === 0) return Promise.resolve();
    return new Promise((resolve) => this.writeWaiters.push(resolve));
  }

  /** No receive thread may take a request of this device by itself, and none it took is unaccounted for. */
  threadsIdle() {
    return !this.writeMap || (!this.published && this.writeMap.inflight() === 0);
  }

  /**
   * Requests a receive thread did on this device (IO_RECORD numbers each): for a write, what a
   * write through the engine does to each file it wrote (the flush and allocation bookkeeping,
   * the error log): one, or each of its pieces (records.pieces); then the map's count, one per
   * request.
   * @param {Float64Array & {pieces?: Float64Array}} records
   */
  threadIoDone(records) {
    let n = 0, p = 0;
    const pieces = /** @type {Float64Array} */ (records.pieces); // there when a record has PIECES
    for (let i = 0; i < records.length; i += IO_RECORD, n++) {
      if (records[i + IO.IS_READ]) { this.readByThreads++; continue; }
      this.writtenByThreads++;
      const k = records[i + IO.PIECES];
      if (k === 0) this.threadWrote(records[i + IO.TAG], records[i + IO.FILE_POS], records[i + IO.LENGTH], records[i + IO.ERRNO]);
      for (const end = p + k * IO_PIECE; p < end; p += IO_PIECE) {
        this.threadWrote(pieces[p + PIECE.TAG], pieces[p + PIECE.FILE_POS], pieces[p + PIECE.LENGTH], pieces[p + PIECE.ERRNO]);
      }
    }
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.writeMap);
    map.release(n);
    if (this.writeWaiters.length > 0 && map.inflight() === 0) {
      const waiters = this.writeWaiters;
      this.writeWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** A receive thread's pwrite of `length` bytes at `pos` of file `tag` (errno 0: it succeeded). */
  threadWrote(tag, pos, length, errno) {
    const file = this.engine.files[tag];
    if (!file) return;
    file.written.mark(pos, length);
    file.threadWriteHeard();
    if (errno) this.engine.logIoError(file, Object.assign(new Error(`write of ${length} bytes at ${pos}`), { code: errnoName(errno) }), errno);
  }

  /** Whether every target of the live table is pass-through onto backing files (not devices). */
  passesFilesThrough() {
    let segs;
    try { segs = this.allocation.segments(this.name); } catch { return false; }
    return segs.length > 0 && segs.every((seg) => PASS_THROUGH.has(seg.target) && devicesOf(seg).every((dev) =>
      !this.allocation.isDevice(dev) && this.engine.fileByPath(dev) !== undefined));
  }

  /**
   * Whether a read may go from the files to the client (readToSink): whole sectors of a
   * pass-through device; with `holes` (structured replies) only where no part is known to read
   * as zeroes, which the reply would otherwise send as a hole.
   */
  canReadToSink(offset, length, holes) {
    if (!this.filesOnly || offset % SECTOR !== 0 || length % SECTOR !== 0 || length === 0) return false;
    if (!holes) return true;
    const ext = this.allocation.extents(this.name, offset, length, 2);
    return ext.length === 1 && ext[0].flags === 0;
  }

  /**
   * read() whose bytes may never enter core memory: when the core maps it onto backing files
   * only, `sink` gets the file pieces to send (see Engine.submitFileRead), and done's `sunk`
   * is true (no buffer to free then). Otherwise it ends as read() does.
   * @param {import('./engine.js').FileReadSink} sink
   * @param {(error: NbdError | null, ptr: number, skip: number, sunk: boolean) => void} done
   */
  readToSink(offset, length, sink, done) {
    // The message is built only on failure: a template string per request shows in profiles.
    const what = () => `read of ${length} bytes at ${offset}`;
    let ptr;
    try { ptr = this.allocBuffer(length); } catch (e) { done(/** @type {NbdError} */ (e), 0, 0, false); return; }
    let sunk = false;
    const toSink = /** @type {import('./engine.js').FileReadSink} */ ((pieces, complete) => { sunk = true; sink(pieces, complete); });
    const r = this.engine.submitFileRead(this.id, offset / SECTOR, length / SECTOR, ptr, toSink, (status) => {
      if (status === 0 && !sunk) { done(null, ptr, 0, false); return; }
      this.free(ptr);
      done(status === 0 ? null : ioError(status, what()), 0, 0, sunk);
    });
    if (r !== 0) {
      this.free(ptr);
      done(ioError(r, what(), this.core.message()), 0, 0, false);
    }
  }

  size() { return this.bytes; }

  open() { this.core.openDevice(this.id); }
  close() { this.core.closeDevice(this.id); }

  /** A buffer in core memory for a payload; freed by write() or by the caller. */
  allocBuffer(length) {
    const ptr = this.core.x.dm_alloc(Math.max(length, 1));
    if (!ptr) throw new NbdError(NBD_ERR.ENOMEM, `no memory for a ${length}-byte buffer`);
    return ptr;
  }

  free(ptr) { this.core.x.dm_free(ptr); }

  /**
   * Reads [offset, offset + length). On success done gets the core buffer holding whole sectors
   * and where the requested bytes start in it; the caller frees the buffer (free()).
   * @param {(error: NbdError | null, ptr: number, skip: number) => void} done
   */
  read(offset, length, done) {
    const first = Math.floor(offset / SECTOR);
    const count = Math.ceil((offset + length) / SECTOR) - first;
    let ptr;
    try { ptr = this.allocBuffer(count * SECTOR); } catch (e) { done(/** @type {NbdError} */ (e), 0, 0); return; }
    const skip = offset - first * SECTOR;
    if (count === 0) { done(null, ptr, 0); return; }
    const r = this.engine.submit(this.id, OP.READ, 0, first, count, ptr, (status) => {
      if (status === 0) { done(null, ptr, skip); return; }
      this.free(ptr);
      done(ioError(status, `read of ${length} bytes at ${offset}`), 0, 0);
    });
    if (r !== 0) {
      this.free(ptr);
      done(ioError(r, `read of ${length} bytes at ${offset}`, this.core.message()), 0, 0);
    }
  }

  /**
   * Writes `length` bytes from core buffer `ptr` (from allocBuffer; this frees it) at `offset`.
   * @param {Done} done
   */
  write(offset, length, ptr, fua, done) {
    const finish = (/** @type {NbdError | null} */ e) => { this.free(ptr); done(e); };
    if (length === 0) { finish(null); return; }
    if (offset % SECTOR === 0 && length % SECTOR === 0) this.writeAligned(offset, length, ptr, fua, finish);
    else this.readModifyWrite(offset, length, ptr, fua).then(() => finish(null), finish);
  }

  /** Whole sectors, straight from the payload buffer, waiting only for overlapping RMWs. */
  writeAligned(offset, length, ptr, fua, done) {
    const first = offset / SECTOR, count = length / SECTOR;
    this.locks.acquire(first, first + count, false, (release) => {
      const what = () => `write of ${length} bytes at ${offset}`;  // built only on failure
      const r = this.engine.submit(this.id, OP.WRITE, fua ? FLAG.FUA : 0, first, count, ptr, (status) => {
        release();
        if (status === 0) this.originMarks?.wrote(first, count);
        done(status === 0 ? null : ioError(status, what()));
      });
      if (r !== 0) { release(); done(ioError(r, what(), this.core.message())); }
    });
  }

  async readModifyWrite(offset, length, ptr, fua) {
    const first = Math.floor(offset / SECTOR);
    const last = Math.ceil((offset + length) / SECTOR);
    const count = last - first;
    const what = `write of ${length} bytes at ${offset}`;
    const release = await this.locks.lock(first, last, true);
    const buf = this.allocBuffer(count * SECTOR);
    try {
      // Only partial edge sectors need their old contents.
      const headPartial = offset % SECTOR !== 0;
      const tailPartial = (offset + length) % SECTOR !== 0;
      if (headPartial) await this.sectorOp(OP.READ, false, first, 1, buf, what);
      if (tailPartial && (count > 1 || !headPartial)) await this.sectorOp(OP.READ, false, last - 1, 1, buf + (count - 1) * SECTOR, what);
      const mem = this.engine.mem();
      mem.copy(mem, buf + (offset - first * SECTOR), ptr, ptr + length);
      await this.sectorOp(OP.WRITE, fua, first, count, buf, what);
    } finally {
      this.free(buf);
      release();
    }
  }

  /** One core request as a promise; rejects with NbdError. */
  async sectorOp(op, fua, sector, count, buf, what) {
    let detail = '';
    const status = await new Promise((resolve) => {
      const r = this.engine.submit(this.id, op, fua ? FLAG.FUA : 0, sector, count, buf, resolve);
      if (r !== 0) { detail = this.core.message(); resolve(r); }
    });
    if (status !== 0) throw ioError(status, what, detail);
  }

  /** @param {Done} done */
  flush(done) {
    this.sectorOp(OP.FLUSH, false, 0, 0, 0, 'flush').then(() => done(null), done);
  }

  /**
   * Only whole sectors can be discarded; partial edge sectors keep their data (trim is advisory,
   * and so is a target that cannot discard).
   * @param {Done} done
   */
  trim(offset, length, fua, done) {
    const first = Math.ceil(offset / SECTOR);
    const last = Math.floor((offset + length) / SECTOR);
    if (last <= first) { done(null); return; }
    this.rangeOp(OP.DISCARD, fua, first, last, `trim of ${length} bytes at ${offset}`).then(() => done(null), done);
  }

  /**
   * @param {{fua: boolean, noHole: boolean, fastZero: boolean}} opts
   * @param {Done} done
   */
  writeZeroes(offset, length, opts, done) {
    this.zeroRange(offset, length, opts).then(() => done(null), done);
  }

  async zeroRange(offset, length, { fua, noHole, fastZero }) {
    const what = `write-zeroes of ${length} bytes at ${offset}`;
    if (fastZero) {
      // Zeroing here means reading the range and writing where it is not zero: never faster than
      // a write, unless the range is known to read as zeroes already, when there is nothing to do.
      if (this.allocation.knownZero(this.name, offset, length)) return;
      throw new NbdError(NBD_ERR.ENOTSUP, `${what}: fast zeroing is only possible where the device is known to read as zeroes`);
    }
    const first = Math.ceil(offset / SECTOR);
    const last = Math.floor((offset + length) / SECTOR);
    if (last <= first) { await this.writeZeroBytes(offset, length, fua); return; }
    // Partial sectors at the edges are ordinary writes of zero bytes.
    if (offset < first * SECTOR) await this.writeZeroBytes(offset, first * SECTOR - offset, fua);
    if (noHole) await this.zeroByWriting(first, last, fua, what);
    else await this.rangeOp(OP.WRITE_ZEROES, fua, first, last, what);
    if (offset + length > last * SECTOR) await this.writeZeroBytes(last * SECTOR, offset + length - last * SECTOR, fua);
  }

  async writeZeroBytes(offset, length, fua) {
    const ptr = this.allocBuffer(length);
    this.engine.mem().fill(0, ptr, ptr + length);
    await new Promise((resolve, reject) => this.write(offset, length, ptr, fua, (e) => (e ? reject(e) : resolve(undefined))));
  }

  /**
   * DISCARD / WRITE_ZEROES on whole sectors, held like an aligned write. The core counts sectors
   * in 32 bits, so a range from a 64-bit request (extended headers) goes in pieces.
   */
  async rangeOp(op, fua, first, last, what) {
    for (let s = first; s < last; s += RANGE_SECTORS_MAX) await this.rangeOpOnce(op, fua, s, Math.min(last, s + RANGE_SECTORS_MAX), what);
  }

  async rangeOpOnce(op, fua, first, last, what) {
    const release = await this.locks.lock(first, last, false);
    try {
      let detail = '';
      const status = await new Promise((resolve) => {
        const r = this.engine.submit(this.id, op, fua ? FLAG.FUA : 0, first, last - first, 0, resolve);
        if (r !== 0) { detail = this.core.message(); resolve(r); }
      });
      if (status === ERRNO.EOPNOTSUPP && op === OP.WRITE_ZEROES) { release(); await this.zeroByWriting(first, last, fua, what); return; }
      if (status === ERRNO.EOPNOTSUPP && op === OP.DISCARD) return;
      if (status !== 0) throw ioError(status, what, detail);
    } finally {
      release();
    }
  }

  /** Writes zero-filled buffers: for NO_HOLE (the zeroes must be allocated) and targets without write-zeroes. */
  async zeroByWriting(first, last, fua, what) {
    const chunk = ZERO_WRITE_BYTES / SECTOR;
    const ptr = this.allocBuffer(ZERO_WRITE_BYTES);
    try {
      this.engine.mem().fill(0, ptr, ptr + ZERO_WRITE_BYTES);
      for (let s = first; s < last; s += chunk) {
        const n = Math.min(chunk, last - s);
        const release = await this.locks.lock(s, s + n, false);
        try { await this.sectorOp(OP.WRITE, fua, s, n, ptr, what); } finally { release(); }
      }
    } finally {
      this.free(ptr);
    }
  }

  /** Reads the range (warming the page cache of every backing file under it) and drops the data. @param {Done} done */
  cache(offset, length, done) {
    const step = 1 << 20;
    const next = (at) => {
      if (at >= offset + length) { done(null); return; }
      const n = Math.min(step, offset + length - at);
      this.read(at, n, (e, ptr) => {
        if (e) { done(e); return; }
        this.free(ptr);
        next(at + n);
      });
    };
    next(offset);
  }

  /** base:allocation extents for [offset, offset + length). */
  blockStatus(offset, length, max) {
    return this.allocation.extents(this.name, offset, length, max);
  }
}
