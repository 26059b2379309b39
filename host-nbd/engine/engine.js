// @ts-check
// The Node host loop around the core: requests go in with a callback, the commands the core
// emits are executed against backing files, completions are fed back, callbacks are called.
// One engine owns one core instance; every mapped device of a server lives in it. Which image
// files are open, and under which name, is backing-files.js's job.
//
// The hot path allocates little: callbacks live in a slot array indexed by the request tag,
// command and completion records are copied out of core memory into reused typed arrays (the
// core may overwrite its boxes as soon as we call into it again), and all file I/O uses one
// Buffer over the core's memory, re-made only when the memory grew.
//
// Async file I/O writes into core memory after the call that started it returned. That is safe
// because V8 grows a wasm32 memory in place (its address range is reserved up front on 64-bit
// hosts: growing detaches the old ArrayBuffer object but never moves the bytes), and because a
// buffer is only freed after the command that uses it completed. The engine also reserves
// memory at start so that growth is rare. test/nbd/engine.test.js checks both.
import { DmCore, DmError, OP, ERRNO, FLAG, errnoName } from '../../core-as/js/dmcore.js';
import { BackingFiles } from './backing-files.js';
import { TargetClock } from './target-clock.js';
import { TransferPlug, MERGE_MAX_BYTES } from './transfer-plug.js';
import { loadImageLocks } from './image-locks.js';
import { loadFileHoles } from './file-holes.js';

const COMMAND_WORDS = 8; // 32-byte command records
/** A run of small adjacent commands (executeRun) holds at most this many (and MERGE_MAX_BYTES). */
const RUN_MAX_PARTS = 256;
const DONE_WORDS = 3; // 12-byte completion records
const RESERVE_BYTES = 256 << 20;
/** Failed commands of one file logged in full, and then one in how many (logIoError). */
const IO_ERRORS_LOGGED = 10;
const IO_ERRORS_EVERY = 1000;

/** Maps a Node fs error to the errno the core and NBD understand. */
export function errnoOf(e) {
  switch (e && e.code) {
    case 'ENOSPC': case 'EDQUOT': case 'EFBIG': return ERRNO.ENOSPC;
    case 'EROFS': case 'EPERM': case 'EACCES': return ERRNO.EPERM;
    case 'ENOMEM': return ERRNO.ENOMEM;
    default: return ERRNO.EIO;
  }
}

/** @typedef {import('./file-backing.js').FileBacking} FileBacking */
/** @typedef {(status: number) => void} IoDone */
/** @typedef {[fd: number, position: number, length: number]} FilePiece */
/**
 * Where a read's bytes are when they need not pass through core memory: the backing file
 * pieces that make up the payload, in order. The sink sends them and then calls complete(),
 * with the error if sending failed; until then the read's commands count as running.
 * @typedef {(pieces: FilePiece[], complete: (error: NodeJS.ErrnoException | null) => void) => void} FileReadSink
 * @typedef {{tag: number, start: number, end: number, sink: FileReadSink, cmds: number[][]}} FileReadRegion
 *   cmds: [cmd, backing, position, length, buf] of each READ command into [start, end), in bytes
 */

export class Engine {
  /**
   * @param {DmCore} core
   * @param {{log?: (line: string) => void, syncMaxBytes?: number, virtualTime?: boolean, writeLanes?: import('./write-lane.js').WriteLanes | null,
   *   imageLocks?: import('./image-locks.js').ImageLocks | null, holes?: import('./file-holes.js').FileHoles | null}} [opts]
   * writeLanes: large writes of each file on a thread of that file's own (write-lane.js).
   * imageLocks: how images opened for writing are locked against other processes; by default the
   * native addon's flock (image-locks.js), null for none.
   * holes: where image files have holes, and punching them (file-holes.js); by default the
   * native addon's, null for none (block status then knows less, and zeroing reads the range).
   * virtualTime: the clock of time-driven targets (flakey, delay) starts at 0 and moves only by
   * setTime(), or by jumping to the core's next timer when nothing but time is awaited (the
   * discrete-event clock the vector runners use), so tests are deterministic.
   */
  constructor(core, opts = {}) {
    this.core = core;
    this.x = core.x;
    this.log = opts.log ?? (() => {});
    // From a trap on, every core call fails with the fault (EIO to clients, the message to
    // control commands); the log gets it once, with the stack where it happened.
    core.onFault = (fault) => this.log(`${fault.message}\n${fault.cause instanceof Error ? fault.cause.stack : ''}`);
    this.syncMaxBytes = opts.syncMaxBytes;
    this.writeLanes = opts.writeLanes ?? null;
    if (opts.imageLocks !== undefined) {
      this.imageLocks = opts.imageLocks;
    } else {
      const { locks, why } = loadImageLocks();
      this.imageLocks = locks;
      if (why) this.log(`image files are not locked against a second server: ${why}`);
    }
    if (opts.holes !== undefined) {
      this.holes = opts.holes;
    } else {
      const { holes, why } = loadFileHoles();
      this.holes = holes;
      if (why) this.log(`holes in image files are not seen (block status knows less, and zeroing reads the range): ${why}`);
    }
    this.virtualTime = !!opts.virtualTime;
    this.targetClock = new TargetClock(this.x, this.virtualTime, () => this.pump());
    /** Milliseconds for time-driven targets. */
    this.clock = this.targetClock.read;
    /** Commands being executed (async file I/O in flight). */
    this.running = 0;
    this.backingFiles = new BackingFiles(core, { syncMaxBytes: this.syncMaxBytes, writeLanes: this.writeLanes, locks: this.imageLocks, holes: this.holes });
    /** @type {(IoDone | undefined)[]} tag -> callback */
    this.callbacks = [];
    /** @type {number[]} */
    this.freeTags = [];
    this.scheduled = false;
    this.pumping = false;
    this.pumpBound = () => this.pump();
    /** Device events seen (the core's count, and each device's number by id when last logged). */
    this.eventsSeen = 0;
    /** Called after device events were logged (the registry wakes `dmkit wait`). */
    this.onDeviceEvents = () => {};
    this.deviceEvents = /** @type {Map<number, number>} */ (new Map());
    /** @type {Map<number, FileReadRegion>} tag -> a large read whose bytes may skip core memory */
    this.sendRegions = new Map();
    /** @type {Array<{dev:number, resolve: () => void}>} callers waiting for a device to drain */
    this.drainWaiters = [];
    /**
     * Large transfers (for the thread pool, or a file's write thread) wait in the plug until the event loop has run every
     * callback of this turn (setImmediate), then leave merged with their neighbours: over TCP one
     * turn reads several WRITE payloads, and a batch of commands holds several adjacent reads.
     */
    this.plug = new TransferPlug();
    this.unplugging = /** @type {NodeJS.Immediate | null} */ (null);
    this.unplugBound = () => {
      this.unplugging = null;
      this.plug.release(this.mem());
    };
    this.memBuf = Buffer.from(core.memory.buffer);
    // Reserve address space in the core's allocator (freed blocks stay with it), so that
    // buffers for requests rarely make the memory grow. Untouched pages cost no RAM.
    core.free(core.alloc(RESERVE_BYTES));
  }

  static async create(opts) {
    return new Engine(await DmCore.load(), opts);
  }

  /**
   * A Buffer over the whole core memory, re-made after memory.grow (which detaches the old
   * ArrayBuffer: its views then have length 0). Checking that is cheaper than reading
   * memory.buffer, and this runs several times per request.
   */
  mem() {
    if (this.memBuf.length === 0) this.memBuf = Buffer.from(this.core.memory.buffer);
    return this.memBuf;
  }

  // ---- backing files (backing-files.js); the names other modules call them by

  /** backing id -> file */
  get files() { return this.backingFiles.files; }
  addFile(path, opts = {}) { return this.backingFiles.addFile(path, opts); }
  /** @param {string} path */
  backingIdOf(path) { return this.backingFiles.backingIdOf(path); }
  /** @param {string} path */
  fileByPath(path) { return this.backingFiles.fileByPath(path); }
  openDepsOf(table, opts = {}) { return this.backingFiles.openDepsOf(table, opts); }
  depsOf(table) { return this.backingFiles.depsOf(table); }
  closeUnused() { return this.backingFiles.closeUnused(); }
  flushAll() { return this.backingFiles.flushAll(); }

  /** Resolves once no command is running (before closing everything). */
  async idle(timeoutMs = 10_000) {
    const t0 = Date.now();
    while (this.running > 0 && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 5));
  }

  close() {
    this.targetClock.stop();
    if (this.unplugging) clearImmediate(this.unplugging);
    this.plug.fail(Object.assign(new Error('the server is closing'), { code: 'EIO' }));
    this.backingFiles.closeAll();
  }

  // ---- tables

  /** dmsetup load, waiting for targets that read metadata first (snapshots). Throws DmError. */
  async loadTable(dev, table) {
    const tag = this.takeTag();
    let ready;
    this.x.dm_set_time(this.clock()); // flakey counts its intervals from the load
    try {
      ready = this.core.loadTable(dev, table, tag);
    } catch (e) {
      this.freeTags.push(tag);
      throw e;
    }
    if (ready) { this.freeTags.push(tag); return; }
    const status = await new Promise((resolve) => {
      this.callbacks[tag] = resolve;
      this.schedule();
    });
    if (status !== 0) throw new DmError(status, this.core.loadError(dev));
  }

  takeTag() {
    return this.freeTags.length > 0 ? /** @type {number} */ (this.freeTags.pop()) : this.callbacks.push(undefined) - 1;
  }

  // ---- I/O

  /**
   * Starts one request through the core. Returns 0 when accepted: `done(status)` follows, with
   * 0 or a positive errno. Returns a positive errno when the core refused it at once (no
   * callback then; the reason is in core.message()).
   * @param {number} dev @param {number} op @param {number} flags @param {number} sector
   * @param {number} count @param {number} buf @param {IoDone} done
   * @param {FileReadSink} [sink] READ only: see submitFileRead()
   */
  submit(dev, op, flags, sector, count, buf, done, sink) {
    const tag = this.takeTag();
    this.callbacks[tag] = done;
    if (sink) this.sendRegions.set(tag, { tag, start: buf, end: buf + count * 512, sink, cmds: [] });
    this.x.dm_set_time(this.clock()); // flakey decides up or down at map time
    const r = this.x.dm_submit(dev, op, flags, BigInt(sector), count, buf, tag);
    if (r < 0) {
      if (sink) this.sendRegions.delete(tag);
      this.callbacks[tag] = undefined;
      this.freeTags.push(tag);
      return -r;
    }
    this.schedule();
    return 0;
  }

  /**
   * submit() of a READ whose payload buffer [buf, buf + count sectors) may be left unfilled:
   * when the commands the core emits for it are file reads that tile the buffer exactly, they
   * are not executed but handed to `sink` as file pieces (sendfile to a socket). Anything else
   * (a piece the core fills itself, a command into another buffer) runs as usual.
   * @param {number} dev @param {number} sector @param {number} count @param {number} buf
   * @param {FileReadSink} sink @param {IoDone} done
   */
  submitFileRead(dev, sector, count, buf, sink, done) {
    return this.submit(dev, OP.READ, 0, sector, count, buf, done, sink);
  }

  /** The region a READ command into [buf, buf + length) belongs to, if any. */
  regionOf(buf, length) {
    for (const r of this.sendRegions.values()) if (buf >= r.start && buf + length <= r.end) return r;
    return undefined;
  }

  /**
   * After a batch: each region that got commands either goes to its sink (its commands are
   * file reads tiling the payload) or has them run as usual. Either way it is decided.
   * @param {FileReadRegion[]} touched
   */
  settleRegions(touched) {
    for (const region of touched) {
      this.sendRegions.delete(region.tag);
      const cmds = region.cmds.sort((a, b) => a[4] - b[4]);
      const pieces = this.tile(region, cmds);
      if (!pieces) {
        for (const [cmd, backing, position, length, buf] of cmds) this.execute(cmd, backing, OP.READ, 0, position / 512, length / 512, buf);
        continue;
      }
      const files = cmds.map(([, backing]) => /** @type {FileBacking} */ (this.files[backing]));
      for (const f of files) { this.running++; f.busy++; }
      let completed = false;
      region.sink(pieces, (error) => {
        if (completed) return;
        completed = true;
        cmds.forEach(([cmd], i) => this.finish(cmd, files[i], error, true));
      });
    }
  }

  /**
   * The file pieces of a region whose sorted commands cover it exactly, adjacent ranges of one
   * file merged; null when they do not (a gap, an overlap, a device that is no open file).
   * @param {FileReadRegion} region @param {number[][]} cmds @returns {FilePiece[] | null}
   */
  tile(region, cmds) {
    /** @type {FilePiece[]} */
    const pieces = [];
    let at = region.start;
    for (const [, backing, position, length, buf] of cmds) {
      const file = this.files[backing];
      if (!file || file.closed || buf !== at) return null;
      const last = pieces[pieces.length - 1];
      if (last && last[0] === file.fd && last[1] + last[2] === position) last[2] += length;
      else pieces.push([file.fd, position, length]);
      at += length;
    }
    return at === region.end ? pieces : null;
  }

  schedule() {
    if (this.scheduled || this.pumping) return;
    this.scheduled = true;
    queueMicrotask(this.pumpBound);
  }

  /** Hands out the core's commands and delivers its completions until both boxes are empty. */
  pump() {
    this.scheduled = false;
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.x.dm_set_time(this.clock());
      // The binding reads the boxes' state first: an empty box costs no call into the core.
      for (;;) {
        const n = this.core.takeCommandWords();
        if (n > 0) this.runCommands(n);
        const m = this.core.takeCompletionWords();
        if (m > 0) this.deliver(m);
        if (n === 0 && m === 0 && !this.jumpClock()) break;
      }
    } finally {
      this.pumping = false;
      if (!this.plug.empty && !this.unplugging) this.unplugging = setImmediate(this.unplugBound);
    }
    if (this.drainWaiters.length > 0) this.wakeDrained();
    if (this.core.eventsRaised() !== this.eventsSeen) this.logDeviceEvents();
    this.targetClock.arm();
  }

  /**
   * A device's live table raised an event (a snapshot went Invalid): one log line per device
   * with its event number and the status it has now, as Linux logs "Invalidating snapshot".
   */
  logDeviceEvents() {
    this.eventsSeen = this.core.eventsRaised();
    for (const name of this.core.listDevices()) {
      const id = this.core.findDevice(name);
      const nr = this.core.info(id).eventNr;
      if (nr === (this.deviceEvents.get(id) ?? 0)) continue; // ids are never reused
      this.deviceEvents.set(id, nr);
      const status = this.core.status(id).split('\n').filter((l) => l).join('; ');
      this.log(`device ${name}: event ${nr}, status now: ${status}`);
    }
    this.onDeviceEvents();
  }

  /** Virtual time: moves the clock forward (never back) and runs what became due. */
  setTime(ms) {
    this.targetClock.set(ms);
    this.pump();
  }

  /** Virtual time, nothing running: jump to the next timer. @returns {boolean} whether it jumped */
  jumpClock() {
    return this.running === 0 && this.targetClock.jump();
  }

  /** Executes the n command records takeCommandWords copied (valid until the next take). */
  runCommands(n) {
    const words = n * COMMAND_WORDS;
    const c = this.core.commandWords;
    /** @type {FileReadRegion[] | null} */
    let touched = null;
    // Flushes first: their fdatasync runs in the thread pool while this loop does the batch's
    // synchronous reads and writes (a snapshot's next commit starts flushing the COW device
    // before the writes the last commit released go to the origin). The core allows any order:
    // the commands of one batch are independent, and a flush covers only completed writes.
    for (let i = 0; i < words; i += COMMAND_WORDS) {
      if (c[i + 2] === OP.FLUSH) this.execute(c[i], c[i + 1], c[i + 2], c[i + 3], 0, 0, 0);
    }
    /** The batch's reads and writes to execute, by index, in order (adjacentGroups). */
    const plain = [];
    for (let i = 0; i < words; i += COMMAND_WORDS) {
      if (c[i + 2] === OP.FLUSH) continue;
      if (this.sendRegions.size > 0 && c[i + 2] === OP.READ) {
        const region = this.regionOf(c[i + 7], c[i + 6] * 512);
        if (region) {
          if (region.cmds.length === 0) (touched ??= []).push(region);
          region.cmds.push([c[i], c[i + 1], (c[i + 4] + c[i + 5] * 4294967296) * 512, c[i + 6] * 512, c[i + 7]]);
          continue;
        }
      }
      plain.push(i);
    }
    for (const group of this.adjacentGroups(c, plain)) {
      if (group.length > 1) { this.executeRun(c, group); continue; }
      const i = group[0];
      this.execute(c[i], c[i + 1], c[i + 2], c[i + 3], c[i + 4] + c[i + 5] * 4294967296, c[i + 6], c[i + 7]);
    }
    if (touched) this.settleRegions(touched);
  }

  /**
   * The batch's plain commands in order, grouped: a group of several is a run of small reads or
   * writes adjacent in one file (each starting where the one before ended, same direction, no
   * FUA, each small enough to run on the event loop, together at most MERGE_MAX_BYTES), which
   * goes as one preadv or pwritev (executeRun). A sequential write to a snapshot's origin copies
   * its chunks out so: 64 reads of 4 KiB chunks from the origin, then 64 writes into consecutive
   * COW chunks, per 256 KiB.
   * @param {Uint32Array} c @param {number[]} plain @returns {number[][]}
   */
  adjacentGroups(c, plain) {
    const groups = [];
    let k = 0;
    while (k < plain.length) {
      const i = plain[k];
      const group = [i];
      const file = this.files[c[i + 1]], op = c[i + 2];
      if (file && (op === OP.READ || op === OP.WRITE) && c[i + 3] === 0 && c[i + 6] * 512 <= file.syncMaxBytes) {
        let end = (c[i + 4] + c[i + 5] * 4294967296 + c[i + 6]) * 512, bytes = c[i + 6] * 512;
        for (let j = k + 1; j < plain.length && group.length < RUN_MAX_PARTS; j++) {
          const n = plain[j], length = c[n + 6] * 512;
          if (c[n + 1] !== c[i + 1] || c[n + 2] !== op || c[n + 3] !== 0 || length > file.syncMaxBytes) break;
          if ((c[n + 4] + c[n + 5] * 4294967296) * 512 !== end || bytes + length > MERGE_MAX_BYTES) break;
          group.push(n);
          end += length;
          bytes += length;
        }
      }
      groups.push(group);
      k += group.length;
    }
    return groups;
  }

  /**
   * Executes a run of adjacentGroups as one vectored call on the event loop, where each of its
   * commands would have run by itself: the same bytes, one system call instead of many. (Sending
   * larger runs to the thread pool instead cost random first writes to a snapshot's origin a
   * fifth of their rate, where a batch's copies land in consecutive COW chunks:
   * docs/performance.md.)
   * @param {Uint32Array} c @param {number[]} group
   */
  executeRun(c, group) {
    const file = /** @type {FileBacking} */ (this.files[c[group[0] + 1]]);
    const parts = group.map((i) => {
      const cmd = c[i];
      return { at: c[i + 7], length: c[i + 6] * 512, position: (c[i + 4] + c[i + 5] * 4294967296) * 512, done: (e) => this.finish(cmd, file, e) };
    });
    this.running += parts.length;
    file.busy += parts.length;
    if (c[group[0] + 2] === OP.WRITE) file.writeRunNow(this.mem(), parts);
    else file.readRunNow(this.mem(), parts);
  }

  /** Calls back the m requests takeCompletionWords copied. */
  deliver(m) {
    const words = m * DONE_WORDS;
    const d = this.core.completionWords;
    for (let i = 0; i < words; i += DONE_WORDS) {
      const tag = d[i];
      const done = this.callbacks[tag];
      if (!done) { this.log(`bug: completion for unknown request tag ${tag}`); continue; }
      this.callbacks[tag] = undefined;
      this.freeTags.push(tag);
      if (this.sendRegions.size > 0) this.sendRegions.delete(tag); // completed without commands
      try {
        done(d[i + 1] | 0);
      } catch (e) {
        this.log(`bug: a request callback threw: ${e instanceof Error ? e.stack : e}`);
      }
    }
  }

  /** Resolves once the device has no request in flight (used by suspend). */
  drained(dev) {
    if (this.core.inflight(dev) === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ dev, resolve }));
  }

  wakeDrained() {
    this.drainWaiters = this.drainWaiters.filter((w) => {
      let busy;
      try { busy = this.core.inflight(w.dev) > 0; } catch { busy = false; } // removed: nothing to wait for
      if (!busy) w.resolve();
      return busy;
    });
  }

  /** Executes one command record; completes it now (small I/O) or from a libuv callback. */
  execute(cmd, backing, op, flags, sector, count, buf) {
    const file = this.files[backing];
    if (!file) {
      this.running++;
      this.finish(cmd, null, Object.assign(new Error(`command for unknown backing device ${backing}`), { code: 'EIO' }));
      return;
    }
    this.running++;
    file.busy++;
    const position = sector * 512, length = count * 512;
    const then = (/** @type {NodeJS.ErrnoException | null} */ e) => this.finish(cmd, file, e);
    const merge = length > file.syncMaxBytes; // off the event loop: merged with neighbours first
    switch (op) {
      case OP.READ:
        if (merge) this.plug.add(file, false, buf, length, position, then);
        else file.read(this.mem(), buf, length, position, then);
        break;
      case OP.WRITE:
        if (merge && !file.readOnly) this.plug.add(file, true, buf, length, position, this.afterWrite(cmd, file, flags, then));
        else file.write(this.mem(), buf, length, position, this.afterWrite(cmd, file, flags, then));
        break;
      case OP.FLUSH: file.flush(then); break;
      case OP.DISCARD: case OP.WRITE_ZEROES: file.zero(position, length, this.afterWrite(cmd, file, flags, then)); break;
      default: this.finish(cmd, file, Object.assign(new Error(`unknown command op ${op}`), { code: 'EINVAL' }));
    }
  }

  /** What completes a write command: with FUA, an fdatasync of the file first. */
  afterWrite(cmd, file, flags, then) {
    if ((flags & FLAG.FUA) === 0) return then;
    return (/** @type {NodeJS.ErrnoException | null} */ e) => (e ? then(e) : file.flush(then));
  }

  /**
   * Logs a failed file command: the first IO_ERRORS_LOGGED of each file, then one in every
   * IO_ERRORS_EVERY with the count, as connections log their first refusals only (a failing
   * disk under a busy client must not fill the log with one line per request).
   * @param {FileBacking | null} file @param {NodeJS.ErrnoException} error @param {number} status
   */
  logIoError(file, error, status) {
    const n = file ? ++file.ioErrors : 1;
    if (n > IO_ERRORS_LOGGED && n % IO_ERRORS_EVERY !== 0) return;
    const count = n < IO_ERRORS_LOGGED ? '' : ` [${n} I/O errors on this file so far; ` +
      `from now on one in ${IO_ERRORS_EVERY} is logged]`;
    this.log(`I/O error on ${file?.path ?? 'an unknown device'}: ${error.message} (${errnoName(status)})${count}`);
  }

  /**
   * @param {number} cmd @param {FileBacking | null} file @param {NodeJS.ErrnoException | null | undefined} error
   * @param {boolean} [quiet] the error is logged by whoever caused it (a sink's connection)
   */
  finish(cmd, file, error, quiet = false) {
    this.running--;
    if (file && --file.busy === 0 && file.closeWhenIdle) file.close();
    let status = 0;
    if (error) {
      status = errnoOf(error);
      if (!quiet) this.logIoError(file, error, status);
    }
    if (this.x.dm_complete(cmd, status) < 0) this.log(`bug: ${this.core.message()}`);
    this.schedule();
  }
}
