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
//
// Large reads whose bytes go from files straight to a socket: file-read-regions.js. A batch's
// small commands adjacent in a file, run as one: adjacent-groups.js.
import { DmCore, DmError, OP, FLAG } from '../../core-as/js/dmcore.js';
import { BackingFiles } from './backing-files.js';
import { TargetClock } from './target-clock.js';
import { TransferPlug } from './transfer-plug.js';
import { loadImageLocks } from './image-locks.js';
import { loadFileHoles } from './file-holes.js';
import { FileReadRegions } from './file-read-regions.js';
import { adjacentGroups } from './adjacent-groups.js';
import { errnoOf, ioErrorLine } from './io-errors.js';
import { DeviceEventLog } from './device-events.js';
import { DeviceDrains } from './device-drains.js';

export { errnoOf } from './io-errors.js'; // its name importers know from this module

const COMMAND_WORDS = 8; // 32-byte command records
const DONE_WORDS = 3; // 12-byte completion records
const RESERVE_BYTES = 256 << 20;

/** @typedef {import('./file-backing.js').FileBacking} FileBacking */
/** @typedef {(status: number) => void} IoDone */
/** @typedef {import('./file-read-regions.js').FileReadSink} FileReadSink where a read's bytes may go instead of core memory */
/** @typedef {import('./file-read-regions.js').FileReadRegion} FileReadRegion */

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
    this.deviceEventLog = new DeviceEventLog(core, (line) => this.log(line));
    /** Called after device events were logged (the registry wakes `dmkit wait`). */
    this.onDeviceEvents = () => {};
    /** Large reads whose bytes may skip core memory (submitFileRead). */
    this.fileReadRegions = new FileReadRegions(this);
    /** Gates of the devices of origins whose copies are lent to receive threads (thread-copies.js), by device id. */
    this.gates = /** @type {Map<number, import('./thread-copies.js').ThreadCopies>} */ (new Map());
    this.deviceDrains = new DeviceDrains(core);
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
    const gate = this.gates.size > 0 ? this.gates.get(dev) : undefined;
    if (gate) {
      // Waits while the receive threads copy the origin's chunks (then it is accepted: 0).
      const run = () => {
        const r = this.submit(dev, op, flags, sector, count, buf, done, sink);
        if (r !== 0) done(r);
      };
      if (gate.holds(dev, op, run)) return 0;
      done = gate.track(dev, op, sector, count, done);
    }
    const tag = this.takeTag();
    this.callbacks[tag] = done;
    if (sink) this.fileReadRegions.open(tag, buf, count, sink);
    this.x.dm_set_time(this.clock()); // flakey decides up or down at map time
    const r = this.x.dm_submit(dev, op, flags, BigInt(sector), count, buf, tag);
    if (r < 0) {
      if (sink) this.fileReadRegions.drop(tag);
      if (gate) gate.refused(dev, op, done);
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
    if (this.deviceDrains.waiters.length > 0) this.deviceDrains.wake();
    // Why first (the kernel log: "Invalidating snapshot: ..."), then the event it raised.
    for (const line of this.core.takeLog()) this.log(`device ${line}`);
    if (this.deviceEventLog.pending) this.logDeviceEvents();
    this.targetClock.arm();
  }

  /** A device's live table raised an event: logged (device-events.js), then onDeviceEvents. */
  logDeviceEvents() {
    this.deviceEventLog.logNew();
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
      if (this.fileReadRegions.size > 0 && c[i + 2] === OP.READ) {
        const region = this.fileReadRegions.claim(c, i);
        if (region) {
          if (region.cmds.length === 1) (touched ??= []).push(region); // its first command
          continue;
        }
      }
      plain.push(i);
    }
    for (const group of adjacentGroups(c, plain, this.files)) {
      if (group.length > 1) { this.executeRun(c, group); continue; }
      const i = group[0];
      this.execute(c[i], c[i + 1], c[i + 2], c[i + 3], c[i + 4] + c[i + 5] * 4294967296, c[i + 6], c[i + 7]);
    }
    if (touched) this.fileReadRegions.settle(touched);
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
      if (this.fileReadRegions.size > 0) this.fileReadRegions.drop(tag); // completed without commands
      try {
        done(d[i + 1] | 0);
      } catch (e) {
        this.log(`bug: a request callback threw: ${e instanceof Error ? e.stack : e}`);
      }
    }
  }

  /** Resolves once the device has no request in flight (used by suspend). @param {number} dev */
  drained(dev) { return this.deviceDrains.drained(dev); }

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
   * Logs a failed file command, only some of each file's (io-errors.js).
   * @param {FileBacking | null} file @param {NodeJS.ErrnoException} error @param {number} status
   */
  logIoError(file, error, status) {
    const line = ioErrorLine(file, error, status);
    if (line) this.log(line);
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
