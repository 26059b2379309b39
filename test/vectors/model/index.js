// @ts-check
// The reference model: a vector's meaning, computed over plain byte arrays, sequentially.
// It shares nothing with the core but the PRNG (lib/pattern.js). Each target lives in its own
// file under targets/; this file only holds disks, mapped devices and the dmsetup verbs.
//
// Concurrency: statements inside begin/end run one after the other in file order (a vector's
// expectations must not depend on the order, so any order gives the same answers); I/O sent
// to a suspended device waits until its resume, as dm holds it.
//
// Within one request, Linux maps every piece (at every level of stacking) before any copy it
// started completes: submission is synchronous, kcopyd's copies are not. So targets queue a
// copy's completion with afterMapping() and the request runs the queue once it is all mapped.
import { createHash } from 'node:crypto';
import { Disk } from './blockdev.js';
import { buildTable } from './table.js';
import { pattern } from '../lib/pattern.js';

/**
 * @typedef {import('../lib/parse.js').Vector} Vector
 * @typedef {import('../lib/parse.js').Step} Step
 * @typedef {{errno: string|null, sha256?: string, text?: string}} Answer what the model says a step gives
 */

class MappedDevice {
  /** @param {string} name @param {Model} model */
  constructor(name, model) {
    this.name = name;
    this.model = model;
    /** @type {import('./table.js').Table | null} */
    this.live = null;
    /** @type {import('./table.js').Table | null} */
    this.inactive = null;
    this.suspended = false;
    /** @type {import('./table.js').Table | null} the table being replaced, during a resume */
    this.outgoing = null;
    /** @type {Array<() => void>} I/O that arrived while suspended */
    this.held = [];
  }

  size() { return this.live ? this.live.size : 0; }

  /**
   * A request on this device: checked against its size, split at segment boundaries, every
   * piece run; the first error wins (the other pieces still happen, as in dm).
   * @param {import('./blockdev.js').Op} op @param {number} sector @param {number} count @param {Uint8Array} [data]
   * @returns {import('./blockdev.js').Result}
   */
  io(op, sector, count, data) {
    const table = this.live;
    if (!table) return { errno: 'ENODEV' };
    if (op === 'flush') {
      let errno = null;
      for (const seg of table.segments) errno = errno ?? seg.target.io('flush', 0, 0).errno;
      return { errno };
    }
    if (sector + count > table.size) return { errno: op === 'write' || op === 'zeroes' ? 'ENOSPC' : 'EINVAL' };
    const out = op === 'read' ? new Uint8Array(count * 512) : undefined;
    let errno = null;
    const end = sector + count;
    for (const seg of table.segments) {
      const from = Math.max(sector, seg.begin), to = Math.min(end, seg.begin + seg.len);
      if (from >= to) continue;
      const piece = data?.subarray((from - sector) * 512, (to - sector) * 512);
      const r = seg.target.io(op, from - seg.begin, to - from, piece);
      errno = errno ?? r.errno;
      if (out && r.data) out.set(r.data, (from - sector) * 512);
    }
    return errno ? { errno } : { errno: null, data: out };
  }
}

export class Model {
  /** @param {Vector} vector */
  constructor(vector) {
    /** @type {Map<string, Disk>} */
    this.disks = new Map();
    for (const d of vector.disks) {
      const bytes = d.seed === null ? new Uint8Array(d.sectors * 512) : pattern(d.seed, d.sectors * 512);
      this.disks.set(d.name, new Disk(d.name, bytes));
    }
    /** @type {Map<string, MappedDevice>} */
    this.devices = new Map();
    this.clock = 0;
    /** Per-model state that target files keep (e.g. the snapshots of each origin), by key. */
    this.registries = new Map();
    /** @type {Array<(fail: (errno: string) => void) => void>} completions waiting for the request to be mapped */
    this.completions = [];
  }

  /**
   * Queues work Linux does only after the whole request has been mapped (a snapshot copy
   * completing); `fail(errno)` fails the request. @param {(fail: (errno: string) => void) => void} fn
   */
  afterMapping(fn) { this.completions.push(fn); }

  /** Runs the queued completions in order; the first errno one reported, or null. */
  runCompletions() {
    /** @type {string | null} */
    let errno = null;
    const fail = (/** @type {string} */ e) => { errno = errno ?? e; };
    for (let i = 0; i < this.completions.length; i++) this.completions[i](fail);
    this.completions = [];
    return errno;
  }

  /** A registry shared by target files, created on first use. @template T @param {string} key @param {() => T} make @returns {T} */
  registry(key, make) {
    if (!this.registries.has(key)) this.registries.set(key, make());
    return this.registries.get(key);
  }

  /**
   * What a table word names, for targets: a disk, or a mapped device with a live table (as
   * seen from above: requests past its end fail with EIO, like a bio past a device's end).
   * The same name always gives the same object, so targets can compare devices with ===.
   * @param {string} name
   * @returns {import('./blockdev.js').BlockDev | null}
   */
  blockDev(name) {
    const disk = this.disks.get(name);
    if (disk) return disk;
    const dev = this.devices.get(name);
    if (!dev || !dev.live) return null;
    if (!dev.asLower) {
      dev.asLower = {
        name,
        size: () => dev.size(),
        io: (op, sector, count, data) => {
          const r = dev.io(op, sector, count, data);
          return r.errno === 'EINVAL' || r.errno === 'ENOSPC' ? { errno: 'EIO' } : r;
        },
      };
    }
    return dev.asLower;
  }

  // ---- the dmsetup verbs; each returns an errno or null

  /** @param {string} name @param {string[][]} lines */
  create(name, lines) {
    if (this.devices.has(name)) return 'EEXIST';
    if (this.disks.has(name)) return 'EEXIST';
    const dev = new MappedDevice(name, this);
    this.devices.set(name, dev);
    const built = buildTable(lines, this);
    if ('errno' in built) {
      this.devices.delete(name);
      return built.errno;
    }
    dev.live = built.table;
    if (preresumeRefusal(dev.live)) { // dmsetup create removes a device whose resume failed
      for (const seg of dev.live.segments) seg.target.destroy?.();
      this.devices.delete(name);
      return 'EINVAL';
    }
    for (const seg of dev.live.segments) seg.target.resume?.();
    return null;
  }

  /** The device whose live, inactive or outgoing table holds `target` (dm_table_get_md). @param {object} target */
  deviceHolding(target) {
    for (const dev of this.devices.values()) {
      for (const t of [dev.live, dev.inactive, dev.outgoing]) if (t?.segments.some((s) => s.target === target)) return dev;
    }
    return null;
  }

  /** @param {string} name @param {string[][]} lines */
  reload(name, lines) {
    const dev = this.devices.get(name);
    if (!dev) return 'ENXIO';
    const built = buildTable(lines, this);
    if ('errno' in built) return built.errno;
    for (const seg of dev.inactive?.segments ?? []) seg.target.destroy?.();
    dev.inactive = built.table;
    return null;
  }

  /** @param {string} name */
  suspend(name) {
    const dev = this.devices.get(name);
    if (!dev) return 'ENXIO';
    dev.suspended = true;
    return null;
  }

  /** @param {string} name */
  resume(name) {
    const dev = this.devices.get(name);
    if (!dev) return 'ENXIO';
    // As do_resume: the device is suspended and its new table swapped in, then every target's
    // preresume and resume run (dm_resume); a refusal leaves the device suspended on the new
    // table. The old table goes after that (a snapshot reload takes its store over first;
    // destroyed before, it would cancel that handover).
    const next = dev.inactive;
    if (next) {
      dev.outgoing = dev.live;
      dev.live = next;
      dev.inactive = null;
      dev.suspended = true;
    }
    const old = dev.outgoing;
    const refused = dev.suspended && dev.live ? preresumeRefusal(dev.live) : null;
    if (!refused && dev.suspended) for (const seg of dev.live?.segments ?? []) seg.target.resume?.();
    dev.outgoing = null;
    for (const seg of old?.segments ?? []) seg.target.destroy?.();
    if (refused) return refused;
    dev.suspended = false;
    const held = dev.held;
    dev.held = [];
    for (const run of held) run();
    return null;
  }

  /** @param {string} name */
  remove(name) {
    const dev = this.devices.get(name);
    if (!dev) return 'ENXIO';
    for (const other of this.devices.values()) {
      for (const t of [other.live, other.inactive]) {
        if (t && t.segments.some((s) => (s.target.areas ?? []).some((a) => a.dev === dev.asLower))) return 'EBUSY';
      }
    }
    for (const t of [dev.live, dev.inactive]) for (const seg of t?.segments ?? []) seg.target.destroy?.();
    this.devices.delete(name);
    return null;
  }

  /** @param {string} name @param {number} sector @param {string[]} words */
  message(name, sector, words) {
    const dev = this.devices.get(name);
    if (!dev) return 'ENXIO';
    if (!dev.live) return 'ENODEV';
    if (sector >= dev.live.size) return 'EINVAL';
    const seg = dev.live.segments.find((s) => sector >= s.begin && sector < s.begin + s.len);
    const t = /** @type {import('./table.js').Segment} */ (seg).target;
    return t.message ? t.message(words) : 'EINVAL';
  }

  /** @param {string} name @param {'info'|'table'} kind */
  describe(name, kind) {
    const dev = this.devices.get(name);
    if (!dev || !dev.live) return '';
    return dev.live.segments.map((s) => `${s.begin} ${s.len} ${s.type} ${s.target[kind]()}`.trimEnd()).join(' | ');
  }

  // ---- running a vector

  /**
   * Runs every statement and returns the model's answer for each (keyed by the step object).
   * @param {Vector} vector
   * @returns {Map<Step, Answer>}
   */
  run(vector) {
    /** @type {Map<Step, Answer>} */
    const answers = new Map();
    for (const step of vector.steps) {
      if (step.op === 'group') this.group(step.steps, answers);
      else this.step(step, answers);
    }
    return answers;
  }

  /**
   * A begin/end group: every request in it starts at the same time, so a `delay` target moving
   * the clock for one of them must not delay the next; the group ends when its last one does.
   * @param {Step[]} steps @param {Map<Step, Answer>} answers
   */
  group(steps, answers) {
    const start = this.clock;
    let end = start;
    for (const inner of steps) {
      this.clock = start;
      this.step(inner, answers);
      end = Math.max(end, this.clock);
    }
    this.clock = end;
  }

  /** @param {Step} step @param {Map<Step, Answer>} answers */
  step(step, answers) {
    const put = (/** @type {Answer} */ a) => answers.set(step, a);
    const words = (/** @type {import('../lib/parse.js').TableLine[]} */ tls) => tls.map((tl) => tl.words);
    switch (step.op) {
      case 'create': return put({ errno: this.create(step.dev, words(step.table)) });
      case 'reload': return put({ errno: this.reload(step.dev, words(step.table)) });
      case 'suspend': return put({ errno: this.suspend(step.dev) });
      case 'resume': return put({ errno: this.resume(step.dev) });
      case 'remove': return put({ errno: this.remove(step.dev) });
      case 'message': return put({ errno: this.message(step.dev, step.sector, step.words) });
      case 'status': return put({ errno: null, text: this.describe(step.dev, 'info') });
      case 'table-is': return put({ errno: null, text: this.describe(step.dev, 'table') });
      case 'hash': return put({ errno: null, sha256: sha256(/** @type {Disk} */ (this.disks.get(step.disk)).bytes) });
      // The clock only moves forward: requests held by a `delay` may already have taken it past MS.
      case 'time': this.clock = Math.max(this.clock, step.ms); return put({ errno: null });
      case 'wait-merge': return put({ errno: this.mergeOutcome(step.dev) });
      // The kernel log is Linux's words, written by hand and judged by the linux runner.
      case 'kernel-log': return put({ errno: null });
      default: return this.request(step, put);
    }
  }

  /** An I/O statement; on a suspended device it runs at the resume. @param {Step} step @param {(a: Answer) => void} put */
  request(step, put) {
    const dev = this.devices.get(step.dev);
    if (!dev) return put({ errno: 'ENXIO' });
    const run = () => {
      if (!dev.live) return put({ errno: 'ENODEV' });
      const op = step.op === 'zeroes' ? 'zeroes' : step.op;
      const data = op === 'write' ? pattern(step.seed, step.count * 512) : undefined;
      const r = dev.io(/** @type {import('./blockdev.js').Op} */ (op), step.sector ?? 0, step.count ?? 0, data);
      const late = this.runCompletions();
      if (r.errno || late) return put({ errno: r.errno ?? late });
      put(op === 'read' ? { errno: null, sha256: sha256(/** @type {Uint8Array} */ (r.data)) } : { errno: null });
    };
    if (dev.suspended) dev.held.push(run);
    else run();
  }

  /** wait-merge: the merge already happened at resume in the model; only its failure shows. @param {string} name */
  mergeOutcome(name) {
    const first = this.describe(name, 'info').split(' | ')[0] ?? '';
    const w = first.split(' ');
    if (w[2] !== 'snapshot-merge') return 'EINVAL';
    const info = w.slice(3).join(' ');
    return info === 'Invalid' || info === 'Merge failed' ? 'EIO' : null;
  }
}

/** The first errno a target's preresume gives (dm_table_resume_targets), or null. @param {import('./table.js').Table} table */
function preresumeRefusal(table) {
  for (const seg of table.segments) {
    const errno = seg.target.preresume?.();
    if (errno) return errno;
  }
  return null;
}

/** @param {Uint8Array} bytes */
export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}
