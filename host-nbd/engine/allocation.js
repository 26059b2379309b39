// @ts-check
// What base:allocation reports for a mapped device, and which ranges are known to read as
// zeroes. Honest by construction: a range is HOLE|ZERO only when we know it reads as zeroes;
// everything else is 0 ("allocated, or not known"), which the spec says is always safe.
//
// Known zero: a `zero` target; `linear` / `snapshot-origin` / `striped` onto the holes of an
// image (lseek(SEEK_DATA) through the native addon; without it, only an image that had no
// blocks allocated when opened, where we have not written since: the file's WrittenMap, 1 MiB
// granules); and the same through stacked mapped devices. snapshot, error and every other
// target report 0.
//
// The live table is parsed from its dmsetup text and cached per device until the registry
// says it changed (resume, remove).
import { STATE_HOLE, STATE_ZERO } from '../protocol/constants.js';

const SECTOR = 512;
const ZERO = STATE_HOLE | STATE_ZERO;
/** Enough for any client; more extents would only make the reply large. */
const MAX_EXTENTS = 4096;

/** @typedef {{start:number, length:number, target:string, args:string[]}} Segment  (sectors) */
/** @typedef {{length:number, flags:number}} Extent  (bytes) */

export class AllocationMap {
  /** @param {import('./engine.js').Engine} engine */
  constructor(engine) {
    this.engine = engine;
    /** @type {Map<string, Segment[]>} */
    this.tables = new Map();
  }

  /** The live table of `name` changed or went away. */
  forget(name) { this.tables.delete(name); }

  /** @returns {Segment[]} */
  segments(name) {
    let segs = this.tables.get(name);
    if (!segs) {
      const core = this.engine.core;
      const text = core.table(core.findDevice(name));
      segs = text.split('\n').filter((l) => l.trim()).map((line) => {
        const [start, length, target, ...args] = line.trim().split(/\s+/);
        return { start: Number(start), length: Number(length), target, args };
      });
      this.tables.set(name, segs);
    }
    return segs;
  }

  /**
   * Extents covering [offset, offset + length) of device `name`, in bytes, adjacent equal
   * flags merged; at most `max` of them (the last one may then end early, which the spec allows).
   * @returns {Extent[]}
   */
  extents(name, offset, length, max = MAX_EXTENTS) {
    /** @type {Extent[]} */
    const out = [];
    const push = (len, flags) => {
      if (len <= 0) return true;
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += len;
      else if (out.length >= max) return false;
      else out.push({ length: len, flags });
      return true;
    };
    this.walk(name, offset, offset + length, push, 0);
    return out;
  }

  /** Whether all of [offset, offset + length) of device `name` is known to read as zeroes. */
  knownZero(name, offset, length) {
    let all = true;
    this.walk(name, offset, offset + length, (_len, flags) => (all = all && (flags & STATE_ZERO) !== 0), 0);
    return all;
  }

  /**
   * Calls emit(bytes, flags) for consecutive pieces of [from, to) (byte offsets on the device)
   * until it returns false. Returns false if stopped early.
   * @param {(len: number, flags: number) => boolean} emit
   */
  walk(name, from, to, emit, depth) {
    if (depth > 32) return emit(to - from, 0); // deeper stacks than this are not worth the work
    for (const seg of this.segments(name)) {
      const segFrom = seg.start * SECTOR, segTo = (seg.start + seg.length) * SECTOR;
      if (segTo <= from) continue;
      if (segFrom >= to) break;
      const a = Math.max(from, segFrom), b = Math.min(to, segTo);
      if (!this.walkSegment(seg, a - segFrom, b - segFrom, emit, depth)) return false;
    }
    return true;
  }

  /** [a, b) are byte offsets inside the segment. */
  walkSegment(seg, a, b, emit, depth) {
    switch (seg.target) {
      case 'zero':
        return emit(b - a, ZERO);
      case 'linear':
        return this.walkDevice(seg.args[0], Number(seg.args[1]) * SECTOR + a, b - a, emit, depth);
      case 'snapshot-origin':
        return this.walkDevice(seg.args[0], a, b - a, emit, depth);
      case 'striped':
        return this.walkStriped(seg, a, b, emit, depth);
      default:
        return emit(b - a, 0);
    }
  }

  /** striped <#stripes> <chunk sectors> (<dev> <offset>)...: chunk i lives on stripe i % n. */
  walkStriped(seg, a, b, emit, depth) {
    const n = Number(seg.args[0]);
    const chunk = Number(seg.args[1]) * SECTOR;
    while (a < b) {
      const index = Math.floor(a / chunk);
      const within = a - index * chunk;
      const len = Math.min(b - a, chunk - within);
      const stripe = index % n;
      const dev = seg.args[2 + 2 * stripe];
      const base = Number(seg.args[3 + 2 * stripe]) * SECTOR;
      const at = base + Math.floor(index / n) * chunk + within;
      if (!this.walkDevice(dev, at, len, emit, depth)) return false;
      a += len;
    }
    return true;
  }

  isDevice(name) {
    if (this.tables.has(name)) return true;
    try {
      this.engine.core.findDevice(name);
      return true;
    } catch {
      return false;
    }
  }

  /** [at, at + len) on a backing file or a mapped device. */
  walkDevice(dev, at, len, emit, depth) {
    // A mapped device's name wins over a file's, as the core resolves names.
    if (this.isDevice(dev)) return this.walk(dev, at, at + len, emit, depth + 1);
    const runs = this.engine.fileByPath(dev)?.zeroRuns(at, len);
    if (!runs) return emit(len, 0);
    for (const run of runs) {
      if (!emit(run.length, run.hole ? ZERO : 0)) return false;
    }
    return true;
  }
}
