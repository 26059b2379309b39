// @ts-check
// The server's mapped devices: dmsetup's verbs (create, load/reload, suspend, resume, remove,
// table, status, info, message) over the core, opening the backing files each table names.
// The control socket and the serve command both go through here; exports are looked up here.
import { Engine } from '../engine/engine.js';
import { DeviceExport } from '../engine/device-export.js';
import { AllocationMap } from '../engine/allocation.js';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { DmError, CoreFault, ERRNO } from '../../core-as/js/dmcore.js';

export class DeviceRegistry {
  /**
   * @param {Engine} engine
   * @param {{readOnly?: boolean, log?: (s: string) => void, writeMaps?: (new () => import('../server/receive-threads.js').NativeWriteMap) | null}} [opts]
   *   writeMaps: each export gets one, where receive threads may write (receive-threads.js)
   */
  constructor(engine, opts = {}) {
    this.engine = engine;
    this.WriteMap = opts.writeMaps ?? null;
    this.core = engine.core;
    this.readOnly = !!opts.readOnly;
    this.log = opts.log ?? (() => {});
    this.allocation = new AllocationMap(engine);
    /** @type {Map<string, DeviceExport>} */
    this.exports = new Map();
    /** The export an empty export name selects: the first device created. */
    this.defaultName = '';
    /** dmsetup wait: who waits for a device's event number to pass theirs. */
    this.eventWaiters = /** @type {{id: number, name: string, after: number, resolve: (nr: number) => void, reject: (e: Error) => void}[]} */ ([]);
    engine.onDeviceEvents = () => this.wakeEventWaiters();
    /** Told when a resume changed an export's size (kernel devices attached to it follow it). */
    this.sizeListeners = /** @type {((name: string, bytes: number) => Promise<void> | void)[]} */ ([]);
  }

  /** @param {(name: string, bytes: number) => Promise<void> | void} fn called after a resume changed export `name`'s size; awaited, its failures ignored */
  onSizeChange(fn) {
    this.sizeListeners.push(fn);
  }

  /**
   * dmsetup wait: resolves with the device's event number once it is above `after` (a snapshot
   * that goes Invalid raises one); rejects if the device is removed first, or when `signal`
   * aborts (the control client went away: its waiter goes with it).
   * @param {string} name @param {number} after @param {AbortSignal} [signal] @returns {Promise<number>}
   */
  waitEvent(name, after, signal) {
    const id = this.core.findDevice(name);
    const nr = this.core.info(id).eventNr;
    if (nr > after) return Promise.resolve(nr);
    return new Promise((resolve, reject) => {
      const gaveUp = () => new Error(`gave up waiting for an event of ${name}`);
      if (signal?.aborted) { reject(gaveUp()); return; }
      const onAbort = () => {
        this.eventWaiters = this.eventWaiters.filter((w) => w !== waiter);
        reject(gaveUp());
      };
      // Woken or told of a removal: the listener goes too (one client may wait many times).
      const settle = (/** @type {(v: any) => void} */ fn) => (/** @type {any} */ v) => { signal?.removeEventListener('abort', onAbort); fn(v); };
      const waiter = { id, name, after, resolve: settle(resolve), reject: settle(reject) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.eventWaiters.push(waiter);
    });
  }

  wakeEventWaiters() {
    this.eventWaiters = this.eventWaiters.filter((w) => {
      let nr;
      try {
        nr = this.core.info(w.id).eventNr;
      } catch {
        w.reject(new DmError(ERRNO.ENXIO, `${w.name} was removed while waiting for an event`));
        return false;
      }
      if (nr <= w.after) return true;
      w.resolve(nr);
      return false;
    });
  }

  /**
   * @param {{readOnly?: boolean, log?: (s: string) => void, syncMaxBytes?: number, testClock?: boolean, writeLanes?: import('../engine/write-lane.js').WriteLanes | null,
   *   writeMaps?: (new () => import('../server/receive-threads.js').NativeWriteMap) | null}} [opts]
   * testClock: time-driven targets see the engine's virtual clock (see Engine), set by setTime().
   */
  static async create(opts = {}) {
    return new DeviceRegistry(await Engine.create({ ...opts, virtualTime: !!opts.testClock }), opts);
  }

  /** Moves the test clock forward (never back) and lets held I/O whose time came go on. */
  setTime(ms) {
    if (!this.engine.virtualTime) throw new Error('this server runs on real time (start it with --test-clock to set the time)');
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`invalid time '${ms}'`);
    this.engine.setTime(ms);
  }

  /** dmsetup create NAME --table TABLE: create, load, resume. */
  /** @param {string} name @param {string} table @param {{cwd?: string}} [from] where the caller is (control clients) */
  async create(name, table, from = {}) {
    this.checkRelativePaths(name, table, from.cwd);
    this.openDeps(name, table);
    let id;
    try {
      id = this.core.createDevice(name);
    } catch (e) {
      this.engine.closeUnused();
      throw e;
    }
    try {
      await this.loadQuietly(id, table);
      await this.quietOrigins();
      this.core.resume(id);
      this.republishOrigins();
      this.engine.pump(); // resuming may start work of its own (a snapshot merge)
    } catch (e) {
      // Republished once, after the device is gone: its table must not be published.
      this.core.removeDevice(id);
      this.engine.closeUnused();
      this.republishOrigins();
      throw e;
    }
    const writeMap = this.WriteMap ? new this.WriteMap() : null;
    this.exports.set(name, new DeviceExport(this.engine, this.allocation, name, { readOnly: this.readOnly, writeMap }));
    if (!this.defaultName) this.defaultName = name;
    return id;
  }

  /**
   * A relative file name in a table from a control client would be found in the server's working
   * directory, not the caller's: refused when the two differ and either holds such a file (the
   * wrong one would be used silently). Names of mapped devices are not paths.
   * @param {string} name @param {string} table @param {string} [cwd]
   */
  checkRelativePaths(name, table, cwd) {
    if (!cwd || resolve(cwd) === process.cwd()) return;
    for (const dep of this.engine.depsOf(table).names) {
      if (isAbsolute(dep) || this.allocation.isDevice(dep)) continue;
      const yours = resolve(cwd, dep), mine = resolve(dep);
      if (!existsSync(yours) && !existsSync(mine)) continue;
      throw new DmError(ERRNO.EINVAL, `${name}: '${dep}' is a relative path, and the server resolves it in its own directory ` +
        `(${mine}), not in yours (${yours}): give the absolute path`);
    }
  }

  /** Opens the files a table names; errors name the device, as the core's load errors do. */
  openDeps(name, table) {
    try {
      this.engine.openDepsOf(table, { readOnly: this.readOnly });
    } catch (e) {
      const message = `${name}: ${e instanceof Error ? e.message : e}`;
      if (e instanceof CoreFault) throw e; // says what failed, and that nothing more will work
      if (e instanceof DmError) throw new DmError(e.errno, message);
      // Anything else (a file error, or a bug) keeps its class and stack: the control socket
      // logs the stack of internal failures.
      if (e instanceof Error && e.constructor !== Error) { e.message = message; throw e; }
      throw new Error(message);
    }
  }

  /** dmsetup reload: the new table waits as the inactive table until resume. */
  /** @param {string} name @param {string} table @param {{cwd?: string}} [from] where the caller is (control clients) */
  async reload(name, table, from = {}) {
    const id = this.core.findDevice(name);
    this.checkRelativePaths(name, table, from.cwd);
    this.openDeps(name, table);
    try {
      await this.loadQuietly(id, table);
    } finally {
      this.engine.closeUnused();
      this.republishOrigins();
    }
  }

  /**
   * Loads a table with the origins quiet: a snapshot registers with its origin as it loads (as
   * dm-snap's constructor does), and the core must not gain a second snapshot of an origin whose
   * first one has COW chunks lent to the receive threads (engine/thread-copies.js): they are
   * taken back first. Republishing the origins afterwards lends again only where one snapshot is
   * left. @param {number} id @param {string} table
   */
  async loadQuietly(id, table) {
    await this.quietOrigins();
    await this.engine.loadTable(id, table);
  }

  /** Holds new I/O and waits for the I/O in flight to finish (receive threads' writes included). */
  async suspend(name) {
    const id = this.core.findDevice(name);
    this.core.suspend(id);
    await this.exports.get(name)?.withdrawWrites();
    await this.engine.drained(id);
  }

  async resume(name) {
    const id = this.core.findDevice(name);
    const exp = this.exports.get(name);
    const before = exp?.size();
    await this.quietOrigins();
    try {
      this.core.resume(id);
    } finally {
      // A target's preresume may refuse after the swap (a snapshot handover whose source is
      // not suspended): the device then stays suspended on its new table, as in Linux, so the
      // export's size and the files in use follow that table either way.
      this.allocation.forget(name);
      exp?.refresh();
      this.republishOrigins(exp);
      this.engine.pump(); // held requests may have produced commands
      this.engine.closeUnused();
      // As dm's resume sets the new capacity before it returns, so do the size listeners.
      if (exp && exp.size() !== before) {
        const bytes = exp.size();
        await Promise.allSettled(this.sizeListeners.map(async (fn) => fn(name, bytes)));
      }
    }
  }

  /**
   * Any resume may start a snapshot that has copied nothing yet (a new one, or one taking
   * another's store over): before it, receive threads stop writing snapshot origins by
   * themselves and every write they did is accounted for; after it, the origins are published
   * again with no chunk marked (engine/origin-marks.js).
   */
  async quietOrigins() {
    // Until quiet when looked at synchronously: the caller resumes in the same turn, and another
    // control request may republish an origin while this one waits.
    for (;;) {
      const busy = this.listExports().filter((e) => e.hasOrigins && !e.threadsIdle());
      if (busy.length === 0) return;
      await Promise.all(busy.map((e) => e.withdrawWrites()));
    }
  }

  /** @param {DeviceExport} [published] one that was just published (refresh) */
  republishOrigins(published) {
    for (const e of this.listExports()) if (e.hasOrigins && e !== published) e.publishWrites();
  }

  /** Refused (EBUSY) while an NBD connection has it open or another table stacks on it, as dmsetup does. */
  async remove(name) {
    const id = this.core.findDevice(name);
    // A snapshot's removal changes what its origin's writes must copy: as around a resume.
    await this.quietOrigins();
    try {
      this.core.removeDevice(id);
      this.exports.get(name)?.writeMap?.withdraw();
      this.exports.delete(name);
      this.allocation.forget(name);
    } finally {
      this.republishOrigins();
    }
    if (this.defaultName === name) this.defaultName = this.core.listDevices()[0] ?? '';
    this.engine.closeUnused();
    this.wakeEventWaiters(); // its waiters learn it is gone
  }

  clear(name) {
    this.core.clearTable(this.core.findDevice(name));
    this.engine.closeUnused();
  }

  names() { return this.core.listDevices(); }
  table(name, inactive = false) { return this.core.table(this.core.findDevice(name), inactive); }
  status(name) {
    // Copies the receive threads made count as soon as they are made (engine/thread-copies.js).
    for (const e of this.listExports()) e.threadCopies.fold();
    return this.core.status(this.core.findDevice(name));
  }
  info(name) { return this.core.info(this.core.findDevice(name)); }
  message(name, sector, text) { return this.core.sendMessage(this.core.findDevice(name), sector, text); }

  /** The NBD export of a device (the empty name: the default one), or null. */
  getExport(name) {
    return this.exports.get(name === '' ? this.defaultName : name) ?? null;
  }

  listExports() { return [...this.exports.values()]; }

  /** Flushes every backing file and closes them. */
  async close() {
    await this.engine.idle(); // targets' own I/O (snapshot copies, metadata) may still be running
    await this.engine.flushAll().catch((e) => this.log(`flush at exit failed: ${e.message}`));
    this.engine.close();
  }
}
