// @ts-check
// A raw image file (or block device) as a backing device. Reads and writes go straight between
// the file and a Buffer over the core's memory, at the offset the core gave: no JS copies.
//
// Small transfers are done synchronously on the event loop: against the page cache a 4 KiB
// pread/pwrite costs a few microseconds, far less than a round trip through libuv's thread pool.
// Large transfers go to the thread pool, where the kernel's copy runs beside the event loop on
// another core. fdatasync (flush, FUA) is always asynchronous. docs/performance.md has figures.
//
// Zeroing (discard, write-zeroes) punches a hole where the native addon can (file-holes.js):
// the range then reads as zeroes, whatever its size, and frees its blocks. Without it, or on a
// file system that cannot punch, it reads the range and writes zeroes only where the file is not
// zero already, so zeroing a sparse image allocates nothing (Node has no fallocate).
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

const SECTOR = 512;
const ZERO_CHUNK = 1 << 20;
/** Transfers up to this size run on the event loop by default (dmkit serve --sync-io-max). */
export const DEFAULT_SYNC_MAX = 64 * 1024;
const ZEROES = Buffer.alloc(ZERO_CHUNK);

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

  /**
   * Reads adjacent parts (each part's position follows the one before) in one preadv in the
   * thread pool; each part's done is called once its bytes are in. A short read (end of file,
   * a signal) finishes the rest part by part, as read() does.
   * @param {Buffer} mem @param {Part[]} run
   */
  readRun(mem, run) {
    if (run.length === 1) { const p = run[0]; this.readAsync(mem, p.at, p.length, p.position, p.done); return; }
    fs.readv(this.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err, n) => {
      if (err) { for (const p of run) p.done(err); return; }
      this.finishRun(run, n, (p) => p.done(null), (p, skip) => this.readAsync(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
    });
  }

  /**
   * After a vectored transfer moved n bytes: `whole` for each part they covered, `rest` for the
   * others (the part, bytes of it already moved).
   * @param {Part[]} run @param {number} n @param {(p: Part) => void} whole
   * @param {(p: Part, skip: number) => void} rest
   */
  finishRun(run, n, whole, rest) {
    for (const p of run) {
      if (n >= p.length) { n -= p.length; whole(p); }
      else { rest(p, n); n = 0; }
    }
  }

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

  /**
   * Writes adjacent parts in one pwritev in the thread pool (see readRun); each part's done is
   * called once all of it is written.
   * @param {Buffer} mem @param {Part[]} run
   */
  writeRun(mem, run) {
    if (this.readOnly) { for (const p of run) p.done(readOnlyError(this.path)); return; }
    for (const p of run) this.written.mark(p.position, p.length);
    const lane = this.writeLane();
    if (lane) {
      lane.write(run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err) => {
        for (const p of run) { this.ownWrites++; p.done(err); }
      });
      return;
    }
    if (run.length === 1) { const p = run[0]; this.writeAsync(mem, p.at, p.length, p.position, p.done); return; }
    fs.writev(this.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err, n) => {
      if (err) {
        for (const p of run) { this.ownWrites++; p.done(err); }
        return;
      }
      const whole = (/** @type {Part} */ p) => { this.ownWrites++; p.done(null); };
      this.finishRun(run, n, whole, (p, skip) => this.writeAsync(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
    });
  }

  /**
   * Reads adjacent small parts in one preadv on the event loop, where each would have been read
   * by itself (Engine.executeRun). A short read finishes the rest part by part, as read() does.
   * @param {Buffer} mem @param {Part[]} run
   */
  readRunNow(mem, run) {
    let n;
    try {
      n = fs.readvSync(this.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position);
    } catch (e) {
      for (const p of run) p.done(/** @type {NodeJS.ErrnoException} */ (e));
      return;
    }
    this.finishRun(run, n, (p) => p.done(null), (p, skip) => this.read(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
  }

  /**
   * Writes adjacent small parts in one pwritev on the event loop (see readRunNow). A short write
   * finishes the rest part by part, as write() does.
   * @param {Buffer} mem @param {Part[]} run
   */
  writeRunNow(mem, run) {
    if (this.readOnly) { for (const p of run) p.done(readOnlyError(this.path)); return; }
    for (const p of run) this.written.mark(p.position, p.length);
    let n;
    try {
      n = fs.writevSync(this.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position);
    } catch (e) {
      for (const p of run) { this.ownWrites++; p.done(/** @type {NodeJS.ErrnoException} */ (e)); }
      return;
    }
    const whole = (/** @type {Part} */ p) => { this.ownWrites++; p.done(null); };
    this.finishRun(run, n, whole, (p, skip) => this.write(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
  }

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
   * zero already (a discard or write-zeroes over a sparse image then allocates nothing).
   * @param {number} position @param {number} length @param {Done} done
   */
  zero(position, length, done) {
    if (this.readOnly) { done(readOnlyError(this.path)); return; }
    if (this.holes && this.canPunch && length > 0) {
      this.holes.punch(this.fd, position, length, (err) => {
        if (err && (err.code === 'EOPNOTSUPP' || err.code === 'ENOTSUP')) { this.canPunch = false; this.zero(position, length, done); return; }
        this.mayHaveHoles = true;
        this.ownWrites++; // a flush must make the deallocation durable too
        done(err);
      });
      return;
    }
    const end = position + length;
    const scratch = Buffer.allocUnsafe(Math.min(ZERO_CHUNK, length));
    const step = (at) => {
      if (at >= end) { done(null); return; }
      const n = Math.min(ZERO_CHUNK, end - at);
      fs.read(this.fd, scratch, 0, n, at, (err, got) => {
        if (err) { done(err); return; }
        // Bytes past the end of the file read as zeroes already.
        if (got === 0 || scratch.compare(ZEROES, 0, got, 0, got) === 0) { step(at + n); return; }
        this.written.mark(at, n);
        fs.write(this.fd, ZEROES, 0, n, at, (werr) => {
          this.ownWrites++;
          if (werr) done(werr);
          else step(at + n);
        });
      });
    };
    step(position);
  }

  /**
   * [position, position + length) cut into runs known to read as zeroes (holes) and the rest:
   * from the file system where the addon can ask it (a hole past the end of the file is not
   * known: it counts as data), else from WrittenMap for a file that was sparse when opened;
   * null when nothing is known.
   * @returns {{length: number, hole: boolean}[] | null}
   */
  zeroRuns(position, length) {
    if (this.holes && !this.closed) {
      const inFile = Math.max(0, Math.min(length, this.bytes - position));
      /** @type {{length: number, hole: boolean}[]} */
      let runs = [];
      if (inFile > 0) runs = this.mayHaveHoles ? this.holes.runs(this.fd, position, inFile) : [{ length: inFile, hole: false }];
      if (inFile < length) runs.push({ length: length - inFile, hole: false });
      return runs;
    }
    if (!this.sparseAtOpen) return null;
    return this.written.runs(position, length).map((r) => ({ length: r.length, hole: !r.written }));
  }


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

/**
 * Which parts of a file we have written since opening it, in 1 MiB granules: without the addon's
 * lseek(SEEK_DATA) (file-holes.js), what keeps never-touched parts of a fresh sparse image
 * reported as zeroes (block status, fast zero).
 */
export class WrittenMap {
  static GRANULE = 1 << 20;

  /** @param {number} bytes */
  constructor(bytes) {
    this.bits = new Uint8Array(Math.ceil(bytes / WrittenMap.GRANULE / 8) + 1);
    this.empty = true;
  }

  /** This map for a file of `bytes` (what is marked stays marked). @param {number} bytes */
  grownTo(bytes) {
    const bigger = new WrittenMap(bytes);
    if (bigger.bits.length < this.bits.length) return this;
    bigger.bits.set(this.bits);
    bigger.empty = this.empty;
    return bigger;
  }

  mark(position, length) {
    if (length <= 0) return;
    const first = Math.floor(position / WrittenMap.GRANULE);
    const last = Math.floor((position + length - 1) / WrittenMap.GRANULE);
    this.empty = false;
    for (let g = first; g <= last; g++) this.bits[g >> 3] |= 1 << (g & 7);
  }

  /**
   * [position, position + length) cut where granules change between written and not.
   * @returns {{length: number, written: boolean}[]}
   */
  runs(position, length) {
    if (this.empty || length <= 0) return [{ length, written: false }];
    const G = WrittenMap.GRANULE;
    const end = position + length;
    const out = [];
    let at = position;
    while (at < end) {
      const g = Math.floor(at / G);
      const written = (this.bits[g >> 3] & (1 << (g & 7))) !== 0;
      const next = Math.min(end, (g + 1) * G);
      const last = out[out.length - 1];
      if (last && last.written === written) last.length += next - at;
      else out.push({ length: next - at, written });
      at = next;
    }
    return out;
  }

}

/**
 * What makes a file the same file under any name: its device and inode; for a block device the
 * device it stands for (two nodes of one device are one device).
 * @param {import('node:fs').Stats} st
 */
export function identityOf(st) {
  return st.isBlockDevice() ? `block ${st.rdev}` : `file ${st.dev}:${st.ino}`;
}

/**
 * Refuses, before opening it, a path that is neither a regular file nor a block device (a
 * missing one is left to open). Opening decides too late: open(2) of a FIFO for reading waits
 * for a writer, and that would stop the whole server's event loop.
 * @param {string} path
 */
function refuseUnservable(path) {
  let st;
  try {
    st = fs.statSync(path);
  } catch (e) {
    if (/** @type {any} */ (e).code === 'ENOENT') return;
    throw describeOpenError(path, e);
  }
  if (st.isDirectory()) throw new Error(`${path}: is a directory`);
  if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path}: not a regular file or block device`);
}

function readOnlyError(path) {
  return Object.assign(new Error(`${path} is opened read-only`), { code: 'EROFS' });
}

/** A file's size, or a block device's (sysfs). @param {import('node:fs').Stats} st */
function sizeOf(st) {
  return st.isBlockDevice() ? blockDeviceSize(st.rdev) : st.size;
}

/** A block device's size from sysfs (fstat says 0 for those; Node has no lseek). */
export function blockDeviceSize(rdev) {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
  const text = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * SECTOR;
}

function describeOpenError(path, e) {
  const code = e && e.code;
  if (code === 'ENOENT') return Object.assign(new Error(`${path}: no such file (give a size to create it)`), { code });
  if (code === 'EACCES' || code === 'EPERM') return new Error(`${path}: permission denied`);
  if (code === 'EISDIR') return new Error(`${path}: is a directory`);
  if (code === 'EROFS') return new Error(`${path}: on a read-only file system (use --read-only)`);
  return new Error(`${path}: ${e.message}`);
}
