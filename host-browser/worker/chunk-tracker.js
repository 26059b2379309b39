// @ts-check
// The live chunk map of each snapshot: which origin chunks are copied to the COW device, which
// are being copied right now, which are untouched. "Copied" comes from the persistent store's
// own metadata areas (Linux's format: core-as/snapshot/persistent-store.ts), re-read whenever
// the host writes one; for transient (N) snapshots, which have no metadata, from the copies the
// host saw finish. "Being copied" comes from the commands in flight: a copy is an internal read
// of an origin chunk into a buffer that is then written to the COW device.
// Only snapshots whose origin and COW are backing devices can be watched this way (stacked
// devices' I/O is routed inside the core and never reaches the host).

export const UNTOUCHED = 0;
export const COPYING = 1;
export const COPIED = 2;

const SNAP_MAGIC = 0x70416e53;
const DEFAULT_CHUNK = 32;

/**
 * @typedef {import('../../core-as/js/dmcore.js').Command} Command
 * @typedef {import('./opfs-disks.js').Disk} Disk
 * @typedef {{dev: string, sector: number, count: number, buf: number, bytes: number}} Request
 * @typedef {{dev: string, target: string, origin: string, cow: string, persistent: boolean,
 *   length: number, chunkSize: number, state: Uint8Array, areas: Map<number, number[]>,
 *   invalid: boolean, changed: boolean}} Snap
 */

/** The snapshot segment of a live table (sector 0), or null. */
export function snapshotSegment(tableText) {
  const first = tableText.split('\n')[0] ?? '';
  const w = first.trim().split(/\s+/);
  if (w.length < 7 || w[0] !== '0' || (w[2] !== 'snapshot' && w[2] !== 'snapshot-merge')) return null;
  return { length: Number(w[1]), target: w[2], origin: w[3], cow: w[4], persistent: w[5].toUpperCase() !== 'N', chunkSize: Number(w[6]) };
}

export class ChunkTracker {
  /** @param {import('./opfs-disks.js').OpfsDisks} disks */
  constructor(disks) {
    this.disks = disks;
    /** @type {Map<string, Snap>} by mapped device name */
    this.snaps = new Map();
    /** Copy buffers in flight: buffer -> origin chunk sector. @type {Map<number, number>} */
    this.copyBufs = new Map();
    /** @type {Request|null} the request the host is working on */
    this.request = null;
  }

  /**
   * Follows the live tables: new snapshots get their map (read from the COW device when it is
   * persistent), changed ones are rebuilt, vanished ones are dropped.
   * @param {Array<{name: string, table: string}>} devices
   */
  sync(devices) {
    const seen = new Set();
    for (const { name, table } of devices) {
      const seg = snapshotSegment(table);
      if (!seg || !this.disks.byName.has(seg.cow)) continue;
      seen.add(name);
      const old = this.snaps.get(name);
      if (old && old.origin === seg.origin && old.cow === seg.cow && old.persistent === seg.persistent &&
          old.length === seg.length && old.target === seg.target) continue;
      /** @type {Snap} */
      const snap = {
        dev: name, target: seg.target, origin: seg.origin, cow: seg.cow, persistent: seg.persistent, length: seg.length,
        chunkSize: seg.chunkSize || DEFAULT_CHUNK, state: new Uint8Array(0), areas: new Map(), invalid: false, changed: true,
      };
      // A transient snapshot reloaded over the same COW keeps what was seen of it.
      if (old && !seg.persistent && old.chunkSize === snap.chunkSize) snap.state = old.state;
      if (seg.persistent) this.readMetadata(snap);
      this.resizeState(snap);
      this.snaps.set(name, snap);
    }
    for (const name of [...this.snaps.keys()]) if (!seen.has(name)) this.snaps.delete(name);
  }

  resizeState(snap) {
    const chunks = Math.ceil(snap.length / snap.chunkSize);
    if (snap.state.length === chunks) return;
    const state = new Uint8Array(chunks);
    state.set(snap.state.subarray(0, chunks));
    snap.state = state;
    this.recompute(snap);
  }

  /** Reads the header and every metadata area from the COW file. */
  readMetadata(snap) {
    const disk = this.disks.byName.get(snap.cow);
    if (!disk) return;
    const head = new DataView(new ArrayBuffer(16));
    disk.handle.read(new Uint8Array(head.buffer), { at: 0 });
    snap.areas.clear();
    if (head.getUint32(0, true) !== SNAP_MAGIC) return; // a new snapshot: nothing copied yet
    snap.invalid = head.getUint32(4, true) === 0;
    const chunkSize = head.getUint32(12, true);
    if (chunkSize && !(chunkSize & (chunkSize - 1))) snap.chunkSize = chunkSize; // the header wins, as in the kernel
    if (snap.invalid) return;
    for (let area = 0; ; area++) {
      const full = this.readArea(snap, disk, area);
      if (!full) break;
    }
  }

  /** Reads metadata area `area`; returns true when it is full (the next one may hold more). */
  readArea(snap, disk, area) {
    const chunkBytes = snap.chunkSize * 512;
    const perArea = chunkBytes / 16;
    const at = (1 + (perArea + 1) * area) * chunkBytes;
    if (at + chunkBytes > disk.bytes) return false;
    const bytes = new Uint8Array(chunkBytes);
    disk.handle.read(bytes, { at });
    const dv = new DataView(bytes.buffer);
    const olds = [];
    for (let i = 0; i < perArea; i++) {
      const newChunk = dv.getBigUint64(i * 16 + 8, true);
      if (newChunk === 0n) break;
      olds.push(Number(dv.getBigUint64(i * 16, true)));
    }
    if (olds.length) snap.areas.set(area, olds); else snap.areas.delete(area);
    return olds.length === perArea;
  }

  /** Copied = every exception in the metadata areas (persistent stores). */
  recompute(snap) {
    if (!snap.persistent) return;
    const s = snap.state;
    for (let i = 0; i < s.length; i++) if (s[i] === COPIED) s[i] = UNTOUCHED;
    for (const olds of snap.areas.values()) for (const c of olds) if (c < s.length) s[c] = COPIED;
    snap.changed = true;
  }

  /** A role for the I/O log when the command is part of a snapshot's work, else ''. */
  role(c, disk) {
    if (!disk) return '';
    for (const snap of this.snaps.values()) {
      if (disk.name !== snap.cow) continue;
      const chunk = Math.floor(c.sector / snap.chunkSize);
      if (c.op === 1 && snap.persistent && chunk === 0) return `${snap.dev}: COW header`;
      if (c.op === 1 && snap.persistent && this.isMetadataChunk(snap, chunk)) return `${snap.dev}: metadata area ${this.areaOf(snap, chunk)}`;
      if (c.op === 1 && this.copyBufs.has(c.buf)) return `${snap.dev}: copy, write to COW chunk ${chunk}`;
      if (c.op === 0 && snap.persistent && this.isMetadataChunk(snap, chunk)) return `${snap.dev}: read metadata area ${this.areaOf(snap, chunk)}`;
      if (c.op === 0 && snap.persistent && chunk === 0) return `${snap.dev}: read COW header`;
    }
    for (const snap of this.snaps.values()) {
      if (disk.name === snap.origin && c.op === 0 && this.copyBufs.has(c.buf)) {
        return `copy, read origin chunk ${Math.floor(c.sector / snap.chunkSize)}`;
      }
    }
    return '';
  }

  isMetadataChunk(snap, chunk) {
    const perArea = snap.chunkSize * 512 / 16;
    return chunk >= 1 && (chunk - 1) % (perArea + 1) === 0;
  }

  areaOf(snap, chunk) {
    return (chunk - 1) / (snap.chunkSize * 32 + 1);
  }

  inRequest(buf) {
    const r = this.request;
    return r !== null && buf >= r.buf && buf < r.buf + r.bytes;
  }

  /** A command was handed to the host: marks chunks whose copy it starts. @param {Command} c @param {Disk|undefined} disk */
  issued(c, disk) {
    if (!disk || this.snaps.size === 0) return;
    if (c.op === 0 && !this.inRequest(c.buf)) {
      for (const snap of this.snaps.values()) {
        if (disk.name !== snap.origin || c.sector % snap.chunkSize !== 0) continue;
        const chunk = c.sector / snap.chunkSize;
        this.copyBufs.set(c.buf, chunk);
        this.mark(snap, chunk, COPYING);
      }
    } else if (c.op === 1) {
      for (const snap of this.snaps.values()) {
        if (disk.name !== snap.cow) continue;
        const chunk = this.originChunkOfCowWrite(snap, c);
        if (chunk >= 0) this.mark(snap, chunk, COPYING);
      }
    }
  }

  /** The origin chunk a COW data write belongs to: a copy's buffer, or a whole-chunk write of the request. */
  originChunkOfCowWrite(snap, c) {
    const copied = this.copyBufs.get(c.buf);
    if (copied !== undefined) return copied;
    const r = this.request;
    if (r && r.dev === snap.dev && this.inRequest(c.buf)) {
      return Math.floor((r.sector + (c.buf - r.buf) / 512) / snap.chunkSize);
    }
    return -1;
  }

  /** A command finished: metadata writes re-read, transient copies land. */
  done(c, disk, status) {
    if (!disk || this.snaps.size === 0 || c.op !== 1 || status !== 0) {
      if (c.op === 1) this.copyBufs.delete(c.buf);
      return;
    }
    for (const snap of this.snaps.values()) {
      if (disk.name !== snap.cow) continue;
      const first = Math.floor(c.sector / snap.chunkSize);
      const last = Math.floor((c.sector + c.count - 1) / snap.chunkSize);
      if (snap.persistent) {
        if (first === 0) { this.readMetadata(snap); this.resizeState(snap); this.recompute(snap); continue; }
        const disk2 = this.disks.byName.get(snap.cow);
        for (let chunk = first; chunk <= last && disk2; chunk++) {
          if (this.isMetadataChunk(snap, chunk)) { this.readArea(snap, disk2, this.areaOf(snap, chunk)); this.recompute(snap); }
        }
      } else {
        const chunk = this.originChunkOfCowWrite(snap, c);
        if (chunk >= 0) this.mark(snap, chunk, COPIED);
      }
    }
    this.copyBufs.delete(c.buf);
  }

  mark(snap, chunk, value) {
    if (chunk < 0 || chunk >= snap.state.length || snap.state[chunk] === COPIED) return;
    snap.state[chunk] = value;
    snap.changed = true;
  }

  /** Nothing is in flight any more: what was being copied either landed or was not needed. */
  idle() {
    this.copyBufs.clear();
    for (const snap of this.snaps.values()) {
      const s = snap.state;
      for (let i = 0; i < s.length; i++) if (s[i] === COPYING) { s[i] = UNTOUCHED; snap.changed = true; }
    }
  }

  /** Maps changed since the last call (all with all=true), for the page. */
  take(all = false) {
    const out = [];
    for (const snap of this.snaps.values()) {
      if (!all && !snap.changed) continue;
      snap.changed = false;
      let copied = 0, copying = 0;
      for (const v of snap.state) { if (v === COPIED) copied++; else if (v === COPYING) copying++; }
      out.push({ dev: snap.dev, target: snap.target, origin: snap.origin, cow: snap.cow, persistent: snap.persistent,
        chunkSize: snap.chunkSize, invalid: snap.invalid, copied, copying, state: snap.state.slice() });
    }
    return out;
  }
}
