// @ts-check
// Mapped devices as dmsetup knows them (create, reload, suspend, resume, remove, message), kept
// across page loads: every change rewrites a small state file in OPFS with each device's live
// table (as the core prints it) and whether it was suspended, and the next visit recreates them
// in dependency order. Transient snapshots (N) are not recreated: their exceptions lived in
// memory, exactly as a kernel's transient snapshot does not survive a reboot.
import { DmCore, DmError } from '../../core-as/js/dmcore.js';
import { snapshotSegment } from './chunk-tracker.js';

const STATE_FILE = 'dmkit-devices.json';

/** @typedef {{name: string, table: string, suspended: boolean}} SavedDevice */

export class Devices {
  /**
   * @param {{core: DmCore, host: import('./host.js').Host, disks: import('./opfs-disks.js').OpfsDisks,
   *   module: WebAssembly.Module, log: import('./io-log.js').IoLog, stateHandle: FileSystemSyncAccessHandle,
   *   tracker: import('./chunk-tracker.js').ChunkTracker}} deps
   */
  constructor({ core, host, disks, module, log, stateHandle, tracker }) {
    this.tracker = tracker;
    this.core = core;
    this.host = host;
    this.disks = disks;
    this.module = module;
    this.log = log;
    this.stateHandle = stateHandle;
    /** Creation order, which is also a valid order to recreate them in. @type {string[]} */
    this.order = [];
    /** What the last restore could not bring back, for the page to show. @type {string[]} */
    this.notices = [];
  }

  static async open(root, deps) {
    const file = await root.getFileHandle(STATE_FILE, { create: true });
    const stateHandle = await file.createSyncAccessHandle();
    const devices = new Devices({ ...deps, stateHandle });
    await devices.restore(devices.readState());
    return devices;
  }

  /** @returns {SavedDevice[]} */
  readState() {
    const size = this.stateHandle.getSize();
    if (size === 0) return [];
    const bytes = new Uint8Array(size);
    this.stateHandle.read(bytes, { at: 0 });
    try {
      const state = JSON.parse(new TextDecoder().decode(bytes));
      return Array.isArray(state.devices) ? state.devices : [];
    } catch (e) {
      this.notices.push(`the saved device list was unreadable (${e}); starting with no mapped devices`);
      return [];
    }
  }

  save() {
    const devices = this.order.map((name) => {
      const id = this.core.findDevice(name);
      const info = this.core.info(id);
      return { name, table: this.core.table(id), suspended: info.state === 'SUSPENDED' };
    }).filter((d) => d.table !== '');
    const bytes = new TextEncoder().encode(JSON.stringify({ version: 1, devices }, null, 1));
    this.stateHandle.truncate(0);
    this.stateHandle.write(bytes, { at: 0 });
    this.stateHandle.flush();
  }

  /** Recreates saved devices, each once the devices its table stacks on exist. @param {SavedDevice[]} saved */
  async restore(saved) {
    const names = new Set(saved.map((d) => d.name));
    let pending = saved.filter((d) => {
      const seg = snapshotSegment(d.table);
      if (seg && !seg.persistent) {
        this.notices.push(`${d.name} was a transient snapshot (N): its exceptions lived in memory only and are gone, so it was not recreated (table was: ${d.table})`);
        names.delete(d.name);
        return false;
      }
      return true;
    });
    while (pending.length) {
      const ready = pending.filter((d) => this.stacksOn(d.table, names).every((n) => this.order.includes(n)));
      if (ready.length === 0) break;
      for (const d of ready) {
        try {
          await this.create(d.name, d.table, { save: false });
          if (d.suspended) this.core.suspend(this.core.findDevice(d.name));
        } catch (e) {
          this.notices.push(`${d.name} could not be recreated: ${e instanceof Error ? e.message : e} (table was: ${d.table})`);
          names.delete(d.name);
        }
      }
      pending = pending.filter((d) => !ready.includes(d));
    }
    for (const d of pending) this.notices.push(`${d.name} could not be recreated: a device it stacks on is missing (table was: ${d.table})`);
    this.save();
  }

  /** Names of mapped devices (among `names`) that a table refers to. */
  stacksOn(table, names) {
    const out = new Set();
    for (const line of table.split('\n')) for (const w of line.trim().split(/\s+/).slice(3)) if (names.has(w)) out.add(w);
    return [...out];
  }

  list() {
    return this.order.map((name) => {
      const id = this.core.findDevice(name);
      const info = this.core.info(id);
      return {
        name, state: info.state, openCount: info.openCount, sectors: Number(info.sectors), hasInactive: info.hasInactive,
        table: this.core.table(id), inactiveTable: this.core.table(id, true), status: this.core.status(id),
      };
    });
  }

  /** dmsetup create NAME --table TABLE: create, load, resume; nothing is left behind on failure. */
  async create(name, table, { save = true } = {}) {
    const id = this.core.createDevice(name);
    try {
      await this.load(id, name, table);
      this.core.resume(id);
    } catch (e) {
      this.core.removeDevice(id);
      throw e;
    }
    this.order.push(name);
    if (save) this.save();
  }

  /** dmsetup reload: the table waits, inactive, for resume. */
  async reload(name, table) {
    await this.load(this.core.findDevice(name), name, table);
  }

  async load(id, name, table) {
    // The tracker learns the table first, so the log can name its metadata I/O during the load.
    this.tracker.sync([...this.list().filter((d) => d.name !== name), { name, table }]);
    this.log.begin('load table', name, 'LOAD', 0, 0);
    try {
      await this.host.loadTable(id, table);
      this.log.end(0);
    } catch (e) {
      this.log.end(e instanceof DmError ? e.code : 'failed');
      throw e;
    }
  }

  suspend(name) {
    this.core.suspend(this.core.findDevice(name));
    this.save();
  }

  resume(name) {
    try {
      this.core.resume(this.core.findDevice(name));
    } finally {
      this.save(); // a target may refuse after the swap: the new table is live (suspended) then too
    }
  }

  remove(name) {
    this.core.removeDevice(this.core.findDevice(name));
    this.order = this.order.filter((n) => n !== name);
    this.save();
  }

  clear(name) {
    this.core.clearTable(this.core.findDevice(name));
  }

  message(name, sector, text) {
    return this.core.sendMessage(this.core.findDevice(name), sector, text);
  }

  /**
   * Live validation: the table is loaded into a scratch instance of the same core, holding the
   * same backing devices (same sizes) and a stand-in of the same size for every mapped device,
   * so every message is the core's own and nothing touches a disk (metadata reads are never run).
   * @returns {{ok: boolean, message: string, sectors: number}}
   */
  validate(name, table, mode) {
    const scratch = new DmCore(new WebAssembly.Instance(this.module, {}).exports);
    try {
      for (const d of this.disks.list()) scratch.addBacking(d.name, d.bytes / 512);
      for (const other of this.order) {
        if (other === name) continue;
        const size = this.core.deviceSize(this.core.findDevice(other));
        const id = scratch.createDevice(other);
        if (size > 0n) { scratch.loadTable(id, `0 ${size} zero`); scratch.resume(id); }
      }
      if (mode === 'create' && this.order.includes(name)) return { ok: false, message: `device ${name} already exists`, sectors: 0 };
      if (mode === 'reload' && !this.order.includes(name)) return { ok: false, message: `device ${name} does not exist`, sectors: 0 };
      const id = scratch.createDevice(name);
      const ready = scratch.loadTable(id, table, 1);
      const sectors = table.split('\n').map((l) => l.trim().split(/\s+/)).filter((w) => w.length > 2 && !w[0].startsWith('#'))
        .reduce((sum, w) => sum + Number(w[1]), 0);
      return { ok: true, message: ready ? 'valid' : 'valid (the snapshot reads its COW metadata when the table is loaded)', sectors };
    } catch (e) {
      if (e instanceof DmError) return { ok: false, message: e.message, sectors: 0 };
      throw e;
    }
  }
}

