// @ts-check
// Where connections' receive threads (server/receive-threads.js) may read and write an export's
// device by themselves: published to the export's write map while the device is live, withdrawn
// for a suspend (which waits until every write they did is accounted for); and the accounting
// of what they did, as the event loop hears of it. The export keeps the state (writeMap,
// originMarks, published, writeWaiters, the counts); DeviceExport's methods of the same names
// call these.
import { errnoName } from '../../core-as/js/dmcore.js';
import { IO, IO_RECORD, IO_PIECE, PIECE, THREAD_CANCELED } from '../server/receive-threads.js';
import { OriginMarks } from './origin-marks.js';

const SECTOR = 512;

/** @typedef {import('./device-export.js').DeviceExport} DeviceExport */

/**
 * Publishes where receive threads may do plain reads and writes by themselves
 * (receive-threads.js): each `linear` segment straight onto an image file, each `striped` one
 * whose stripes are all image files, and each `snapshot-origin` one onto an image file (writes
 * there only over chunks every snapshot has copied: origin-marks.js), while the device is
 * live; writes only where neither the export nor the file is read-only. The thread does what
 * the core's mapping would have asked for (a pread or pwrite at the remapped offset; for a
 * striped request one per chunk, on its stripe's file, a stripe's consecutive rows in one
 * call); the rest, and everything while suspended, goes through the core.
 * @param {DeviceExport} exp
 */
export function publishWrites(exp) {
  const map = exp.writeMap;
  if (!map) return;
  let segs;
  try { segs = exp.allocation.segments(exp.name); } catch { segs = []; }
  const origins = segs.filter((seg) => seg.target === 'snapshot-origin');
  exp.hasOrigins = origins.length > 0;
  const live = exp.core.info(exp.id).state === 'ACTIVE';
  const marks = live && exp.hasOrigins ? OriginMarks.of(exp.core, exp.id, origins, map, exp.bytes) : null;
  exp.originMarks = marks;
  const extents = live ? writeExtents(exp, segs, marks !== null) : [];
  if (extents.length > 0) map.publish(extents, marks?.publication());
  else map.withdraw();
  exp.threadMapped = extents.length > 0;
  exp.published = extents.length > 0;
  if (marks) exp.threadCopies?.start();
}

/**
 * @param {Pick<DeviceExport, 'engine' | 'allocation' | 'readOnly'>} exp
 * @param {Array<{start: number, length: number, target: string, args: string[]}>} segs the live table
 * @param {boolean} guardOrigins snapshot-origin segments are written only over marked chunks
 * @returns {number[][]} per linear or snapshot-origin segment onto a file, or per stripe of a
 *   striped segment onto files: [start, end, fd, filePos, backing id, writable (1/0), chunk,
 *   stripes, stripe, guarded (1/0)] (bytes; chunk 0, stripes 1 for linear)
 */
export function writeExtents(exp, segs, guardOrigins) {
  const out = [];
  /** @param {number} start @param {number} end @param {number[]} f fileExtent's @param {number[]} stripe chunk, stripes, stripe */
  const add = (start, end, f, stripe, guarded = false) => {
    // A file threads may write: every FLUSH syncs it (file-backing.js).
    if (f[3]) /** @type {import('./file-backing.js').FileBacking} */ (exp.engine.files[f[2]]).threadWritable = true;
    out.push([start, end, ...f, ...stripe, guarded ? 1 : 0]);
  };
  for (const seg of segs) {
    const start = seg.start * SECTOR, end = (seg.start + seg.length) * SECTOR;
    if (seg.target === 'linear') {
      const f = fileExtent(exp, seg.args[0], seg.args[1]);
      if (f) add(start, end, f, [0, 1, 0]);
    } else if (seg.target === 'striped') {
      const stripes = Number(seg.args[0]), chunk = Number(seg.args[1]) * SECTOR;
      const files = [];
      for (let i = 0; i < stripes; i++) files.push(fileExtent(exp, seg.args[2 + 2 * i], seg.args[3 + 2 * i]));
      if (files.every(Boolean)) files.forEach((f, i) => add(start, end, /** @type {number[]} */ (f), [chunk, stripes, i]));
    } else if (seg.target === 'snapshot-origin') {
      // Sector for sector from sector 0, as the kernel's origin target maps.
      const f = fileExtent(exp, seg.args[0], String(seg.start));
      if (f) add(start, end, f, [0, 1, 0], guardOrigins);
    }
  }
  return out;
}

/**
 * [fd, filePos, backing id, writable (1/0)] for a table's `<dev> <offset>` naming an open image
 * file (not a mapped device), else null.
 * @param {Pick<DeviceExport, 'engine' | 'allocation' | 'readOnly'>} exp
 * @param {string} dev @param {string} offset in sectors
 */
export function fileExtent(exp, dev, offset) {
  if (dev === undefined || exp.allocation.isDevice(dev)) return null;
  const tag = exp.engine.backingIdOf(dev);
  const file = tag === undefined ? undefined : exp.engine.files[tag];
  if (!file || file.closed) return null;
  return [file.fd, Number(offset) * SECTOR, /** @type {number} */ (tag), !exp.readOnly && !file.readOnly ? 1 : 0];
}

/**
 * Stops receive threads writing this device by themselves; resolves once every write they did
 * is accounted for (threadIoDone), so that a suspend holds all of the device's I/O.
 * @param {DeviceExport} exp
 * @returns {Promise<void>}
 */
export function withdrawWrites(exp) {
  const map = exp.writeMap;
  if (!map) return Promise.resolve();
  map.withdraw();
  exp.threadCopies?.withdraw();
  exp.published = false;
  return whenThreadsAccounted(exp).then(() => exp.threadCopies?.withdrawn());
}

/** How often a wait for the threads' requests looks at the count itself. */
const ACCOUNTED_POLL_MS = 2;

/**
 * Resolves once every request the receive threads took through the map is accounted for. Usually
 * threadIoDone sees the count reach 0; but a thread that gives a request up after taking it (a
 * read that fails, a first write it cannot copy) releases it without a record, and then no record
 * may ever come: so the count is looked at every ACCOUNTED_POLL_MS too.
 * @param {DeviceExport} exp
 * @returns {Promise<void>}
 */
export function whenThreadsAccounted(exp) {
  const map = exp.writeMap;
  if (!map || map.inflight() === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (map.inflight() === 0) wakeWriteWaiters(exp);
    }, ACCOUNTED_POLL_MS);
    poll.unref?.();
    exp.writeWaiters.push(() => {
      clearInterval(poll);
      resolve();
    });
  });
}

/** @param {DeviceExport} exp */
function wakeWriteWaiters(exp) {
  const waiters = exp.writeWaiters;
  exp.writeWaiters = [];
  for (const resolve of waiters) resolve();
}

/** No receive thread may take a request of this device by itself, and none it took is unaccounted for. @param {DeviceExport} exp */
export function threadsIdle(exp) {
  return !exp.writeMap || (!exp.published && exp.writeMap.inflight() === 0);
}

/**
 * Requests a receive thread did on this device (IO_RECORD numbers each): for a write, what a
 * write through the engine does to each file it wrote (the flush and allocation bookkeeping,
 * the error log): one, or each of its pieces (records.pieces); then the map's count, one per
 * request.
 * @param {DeviceExport} exp
 * @param {Float64Array & {pieces?: Float64Array}} records
 */
export function threadIoDone(exp, records) {
  let n = 0, p = 0;
  const pieces = /** @type {Float64Array} */ (records.pieces); // there when a record has PIECES
  for (let i = 0; i < records.length; i += IO_RECORD, n++) {
    const read = records[i + IO.IS_READ]; // 2: sent from the image's mapping
    if (read) { exp.readByThreads++; if (read === 2) exp.readMapped++; continue; }
    exp.writtenByThreads++;
    if (records[i + IO.SPLICED]) exp.writtenSpliced++;
    const k = records[i + IO.PIECES];
    if (k === 0) threadWrote(exp, records[i + IO.TAG], records[i + IO.FILE_POS], records[i + IO.LENGTH], records[i + IO.ERRNO]);
    for (const end = p + k * IO_PIECE; p < end; p += IO_PIECE) {
      threadWrote(exp, pieces[p + PIECE.TAG], pieces[p + PIECE.FILE_POS], pieces[p + PIECE.LENGTH], pieces[p + PIECE.ERRNO]);
    }
  }
  const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (exp.writeMap);
  map.release(n);
  exp.threadCopies?.threadIoDone();
  if (exp.writeWaiters.length > 0 && map.inflight() === 0) wakeWriteWaiters(exp);
}

/** A receive thread's pwrite of `length` bytes at `pos` of file `tag` (errno 0: it succeeded). @param {DeviceExport} exp */
export function threadWrote(exp, tag, pos, length, errno) {
  const file = exp.engine.files[tag];
  if (!file || errno === THREAD_CANCELED) return; // not written: nothing to note
  file.written.mark(pos, length);
  file.threadWriteHeard();
  if (errno) exp.engine.logIoError(file, Object.assign(new Error(`write of ${length} bytes at ${pos}`), { code: errnoName(errno) }), errno);
}
