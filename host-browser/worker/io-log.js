// @ts-check
// The I/O log: every request (or control step that does I/O, such as a snapshot's metadata read
// at load) with the commands the core split it into, in the order the host received them, each
// with a role: a piece of the request's own data, a snapshot copy, metadata, or a
// read-modify-write step (an internal read whose buffer is then written back to the same place).
import { OP_NAMES, errnoName } from '../../core-as/js/dmcore.js';

const KEEP = 150;
const COMMANDS_PER_ENTRY = 200;

/**
 * @typedef {{op: string, disk: string, sector: number, count: number, fua: boolean, role: string, status: string}} LoggedCommand
 * @typedef {{id: number, what: string, dev: string, op: string, sector: number, count: number,
 *   status: string, ms: number, commands: LoggedCommand[], more: number, kernel: string[]}} Entry
 */

export class IoLog {
  /** @param {import('./chunk-tracker.js').ChunkTracker} tracker */
  constructor(tracker) {
    this.tracker = tracker;
    /** @type {Entry[]} */
    this.entries = [];
    /** @type {Entry|null} */
    this.current = null;
    this.nextId = 1;
    /** Internal reads by buffer, to recognise the write-back of a read-modify-write. @type {Map<number, LoggedCommand>} */
    this.reads = new Map();
    /** @type {Map<number, LoggedCommand>} by command id, until it completes */
    this.open = new Map();
    /** @type {Entry[]} finished since the last take() */
    this.fresh = [];
    this.t0 = 0;
  }

  /** Starts an entry; commands until end() belong to it. */
  begin(what, dev, op, sector, count) {
    this.current = { id: this.nextId++, what, dev, op, sector, count, status: '', ms: 0, commands: [], more: 0, kernel: [] };
    this.t0 = performance.now();
    this.reads.clear();
  }

  end(status) {
    const e = this.current;
    if (!e) return;
    e.status = typeof status === 'number' ? errnoName(status) : status;
    e.ms = Math.round((performance.now() - this.t0) * 100) / 100;
    this.entries.push(e);
    if (this.entries.length > KEEP) this.entries.splice(0, this.entries.length - KEEP);
    this.fresh.push(e);
    this.current = null;
  }

  /**
   * A kernel-log line ("DEV: TARGET: text"): part of the entry running, or an entry of its own
   * when the core logged it from background work (a merge).
   * @param {string} line
   */
  kernel(line) {
    if (this.current) {
      this.current.kernel.push(line);
      return;
    }
    const dev = line.slice(0, line.indexOf(':'));
    this.begin('kernel log', dev, 'LOG', 0, 0);
    /** @type {Entry} */ (this.current).kernel.push(line);
    this.end('logged');
  }

  /** @param {import('../../core-as/js/dmcore.js').Command} c @param {import('./opfs-disks.js').Disk|undefined} disk */
  issued(c, disk) {
    const e = this.current;
    if (!e) return;
    /** @type {LoggedCommand} */
    const rec = {
      op: OP_NAMES[c.op] ?? `op ${c.op}`, disk: disk ? disk.name : `#${c.backing}`, sector: c.sector, count: c.count,
      fua: (c.flags & 1) !== 0, role: this.roleOf(c, disk), status: 'in flight',
    };
    this.open.set(c.cmd, rec);
    if (e.commands.length < COMMANDS_PER_ENTRY) e.commands.push(rec); else e.more++;
  }

  roleOf(c, disk) {
    const r = this.tracker.request;
    if (c.op === 2) return 'flush';
    if (r && c.buf >= r.buf && c.buf < r.buf + r.bytes) {
      const snapRole = this.tracker.role(c, disk);
      const piece = `request data, bytes ${c.buf - r.buf}+${c.count * 512}`;
      return snapRole ? `${snapRole} (${piece})` : piece;
    }
    if (r && (c.op === 3 || c.op === 4) && c.buf === 0) return 'request range';
    const snapRole = this.tracker.role(c, disk);
    if (snapRole) return snapRole;
    if (c.op === 0) return 'internal read';
    if (c.op === 1) {
      const read = this.reads.get(c.buf);
      if (read && read.disk === (disk ? disk.name : '') && read.sector === c.sector) {
        read.role = 'read-modify-write: read';
        return 'read-modify-write: write back';
      }
      return 'internal write';
    }
    return 'internal';
  }

  done(c, disk, status) {
    const rec = this.open.get(c.cmd);
    if (!rec) return;
    this.open.delete(c.cmd);
    rec.status = errnoName(status);
    if (c.op === 0 && rec.role === 'internal read') this.reads.set(c.buf, rec);
  }

  /** Entries finished since the last call. */
  take() {
    const out = this.fresh;
    this.fresh = [];
    return out;
  }
}
