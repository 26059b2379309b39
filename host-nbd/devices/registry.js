// @ts-check
// The server's mapped devices: dmsetup's verbs (create, load/reload, suspend, resume, remove,
// table, status, info, message) over the core, opening the backing files each table names.
// The control socket and the serve command both go through here; exports are looked up here.
import { Engine } from '../engine/engine.js';
import { DeviceExport } from '../engine/device-export.js';

export class DeviceRegistry {
  /** @param {Engine} engine @param {{readOnly?: boolean, log?: (s: string) => void}} [opts] */
  constructor(engine, opts = {}) {
    this.engine = engine;
    this.core = engine.core;
    this.readOnly = !!opts.readOnly;
    this.log = opts.log ?? (() => {});
    /** @type {Map<string, DeviceExport>} */
    this.exports = new Map();
  }

  static async create(opts) {
    return new DeviceRegistry(await Engine.create(opts), opts);
  }

  /** dmsetup create NAME --table TABLE: create, load, resume. */
  async create(name, table) {
    await this.engine.openDepsOf(table, { readOnly: this.readOnly });
    const id = this.core.createDevice(name);
    try {
      await this.engine.loadTable(id, table);
      this.core.resume(id);
      this.engine.pump(); // resuming may start work of its own (a snapshot merge)
    } catch (e) {
      this.core.removeDevice(id);
      await this.engine.closeUnused();
      throw e;
    }
    this.exports.set(name, new DeviceExport(this.engine, name, { readOnly: this.readOnly }));
    return id;
  }

  /** dmsetup reload: the new table waits as the inactive table until resume. */
  async reload(name, table) {
    const id = this.core.findDevice(name);
    await this.engine.openDepsOf(table, { readOnly: this.readOnly });
    try {
      await this.engine.loadTable(id, table);
    } finally {
      await this.engine.closeUnused();
    }
  }

  /** Holds new I/O and waits for the I/O in flight to finish. */
  async suspend(name) {
    const id = this.core.findDevice(name);
    this.core.suspend(id);
    await this.engine.drained(id);
  }

  async resume(name) {
    const id = this.core.findDevice(name);
    this.core.resume(id);
    this.engine.pump(); // held requests may have produced commands
    await this.engine.closeUnused();
  }

  async remove(name) {
    const id = this.core.findDevice(name);
    this.core.removeDevice(id);
    this.exports.delete(name);
    await this.engine.closeUnused();
  }

  clear(name) {
    this.core.clearTable(this.core.findDevice(name));
  }

  names() { return this.core.listDevices(); }
  table(name, inactive = false) { return this.core.table(this.core.findDevice(name), inactive); }
  status(name) { return this.core.status(this.core.findDevice(name)); }
  info(name) { return this.core.info(this.core.findDevice(name)); }
  message(name, sector, text) { return this.core.sendMessage(this.core.findDevice(name), sector, text); }

  /** The NBD export of a device, or null. */
  getExport(name) { return this.exports.get(name) ?? null; }
  listExports() { return [...this.exports.values()]; }

  async close() {
    await this.engine.flushAll().catch((e) => this.log(`flush at exit failed: ${e.message}`));
    await this.engine.close();
  }
}
