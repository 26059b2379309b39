// @ts-check
// What a device may hold after a crash, sector by sector. A View is one device as its client
// saw it: for each sector, the write it started from (`base`) and every write sent to it since,
// in order (the workload never has two writes to one sector in flight, so the order is known).
//
// The NBD promise (and the kernel's for a block device): a write whose reply arrived before a
// FLUSH was *sent*, and that FLUSH's reply arrived, is on stable storage. After a crash a sector
// must therefore hold the last such "durable" write or a later one (a later write may or may not
// have landed, sectors of one write independently); never an earlier one, never a write that
// was not sent to it, never garbage. check() takes the level to hold the device to:
//   'flush' — only what the last completed FLUSH covered must survive (power loss);
//   'acked' — every acknowledged write must survive (a killed server loses no page cache).
import { SECTOR, ZERO_ID, decodeSector } from './pattern.js';

const idName = (id) => (id === ZERO_ID ? 'zeroes' : String(id));

export class Write {
  /** @param {number} id @param {number} first sector @param {number} count */
  constructor(id, first, count) {
    this.id = id;
    this.first = first;
    this.count = count;
    this.acked = false;
    this.durable = false;
  }
}

export class View {
  /**
   * @param {string} name @param {number} sectors @param {Uint32Array | number} base initial write id per sector
   * @param {number} [first] the first sector the view covers (sectors are device sectors)
   */
  constructor(name, sectors, base = 0, first = 0) {
    this.name = name;
    this.sectors = sectors;
    this.first = first;
    this.base = typeof base === 'number' ? new Uint32Array(sectors).fill(base) : base;
    /** @type {Map<number, Write[]>} sector -> writes sent to it, in order */
    this.writes = new Map();
    /** Acknowledged writes no completed FLUSH has covered yet. */
    this.ackedSinceFlush = /** @type {Write[]} */ ([]);
    /** Sectors with a write in flight (no second write may start on them). */
    this.busy = new Uint8Array(sectors);
  }

  /** True when [first, first + count) has no write in flight. */
  free(first, count) {
    for (let s = first - this.first; s < first - this.first + count; s++) if (this.busy[s]) return false;
    return true;
  }

  /** Marks a range busy (a read that must see settled data) or free again. */
  hold(first, count, busy = true) {
    this.busy.fill(busy ? 1 : 0, first - this.first, first - this.first + count);
  }

  /** Records a write about to be sent. @param {Write} w */
  sent(w) {
    this.hold(w.first, w.count);
    for (let s = w.first; s < w.first + w.count; s++) {
      let list = this.writes.get(s);
      if (!list) this.writes.set(s, (list = []));
      list.push(w);
    }
  }

  /** The write's reply arrived (ok: success; an error reply leaves its sectors undefined as sent). */
  replied(w, ok) {
    this.hold(w.first, w.count, false);
    if (!ok) return;
    w.acked = true;
    this.ackedSinceFlush.push(w);
  }

  /** A FLUSH is being sent: returns what it covers, to pass to flushed() when it succeeded. */
  flushSent() {
    const cohort = this.ackedSinceFlush;
    this.ackedSinceFlush = [];
    return cohort;
  }

  /** @param {Write[]} cohort */
  flushed(cohort) {
    for (const w of cohort) w.durable = true;
  }

  /** A FLUSH failed or never completed: what it covered is still only acknowledged. @param {Write[]} cohort */
  flushLost(cohort) {
    this.ackedSinceFlush.push(...cohort);
  }

  /**
   * What sector s may hold: {allowed ids, oldest allowed position}.
   * @param {number} s @param {'flush' | 'acked'} level
   */
  allowed(s, level) {
    const list = this.writes.get(s) ?? [];
    let from = -1; // -1: the base content is still allowed
    for (let i = list.length - 1; i >= 0; i--) {
      if (level === 'flush' ? list[i].durable : list[i].acked) { from = i; break; }
    }
    const ids = [];
    if (from < 0) ids.push(this.base[s - this.first]);
    for (let i = Math.max(from, 0); i < list.length; i++) ids.push(list[i].id);
    return ids;
  }

  /**
   * Checks `data`, the device read back from sector `first`. Returns a list of problems
   * (empty: all good), at most `limit` of them, each a line of text.
   * @param {Buffer} data @param {number} first @param {'flush' | 'acked'} level
   */
  check(data, first, level, limit = 10) {
    return this.problems(data, first, level, limit).map((p) => p.text);
  }

  /**
   * check()'s problems with what they are about: the sector, and the write it holds (null when
   * it holds no write of this run's pattern: garbage, or a sector of another place).
   * @param {Buffer} data @param {number} first @param {'flush' | 'acked'} level
   * @returns {Array<{sector: number, holds: number | null, text: string}>}
   */
  problems(data, first, level, limit = 10) {
    const problems = [];
    for (let i = 0; i < data.length / SECTOR && problems.length < limit; i++) {
      const s = first + i;
      const got = decodeSector(data, i * SECTOR, s);
      const ok = this.allowed(s, level);
      if (typeof got === 'string') {
        problems.push({ sector: s, holds: null, text: `${this.name} sector ${s}: ${got}; expected one of writes ${ok.map(idName).join(', ')}` });
      } else if (!ok.includes(got)) {
        const known = (this.writes.get(s) ?? []).map((w) => `${w.id}${w.durable ? ' (flushed)' : w.acked ? ' (acked)' : ''}`);
        problems.push({ sector: s, holds: got, text: `${this.name} sector ${s}: holds write ${idName(got)}, expected one of ${ok.map(idName).join(', ')} (level ${level}; base ${idName(this.base[s - this.first])}, sent: ${known.join(', ') || 'none'})` });
      }
    }
    return problems;
  }

  /**
   * The write each sector must hold when every write was acknowledged and none is in flight
   * (a clean shutdown): the base of a view that continues from here.
   */
  settled() {
    const out = new Uint32Array(this.base);
    for (const [s, list] of this.writes) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i].acked) { out[s - this.first] = list[i].id; break; }
    }
    return out;
  }
}
