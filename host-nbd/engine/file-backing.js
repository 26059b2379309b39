// @ts-check
// A raw image file (or block device) as a backing device. Reads and writes go straight between
// the file and a Buffer over the core's memory, at the offset the core gave: no JS copies.
//
// Small transfers are done synchronously on the event loop: against the page cache a 4 KiB
// pread/pwrite costs a few microseconds, far less than a round trip through libuv's thread pool.
// Large transfers go to the thread pool, where the kernel's copy runs beside the event loop on
// another core. fdatasync (flush, FUA) is always asynchronous. docs/performance.md has figures.
//
// Zeroing (discard, write-zeroes), and knowing which ranges read as zeroes: file-zeroes.js.
// Runs of adjacent transfers as one preadv or pwritev: file-runs.js. Opening's checks and
// messages: image-open.js.
//
// A flush with nothing to make durable costs no fdatasync: when every write completed so far had
// completed before an fdatasync that succeeded began, that one covered them, and a flush while
// such an fdatasync still runs waits for it. A snapshot's metadata commit (flush, then a FUA write
// of the area) often finds its flush covered by the previous commit's FUA fdatasync, which began
// after the copies it waits for had landed. The first flush after opening always syncs (a
// previous owner may have left pages dirty), and after a failed fdatasync every flush syncs.
// Writes that connections' receive threads did by themselves count too: the addon counts them
// before replying (threadWrites), as the event loop hears of them only later. Without that count
// every flush of a file threads may write syncs.
import fs from 'node:fs';
import { loadFileHoles } from './file-holes.js';
import { threadWritesOf } from '../server/receive-threads.js';
import { WrittenMap } from './written-map.js';
import { zeroRange, zeroRunsOf } from './file-zeroes.js';
import * as fileRuns from './file-runs.js';
import { identityOf, refuseUnservable, readOnlyError, sizeOf, describeOpenError } from './image-open.js';

// Their names importers know from this module.
export { WrittenMap } from './written-map.js';
export { identityOf, blockDeviceSize } from './image-open.js';

const SECTOR = 512;
/** Transfers up to this size run on the event loop by default (dmkit serve --sync-io-max). */
export const DEFAULT_SYNC_MAX = 64 * 1024;

/** @typedef {(error: NodeJS.ErrnoException | null) => void} Done */
/** @typedef {import('./write-lane.js').WriteLanes} WriteLanes */
/** @typedef {import('./write-lane.js').FileWriteLane} FileWriteLane */
/** @typedef {{at: number, length: number, position: number, done: Done}} Part one transfer of a run (readRun, writeRun) */
/** @typedef {import('./image-locks.js').ImageLocks} ImageLocks */
/** @typedef {import('./file-holes.js').FileHoles} FileHoles */
/** @typedef {import('../server/receive-threads.js').ThreadWrites} ThreadWrites */

export class FileBacking {
  /**
   * @param {string} path @param {number} fd @param {number} bytes @param {boolean} readOnly
   * @param {{syncMaxBytes?: number, sparseAtOpen?: boolean, allocatedAtOpen?: boolean, writeLanes?: WriteLanes | null, identity?: string,
   *   locks?: ImageLocks | null, holes?: FileHoles | null, threadWrites?: ThreadWrites | null}} [opts] locks: what locked
   *   this image (released at close); holes: the addon's (file-holes.js) unless null; threadWrites:
   *   the addon's count of receive threads' writes on this file unless null
   */
  constructor(path, fd, bytes, readOnly, opts = {}) {
    this.path = path;
    this.fd = fd;
    /** Which file this is, whatever its name (identityOf): the engine opens one file once. */
    this.identity = opts.identity ?? '';
    /** Holds the lock that keeps other processes from writing this image (image-locks.js) until close. */
    this.locks = opts.locks ?? null;
    this.bytes = bytes;
    this.readOnly = readOnly;
    /** Transfers up to this size run synchronously (see the top of the file). */
    this.syncMaxBytes = opts.syncMaxBytes ?? DEFAULT_SYNC_MAX;
    /** The file had no blocks allocated when opened: it read as zeroes throughout. */
    this.sparseAtOpen = !!opts.sparseAtOpen;
    /** Large writes go to a thread of this file's own (write-lane.js) when lanes are given. */
    this.writeLanes = opts.writeLanes ?? null;
    /** @type {FileWriteLane | null} started at the first large write */
    this.lane = null;
    /** Written to since opened (by us): with sparseAtOpen, untouched ranges still read as zero. */
    this.written = new WrittenMap(bytes);
    /** Where the file's holes are, and punching new ones; null: not known (no addon). */
    this.holes = opts.holes === undefined ? loadFileHoles().holes : opts.holes;
    /** Cleared when the file system cannot punch holes: zeroing then writes zeroes. */
    this.canPunch = true;
    /**
     * Whether the file may have holes: not when every block was allocated at open, until we punch
     * one (our writes only fill holes). Saves a large read's lseeks on a full image.
     */
    this.mayHaveHoles = opts.allocatedAtOpen !== true;
    this.closed = false;
    /** Commands running on this file, and whether to close it once there are none (engine). */
    this.busy = 0;
    this.closeWhenIdle = false;
    /** Writes completed so far through us (writesDone adds the receive threads'). */
    this.ownWrites = 0;
    /** How many of writesDone a successful fdatasync covers (-1: none yet). */
    this.durableWrites = -1;
    /** The fdatasync running: writesDone when it began, and who waits for it. */
    this.syncing = /** @type {{covers: number, waiters: Done[]} | null} */ (null);
    this.syncFailed = false;
    /** fdatasync calls so far (tests, figures). */
    this.syncs = 0;
    /** Receive threads may write this file by themselves (DeviceExport.publishWrites). */
    this.threadWritable = false;
    /** The addon's count of writes receive threads completed on this file; null: not counted, so every flush of a threadWritable file syncs. */
    this.threadWrites = opts.threadWrites !== undefined ? opts.threadWrites : readOnly ? null : threadWritesOf(fd);
    /** Commands on this file that failed (the engine logs only some of them). */
    this.ioErrors = 0;
  }

  /**
   * Opens an existing image (or block device). With createBytes, a missing file is created
   * sparse at that size. Sizes must be whole sectors. With `locks`, an image opened for writing
   * is locked first; one locked by another process is refused (image-locks.js).
   * @param {string} path @param {{readOnly?: boolean, createBytes?: number, syncMaxBytes?: number, writeLanes?: WriteLanes | null,
   *   locks?: ImageLocks | null, holes?: FileHoles | null, threadWrites?: ThreadWrites | null}} [opts]
   */
  static open(path, opts = {}) {
    const readOnly = !!opts.readOnly;
    refuseUnservable(path);
    let fd;
    try {
      fd = fs.openSync(path, readOnly ? 'r' : 'r+');
    } catch (e) {
      if (/** @type {any} */ (e).code !== 'ENOENT' || !opts.createBytes) throw describeOpenError(path, e);
      if (readOnly) throw new Error(`${path}: no such file (cannot create it in read-only mode)`);
      try {
        fd = fs.openSync(path, 'wx+', 0o644);
        fs.ftruncateSync(fd, opts.createBytes);
      } catch (e2) {
        throw describeOpenError(path, e2);
      }
    }
    const locks = !readOnly && opts.locks ? opts.locks : null;
    let locked = '';
    try {
      const st = fs.fstatSync(fd);
      if (!st.isBlockDevice() && !st.isFile()) throw new Error(`${path}: not a regular file or block device`);
      const bytes = sizeOf(st);
      if (bytes % SECTOR !== 0) throw new Error(`${path}: size ${bytes} is not a multiple of 512 bytes`);
      const sparseAtOpen = st.isFile() && st.blocks === 0;
      const allocatedAtOpen = st.isFile() && st.blocks * 512 >= st.size;
      const identity = identityOf(st);
      if (locks) { locks.lock(path, identity); locked = identity; }
      return new FileBacking(path, fd, bytes, readOnly, {
        syncMaxBytes: opts.syncMaxBytes, sparseAtOpen, allocatedAtOpen, writeLanes: opts.writeLanes, identity, locks, holes: opts.holes,
        threadWrites: opts.threadWrites,
      });
    } catch (e) {
      fs.closeSync(fd);
      if (locked) locks?.unlock(locked);
      throw e;
    }
  }

  get sectors() { return this.bytes / SECTOR; }

  /** Writes completed on this file so far: ours, and the receive threads' where the addon counts them. */
  get writesDone() { return this.ownWrites + (this.threadWrites ? this.threadWrites.count() : 0); }

  /**
   * The event loop heard of a receive thread's write (DeviceExport.threadWrote). Counted only
   * where the addon does not count them already: a second count would make a flush sync again.
   */
  threadWriteHeard() { if (!this.threadWrites) this.ownWrites++; }

  /** The file's size now (a block device's from sysfs). */
  sizeNow() {
    try {
      return sizeOf(fs.fstatSync(this.fd));
    } catch (e) {
      throw new Error(`${this.path}: cannot read its size: ${/** @type {Error} */ (e).message}`);
    }
  }

  /**
   * The file has another size than it had (sizeNow). What was known of its contents from
   * opening it sparse no longer holds for the new part: someone else made it, so holes are asked
   * of the file system from now on.
   * @param {number} bytes
   */
  resized(bytes) {
    this.bytes = bytes;
    this.written = this.written.grownTo(bytes);
    this.sparseAtOpen = false;
    this.mayHaveHoles = true;
  }

  /**
   * Reads `length` bytes at `position` into buf[at...]. A read that finds the end of the file
   * before its end fails with EIO (shortenedError): the file was opened longer, so it shrank
   * under us, and zeroes in place of its data would pass for what was written (as nbdkit's
   * file plugin, which fails such a read too).
   * @param {Buffer} buf @param {number} at @param {number} length @param {number} position @param {Done} done
   */
  read(buf, at, length, position, done) {
    if (length <= this.syncMaxBytes) {
      let error = null;
      try {
        let got = 0;
        while (got < length) {
          const n = fs.readSync(this.fd, buf, at + got, length - got, position + got);
          if (n === 0) { error = this.shortenedError(length, position); break; }
          got += n;
        }
      } catch (e) {
        error = /** @type {NodeJS.ErrnoException} */ (e);
      }
      done(error);
      return;
    }
    this.readAsync(buf, at, length, position, done);
  }

  /** read() in the thread pool, whatever the size. */
  readAsync(buf, at, length, position, done) {
    const more = (got) => {
      fs.read(this.fd, buf, at + got, length - got, position + got, (err, n) => {
        if (err) done(err);
        else if (n === 0) done(this.shortenedError(length, position));
        else if (got + n < length) more(got + n);
        else done(null);
      });
    };
    more(0);
  }

  /** The EIO of a read that ran into the end of a file shortened while in use. */
  shortenedError(length, position) {
    let now = '';
    try { now = `${fs.fstatSync(this.fd).size} bytes now, `; } catch { /* the message does without */ }
    return Object.assign(new Error(`read of ${length} bytes at ${position} runs past the end of the file ` +
      `(${now}${this.bytes} expected): it was shortened while in use`), { code: 'EIO' });
  }

  /** One preadv of adjacent parts in the thread pool (file-runs.js). @param {Buffer} mem @param {Part[]} run */
  readRun(mem, run) { fileRuns.readRun(this, mem, run); }

  /** @param {Buffer} buf @param {number} at @param {number} length @param {number} position @param {Done} done */
  write(buf, at, length, position, done) {
    if (this.readOnly) { done(readOnlyError(this.path)); return; }
    this.written.mark(position, length);
    if (length <= this.syncMaxBytes) {
      let error = null;
      try {
        let put = 0;
        while (put < length) put += fs.writeSync(this.fd, buf, at + put, length - put, position + put);
      } catch (e) {
        error = /** @type {NodeJS.ErrnoException} */ (e);
      }
      this.ownWrites++; // failed or not: part of it may sit in the page cache
      done(error);
      return;
    }
    this.writeAsync(buf, at, length, position, done);
  }

  /** One pwritev of adjacent parts, in the thread pool or on the write thread (file-runs.js). @param {Buffer} mem @param {Part[]} run */
  writeRun(mem, run) { fileRuns.writeRun(this, mem, run); }

  /** One preadv of adjacent small parts on the event loop (file-runs.js). @param {Buffer} mem @param {Part[]} run */
  readRunNow(mem, run) { fileRuns.readRunNow(this, mem, run); }

  /** One pwritev of adjacent small parts on the event loop (file-runs.js). @param {Buffer} mem @param {Part[]} run */
  writeRunNow(mem, run) { fileRuns.writeRunNow(this, mem, run); }

  /** This file's write thread, started now if lanes are given and it has none yet. */
  writeLane() {
    if (!this.lane && this.writeLanes && !this.closed) {
      this.lane = this.writeLanes.open(this.fd, this.path);
      if (!this.lane) this.writeLanes = null; // could not start: the pool it is, said once
    }
    return this.lane;
  }

  /** The asynchronous half of write(), after its checks: on the file's write thread, or in the pool. */
  writeAsync(buf, at, length, position, done) {
    const lane = this.writeLane();
    if (lane) {
      lane.write([buf.subarray(at, at + length)], position, (err) => { this.ownWrites++; done(err); });
      return;
    }
    const more = (put) => {
      fs.write(this.fd, buf, at + put, length - put, position + put, (err, n) => {
        if (err || put + n >= length) this.ownWrites++;
        if (err) done(err);
        else if (put + n < length) more(put + n);
        else done(null);
      });
    };
    more(0);
  }

  /**
   * fdatasync: every write completed before is on stable storage when done is called. Skipped
   * when an fdatasync that succeeded already covers them all, shared with a running one that does.
   * @param {Done} done
   */
  flush(done) {
    if (this.readOnly) { done(null); return; }
    const writes = this.writesDone; // read before fdatasync starts: what it surely covers
    // Receive threads answer writes before the event loop hears of them: without the addon's
    // count of them, nothing tells whether every write is covered.
    if (!this.syncFailed && (this.threadWrites || !this.threadWritable)) {
      if (this.durableWrites === writes) { done(null); return; }
      if (this.syncing && this.syncing.covers === writes) { this.syncing.waiters.push(done); return; }
    }
    const sync = { covers: writes, waiters: [done] };
    this.syncing = sync;
    this.syncs++;
    fs.fdatasync(this.fd, (err) => {
      if (this.syncing === sync) this.syncing = null;
      if (err) this.syncFailed = true;
      else if (sync.covers > this.durableWrites) this.durableWrites = sync.covers;
      for (const waiter of sync.waiters) waiter(err);
    });
  }

  /**
   * Makes [position, position + length) read as zeroes, writing only the parts that are not
   * zero already (file-zeroes.js).
   * @param {number} position @param {number} length @param {Done} done
   */
  zero(position, length, done) { zeroRange(this, position, length, done); }

  /**
   * [position, position + length) cut into runs known to read as zeroes (holes) and the rest;
   * null when nothing is known (file-zeroes.js).
   * @param {number} position @param {number} length @returns {{length: number, hole: boolean}[] | null}
   */
  zeroRuns(position, length) { return zeroRunsOf(this, position, length); }


  /**
   * Closes the file, after an fdatasync: a file leaves when no table uses it any more, and a
   * write answered before that must stay durable though later FLUSHes no longer reach this file.
   */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.lane?.close();
    try {
      if (!this.readOnly) fs.fdatasyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      this.locks?.unlock(this.identity);
    }
  }
}
