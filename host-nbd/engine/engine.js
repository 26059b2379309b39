// @ts-check
// The Node host loop around the core: it submits requests, executes the commands the core
// emits against backing files, reports completions, and resolves each request's promise.
// One engine owns one core instance; every mapped device of a server lives in it.
import { DmCore, DmError, OP, ERRNO, errnoName } from '../../core-as/js/dmcore.js';
import { FileBacking } from './file-backing.js';

/** Maps a Node fs error to the errno the core and NBD understand. */
function errnoOf(e) {
  switch (e && e.code) {
    case 'ENOSPC': case 'EDQUOT': case 'EFBIG': return ERRNO.ENOSPC;
    case 'EROFS': case 'EPERM': case 'EACCES': return ERRNO.EPERM;
    case 'ENOMEM': return ERRNO.ENOMEM;
    default: return ERRNO.EIO;
  }
}

export class Engine {
  /** @param {DmCore} core @param {{log?: (line: string) => void}} [opts] */
  constructor(core, opts = {}) {
    this.core = core;
    this.log = opts.log ?? (() => {});
    /** @type {Map<number, FileBacking>} backing id -> file */
    this.files = new Map();
    /** @type {Map<string, number>} path -> backing id */
    this.byPath = new Map();
    /** @type {Map<number, {resolve: (status: number) => void}>} */
    this.waiting = new Map();
    this.nextTag = 1;
    this.pumping = false;
    /** @type {Array<{dev:number, resolve: () => void}>} callers waiting for a device to drain */
    this.drainWaiters = [];
  }

  static async create(opts) {
    return new Engine(await DmCore.load(), opts);
  }

  // ---- backing files

  /** Opens (or creates, with createBytes) an image and registers it under its path. */
  async addFile(path, opts = {}) {
    const existing = this.byPath.get(path);
    if (existing !== undefined) return existing;
    const file = await FileBacking.open(path, opts);
    let id;
    try {
      id = this.core.addBacking(path, file.sectors);
    } catch (e) {
      await file.close();
      throw e;
    }
    this.files.set(id, file);
    this.byPath.set(path, id);
    return id;
  }

  /** Opens every file a table names that is not open yet (names of mapped devices excluded). */
  async openDepsOf(table, opts = {}) {
    for (const name of this.core.tableDeps(table)) {
      if (!this.byPath.has(name)) await this.addFile(name, opts);
    }
  }

  /** Closes backing files no table uses any more. */
  async closeUnused() {
    for (const [id, file] of this.files) {
      try {
        this.core.removeBacking(id);
      } catch (e) {
        if (e instanceof DmError && e.errno === ERRNO.EBUSY) continue;
        throw e;
      }
      this.files.delete(id);
      this.byPath.delete(file.path);
      await file.close();
    }
  }

  async flushAll() {
    await Promise.all([...this.files.values()].map((f) => f.flush()));
  }

  async close() {
    for (const file of this.files.values()) await file.close().catch(() => {});
    this.files.clear();
    this.byPath.clear();
  }

  // ---- tables

  /** dmsetup load, waiting for targets that read metadata first (snapshots). Throws DmError. */
  async loadTable(dev, table) {
    const tag = this.newTag();
    if (this.core.loadTable(dev, table, tag)) return;
    const status = await new Promise((resolve) => {
      this.waiting.set(tag, { resolve });
      this.pump();
    });
    if (status !== 0) throw new DmError(status, this.core.loadError(dev));
  }

  newTag() {
    const tag = this.nextTag;
    this.nextTag = (this.nextTag + 1) >>> 0 || 1;
    return tag;
  }

  // ---- I/O

  /**
   * Runs one request through the core. Resolves with 0 or a positive errno; never rejects
   * for I/O errors (they are statuses), only for bugs.
   * @returns {Promise<number>}
   */
  io(dev, op, flags, sector, count, buf) {
    const tag = this.newTag();
    const r = this.core.submit(dev, op, flags, sector, count, buf, tag);
    if (r < 0) return Promise.resolve(-r);
    const p = new Promise((resolve) => this.waiting.set(tag, { resolve }));
    this.pump();
    return p;
  }

  /** Hands out the core's commands and delivers its completions until both boxes are empty. */
  pump() {
    if (this.pumping) return; // re-entered from a completion: the outer loop picks it up
    this.pumping = true;
    try {
      for (;;) {
        const cmds = this.core.takeCommands();
        for (const c of cmds) this.execute(c);
        const done = this.core.takeCompletions();
        for (const d of done) {
          const w = this.waiting.get(d.tag);
          if (w) { this.waiting.delete(d.tag); w.resolve(d.status); }
        }
        if (cmds.length === 0 && done.length === 0) break;
      }
    } finally {
      this.pumping = false;
    }
    if (this.drainWaiters.length > 0) this.wakeDrained();
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

  /** @param {import('../../core-as/js/dmcore.js').Command} c */
  execute(c) {
    const file = this.files.get(c.backing);
    if (!file) {
      this.finish(c, ERRNO.EIO, new Error(`command for unknown backing device ${c.backing}`));
      return;
    }
    let work;
    const position = c.sector * 512, length = c.count * 512;
    switch (c.op) {
      case OP.READ: work = file.read(this.core.bytes(c.buf, length), position); break;
      case OP.WRITE:
        work = file.write(this.core.bytes(c.buf, length), position);
        if (c.flags & 1) work = work.then(() => file.flush());
        break;
      case OP.FLUSH: work = file.flush(); break;
      case OP.DISCARD: case OP.WRITE_ZEROES:
        work = file.zero(position, length);
        if (c.flags & 1) work = work.then(() => file.flush());
        break;
      default: work = Promise.reject(Object.assign(new Error(`unknown op ${c.op}`), { code: 'EINVAL' }));
    }
    work.then(() => this.finish(c, 0), (e) => this.finish(c, errnoOf(e), e));
  }

  finish(c, status, error) {
    if (error) this.log(`I/O error on ${this.files.get(c.backing)?.path ?? c.backing}: ${error.message} (${errnoName(status)})`);
    this.core.complete(c.cmd, status);
    this.pump();
  }
}
