// @ts-check
// A mapped device seen as an NBD export: byte offsets become sector requests to the core.
//
// Aligned requests go straight through, their payload already in core memory. Unaligned reads
// are widened to whole sectors. Unaligned writes are read-modify-written under a range lock
// (sector-writes.js); TRIM and WRITE_ZEROES: trim-zeroes.js. Where connections' receive threads
// may read and write by themselves, and accounting for what they did: thread-publication.js.
//
// Callers validate ranges against size() and the read-only flag first (server/requests.js);
// errors come back as NbdError with a message naming the request.
import { ThreadCopies } from './thread-copies.js';
import { OP } from '../../core-as/js/dmcore.js';
import { RangeLocks } from './range-lock.js';
import { NbdError } from '../protocol/errors.js';
import { NBD_ERR } from '../protocol/constants.js';
import { ioError, sectorOp } from './core-requests.js';
import * as sectorWrites from './sector-writes.js';
import * as trimZeroes from './trim-zeroes.js';
import * as threadPublication from './thread-publication.js';

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

/** @typedef {(error: NbdError | null) => void} Done */

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
    /** Those READs whose data went from the image's mapping to the socket (file_view.h). */
    this.readMapped = 0;
    /** Those WRITEs whose payload went from the socket to the file through a pipe (payload_pipe.h). */
    this.writtenSpliced = 0;
    this.bytes = 0;
    this.writeMap = opts.writeMap ?? null;
    /** Origin chunks threads may write (publishWrites); null when nothing is guarded. @type {import('./origin-marks.js').OriginMarks | null} */
    this.originMarks = null;
    /** The live table has snapshot-origin segments (republished around every resume: registry.js). */
    this.hasOrigins = false;
    /** The write map holds something: a connection's receive thread could read or write (publishWrites). */
    this.threadMapped = false;
    /** The write map is published now (threadMapped says it has been since the last resume). */
    this.published = false;
    /** Suspends waiting for the receive threads' writes to be accounted for (withdrawWrites). */
    this.writeWaiters = /** @type {Array<() => void>} */ ([]);
    /** First writes to origin chunks copied by the receive threads (thread-copies.js). */
    this.threadCopies = new ThreadCopies(this);
    this.refresh();
  }

  /** Re-reads the size after the live table changed (resume), and where threads may write. */
  refresh() {
    this.bytes = Number(this.core.deviceSize(this.id)) * SECTOR;
    this.filesOnly = this.passesFilesThrough();
    this.publishWrites();
  }

  /** Publishes where receive threads may read and write by themselves (thread-publication.js). */
  publishWrites() { threadPublication.publishWrites(this); }

  /** The extents publishWrites publishes for the live table `segs` (thread-publication.js). */
  writeExtents(segs, guardOrigins) { return threadPublication.writeExtents(this, segs, guardOrigins); }

  /** Where a table's `<dev> <offset>` lies in an open image file, else null (thread-publication.js). */
  fileExtent(dev, offset) { return threadPublication.fileExtent(this, dev, offset); }

  /** Stops receive threads writing this device; resolves once their writes are accounted for (thread-publication.js). */
  withdrawWrites() { return threadPublication.withdrawWrites(this); }

  /** No receive thread may take a request of this device by itself, and none it took is unaccounted for. */
  threadsIdle() { return threadPublication.threadsIdle(this); }

  /** Accounts for requests a receive thread did on this device (thread-publication.js). @param {Float64Array & {pieces?: Float64Array}} records */
  threadIoDone(records) { threadPublication.threadIoDone(this, records); }

  /** A receive thread's pwrite of `length` bytes at `pos` of file `tag` (errno 0: it succeeded). */
  threadWrote(tag, pos, length, errno) { threadPublication.threadWrote(this, tag, pos, length, errno); }

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
   * Writes `length` bytes from core buffer `ptr` (from allocBuffer; this frees it) at `offset`
   * (sector-writes.js).
   * @param {Done} done
   */
  write(offset, length, ptr, fua, done) { sectorWrites.write(this, offset, length, ptr, fua, done); }

  /** Whole sectors, straight from the payload buffer, waiting only for overlapping RMWs. */
  writeAligned(offset, length, ptr, fua, done) { sectorWrites.writeAligned(this, offset, length, ptr, fua, done); }

  readModifyWrite(offset, length, ptr, fua) { return sectorWrites.readModifyWrite(this, offset, length, ptr, fua); }

  /** One core request as a promise; rejects with NbdError. */
  sectorOp(op, fua, sector, count, buf, what) { return sectorOp(this, op, fua, sector, count, buf, what); }

  /** @param {Done} done */
  flush(done) {
    this.sectorOp(OP.FLUSH, false, 0, 0, 0, 'flush').then(() => done(null), done);
  }

  /**
   * Only whole sectors can be discarded; partial edge sectors keep their data (trim-zeroes.js).
   * @param {Done} done
   */
  trim(offset, length, fua, done) { trimZeroes.trim(this, offset, length, fua, done); }

  /**
   * @param {{fua: boolean, noHole: boolean, fastZero: boolean}} opts
   * @param {Done} done
   */
  writeZeroes(offset, length, opts, done) {
    this.zeroRange(offset, length, opts).then(() => done(null), done);
  }

  /** @param {{fua: boolean, noHole: boolean, fastZero: boolean}} opts */
  zeroRange(offset, length, opts) { return trimZeroes.zeroRange(this, offset, length, opts); }

  writeZeroBytes(offset, length, fua) { return trimZeroes.writeZeroBytes(this, offset, length, fua); }

  /** DISCARD / WRITE_ZEROES on whole sectors, in pieces the core's 32-bit counts can carry. */
  rangeOp(op, fua, first, last, what) { return trimZeroes.rangeOp(this, op, fua, first, last, what); }

  rangeOpOnce(op, fua, first, last, what) { return trimZeroes.rangeOpOnce(this, op, fua, first, last, what); }

  /** Writes zero-filled buffers: for NO_HOLE (the zeroes must be allocated) and targets without write-zeroes. */
  zeroByWriting(first, last, fua, what) { return trimZeroes.zeroByWriting(this, first, last, fua, what); }

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
