// @ts-check
// The worker's host loop (docs/core-abi.md): submits requests, executes the core's commands
// synchronously against OPFS sync access handles, reports completions, resolves requests.
// With a step delay (slow motion for the pictures) each batch of commands waits that long
// before it runs, so copies and read-modify-write steps can be watched as they happen.
import { DmError, OP, OP_NAMES, ERRNO } from '../../core-as/js/dmcore.js';

const ZERO_BYTES = 1 << 20;
const KERNEL_LINES = 256;

/**
 * @typedef {import('../../core-as/js/dmcore.js').Command} Command
 * @typedef {import('./opfs-disks.js').Disk} Disk
 * @typedef {{issued?: (c: Command, disk: Disk|undefined) => void,
 *   done?: (c: Command, disk: Disk|undefined, status: number) => void,
 *   batch?: () => void, kernelLog?: (line: string) => void}} Observer
 */

export class Host {
  /**
   * @param {import('../../core-as/js/dmcore.js').DmCore} core
   * @param {{clock?: 'real' | 'simulated', batchSubmits?: boolean}} [opts] real: the core's clock
   *   follows performance.now() and held I/O (delay) is released by a timer; simulated: the clock
   *   moves only when told (setTime), or jumps to the next deadline when nothing else can make
   *   progress (test hosts). batchSubmits: requests submitted in one turn are all in the core
   *   before the first command runs (the vectors' begin/end).
   */
  constructor(core, opts = {}) {
    this.core = core;
    this.clock = opts.clock ?? 'real';
    this.batchSubmits = opts.batchSubmits ?? false;
    this.timer = 0;
    /** @type {Map<number, Disk>} backing id -> disk */
    this.disks = new Map();
    /** @type {Map<number, (status: number) => void>} */
    this.waiting = new Map();
    this.nextTag = 1;
    /** The request ioNow is running synchronously, and its status once it completed. */
    this.syncTag = 0;
    this.syncStatus = -1;
    this.stepDelayMs = 0;
    this.pumping = false;
    /** @type {Observer|null} */
    this.observer = null;
    /** Commands the core should never have given (past a device's end), refused with EIO. @type {string[]} */
    this.violations = [];
    this.zeroes = new Uint8Array(ZERO_BYTES);
    /** The core's kernel-log lines not taken yet (kernelLogged). @type {string[]} */
    this.kernelLines = [];
  }

  /** Registers an OPFS file with the core under its name. */
  attach(disk) {
    disk.id = this.core.addBacking(disk.name, disk.bytes / 512);
    this.disks.set(disk.id, disk);
  }

  /** Unregisters (the core refuses while a table uses it). */
  detach(disk) {
    this.core.removeBacking(disk.id);
    this.disks.delete(disk.id);
    disk.id = -1;
  }

  newTag() {
    const tag = this.nextTag;
    this.nextTag = (this.nextTag + 1) >>> 0 || 1;
    return tag;
  }

  /** dmsetup load, waiting for targets that read metadata first. Throws DmError. */
  async loadTable(dev, table) {
    this.tick();
    const tag = this.newTag();
    if (this.core.loadTable(dev, table, tag)) return;
    const status = await this.wait(tag);
    if (status !== 0) throw new DmError(status, this.core.loadError(dev));
  }

  /**
   * One request through the core; resolves with 0 or a positive errno. A request the core
   * rejects at once throws DmError with the core's message.
   * @returns {Promise<number>}
   */
  async io(dev, op, flags, sector, count, buf) {
    return this.ioNow(dev, op, flags, sector, count, buf);
  }

  /**
   * The same, without a promise when it can: with no step delay the commands run synchronously
   * inside this call, so the status is there when it returns (a number); a request the core
   * holds (delay target, slow motion) gives a promise instead.
   * @returns {number | Promise<number>}
   */
  ioNow(dev, op, flags, sector, count, buf) {
    this.tick();
    const tag = this.newTag();
    const r = this.core.submit(dev, op, flags, sector, count, buf, tag);
    if (r < 0) throw new DmError(-r, this.core.message());
    if (this.stepDelayMs === 0 && !this.pumping && !this.batchSubmits) {
      this.syncTag = tag;
      this.syncStatus = -1;
      this.pump();
      this.syncTag = 0;
      if (this.syncStatus >= 0) return this.syncStatus;
    }
    return this.wait(tag);
  }

  /** Keeps the core's clock current (flakey compares against it at load and at each request). */
  tick() {
    if (this.clock === 'real') this.core.setTime(performance.now());
  }

  /** Tells the core the time (simulated clock) and runs what it released. */
  setTime(ms) {
    this.core.setTime(ms);
    this.pump();
  }

  /**
   * Requests still wait and the core holds some until a deadline (delay): release them then,
   * on a timer (real clock) or by moving the simulated clock there at once.
   * @returns {boolean} true when the simulated clock moved (run the loop again)
   */
  armTimer() {
    if (this.waiting.size === 0) return false;
    const due = this.core.nextTimer();
    if (due < 0) return false;
    if (this.clock === 'simulated') { this.core.setTime(due); return true; }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.tick(); this.pump(); }, Math.max(0, due - performance.now()));
    return false;
  }

  wait(tag) {
    const p = new Promise((resolve) => this.waiting.set(tag, resolve));
    if (this.batchSubmits) queueMicrotask(() => this.pump()); else this.pump();
    return p;
  }

  /** Runs commands and delivers completions until the core has nothing left to do. */
  pump() {
    if (this.pumping) return;
    this.pumping = true;
    if (this.stepDelayMs > 0) {
      void this.slowPump();
      return;
    }
    try {
      for (;;) {
        const cmds = this.core.takeCommands();
        for (const c of cmds) this.issue(c);
        for (const c of cmds) this.execute(c);
        const delivered = this.deliver();
        if (cmds.length === 0 && delivered === 0 && !this.armTimer()) break;
      }
    } finally {
      this.pumping = false;
    }
    this.observer?.batch?.();
  }

  async slowPump() {
    try {
      await this.slowSteps();
    } catch (e) {
      this.pumping = false;
      throw e;
    }
  }

  async slowSteps() {
    for (;;) {
      const cmds = this.core.takeCommands();
      for (const c of cmds) this.issue(c);
      if (cmds.length) {
        this.observer?.batch?.();
        await new Promise((r) => setTimeout(r, this.stepDelayMs));
      }
      for (const c of cmds) this.execute(c);
      const delivered = this.deliver();
      this.observer?.batch?.();
      if (cmds.length === 0 && delivered === 0 && !this.armTimer()) {
        this.pumping = false; // in the same turn as the last check, so no request can slip between
        return;
      }
    }
  }

  deliver() {
    for (const line of this.core.takeLog()) this.kernelLogged(line);
    const done = this.core.takeCompletions();
    for (const d of done) {
      if (d.tag === this.syncTag) { this.syncStatus = d.status; continue; }
      const resolve = this.waiting.get(d.tag);
      if (resolve) { this.waiting.delete(d.tag); resolve(d.status); }
    }
    return done.length;
  }

  /**
   * A line of the core's kernel log ("DEV: TARGET: text", Linux's DMERR), kept for whoever asks
   * (the vectors' kernel-log statement; the newest KERNEL_LINES) and shown by the observer.
   * @param {string} line
   */
  kernelLogged(line) {
    this.kernelLines.push(line);
    if (this.kernelLines.length > KERNEL_LINES) this.kernelLines.splice(0, this.kernelLines.length - KERNEL_LINES);
    this.observer?.kernelLog?.(line);
  }

  /** @param {Command} c */
  issue(c) {
    this.observer?.issued?.(c, this.disks.get(c.backing));
  }

  /** @param {Command} c */
  execute(c) {
    const disk = this.disks.get(c.backing);
    let status = 0;
    if (!disk) status = ERRNO.EIO;
    else {
      try {
        status = this.run(disk, c);
      } catch (e) {
        status = e && /** @type {any} */ (e).name === 'QuotaExceededError' ? ERRNO.ENOSPC : ERRNO.EIO;
        console.warn(`I/O error on ${disk.name}: ${e}`);
      }
    }
    this.observer?.done?.(c, disk, status);
    this.core.complete(c.cmd, status);
  }

  /** @param {Disk} disk @param {Command} c @returns {number} status */
  run(disk, c) {
    const at = c.sector * 512, length = c.count * 512;
    const h = disk.handle;
    if (c.op !== OP.FLUSH && at + length > disk.bytes) {
      // A sync access handle would silently grow the file: refuse instead.
      this.violations.push(`${OP_NAMES[c.op] ?? c.op} ${c.sector}+${c.count} is past the end of ${disk.name} (${disk.bytes / 512} sectors)`);
      return ERRNO.EIO;
    }
    switch (c.op) {
      case OP.READ: {
        const n = h.read(this.core.bytes(c.buf, length), { at });
        return n === length ? 0 : ERRNO.EIO; // the file shrank under the table
      }
      case OP.WRITE: {
        const n = h.write(this.core.bytes(c.buf, length), { at });
        if (c.flags & 1) h.flush();
        return n === length ? 0 : ERRNO.EIO;
      }
      case OP.FLUSH:
        h.flush();
        return 0;
      case OP.DISCARD: case OP.WRITE_ZEROES:
        for (let off = 0; off < length; off += ZERO_BYTES) {
          const n = Math.min(ZERO_BYTES, length - off);
          if (h.write(this.zeroes.subarray(0, n), { at: at + off }) !== n) return ERRNO.EIO;
        }
        if (c.flags & 1) h.flush();
        return 0;
      default:
        return ERRNO.EINVAL;
    }
  }
}
