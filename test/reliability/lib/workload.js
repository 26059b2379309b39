// @ts-check
// Random verified I/O on one connection: sector-aligned writes of self-describing data (see
// pattern.js), reads that must return exactly what was last acknowledged, and FLUSHes, with up
// to `depth` requests in flight. Every write is recorded in the View, so what the device holds
// can be checked later, after a clean stop or after the server was killed.
import { sectorsOf, SECTOR } from './pattern.js';
import { Write } from './history.js';
import { NbdReplyError } from './nbd-client.js';

/** A small seeded PRNG (mulberry32), so a failing run can be repeated from its seed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Write ids are unique across every view of a run (one counter per process is enough). */
let nextWriteId = 1;
export function takeWriteId() { return nextWriteId++; }

/**
 * @typedef {object} WorkloadOptions
 * @property {number} depth          requests in flight
 * @property {number} [maxSectors]   largest request, in sectors (default 64)
 * @property {number} [readShare]    fraction of requests that are verified reads (default 0.3)
 * @property {number} [flushShare]   fraction that are FLUSHes (default 0.05)
 * @property {number} [fuaShare]     fraction of writes sent with FUA (default 0.05)
 * @property {number} [first]        first sector the workload touches (default 0)
 * @property {number} [sectors]      how many sectors it touches (default: the whole view)
 * @property {() => number} random
 */

export class Workload {
  /**
   * @param {import('./nbd-client.js').NbdClient} client
   * @param {import('./history.js').View} view
   * @param {WorkloadOptions} o
   */
  constructor(client, view, o) {
    this.client = client;
    this.view = view;
    this.o = { maxSectors: 64, readShare: 0.3, flushShare: 0.05, fuaShare: 0.05, first: view.first, sectors: view.sectors, ...o };
    this.stopping = false;
    this.inflight = 0;
    this.stats = { writes: 0, reads: 0, flushes: 0, bytes: 0, errors: 0, lost: 0 };
    /** Latency of each completed request, in ms (for the load report). */
    this.latencies = /** @type {number[]} */ ([]);
    /** Data mismatches found by reads: any entry is a failure. */
    this.mismatches = /** @type {string[]} */ ([]);
    /** Error replies (the server said no): a failure unless the test expects faults. */
    this.errorReplies = /** @type {string[]} */ ([]);
    /** @type {Promise<void>} resolves once stopped and nothing is in flight */
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  start() {
    for (let i = 0; i < this.o.depth; i++) this.next();
    return this;
  }

  /** Stops sending; `done` resolves when the requests in flight are answered (or lost). */
  stop() {
    this.stopping = true;
    if (this.inflight === 0) /** @type {() => void} */ (this.resolveDone)();
    return this.done;
  }

  /** Picks a range with no write in flight, or null after a few tries. */
  pickRange() {
    const { first, sectors, maxSectors, random } = this.o;
    for (let tries = 0; tries < 8; tries++) {
      // Mostly small requests, sometimes up to maxSectors.
      const r = random();
      const count = Math.max(1, Math.min(sectors, Math.floor(r < 0.7 ? 1 + random() * 8 : 1 + random() * maxSectors)));
      const start = first + Math.floor(random() * (sectors - count + 1));
      if (this.view.free(start, count)) return [start, count];
    }
    return null;
  }

  next() {
    if (this.stopping || this.client.dead) {
      if (this.inflight === 0) /** @type {() => void} */ (this.resolveDone)();
      return;
    }
    const { random, readShare, flushShare, fuaShare } = this.o;
    const r = random();
    /** @type {Promise<void>} */
    let p;
    const t0 = performance.now();
    if (r < flushShare) {
      p = this.flush();
    } else {
      const range = this.pickRange();
      if (!range) { setImmediate(() => this.next()); return; }
      p = r < flushShare + readShare ? this.read(range[0], range[1]) : this.write(range[0], range[1], random() < fuaShare);
    }
    this.inflight++;
    p.then(() => { this.latencies.push(performance.now() - t0); }, (e) => this.failed(e)).finally(() => {
      this.inflight--;
      this.next();
    });
  }

  /** @param {Error} e */
  failed(e) {
    if (e instanceof NbdReplyError) {
      this.stats.errors++;
      if (this.errorReplies.length < 20) this.errorReplies.push(e.message);
    } else {
      this.stats.lost++; // the connection went away before the reply
    }
  }

  async write(first, count, fua) {
    const w = new Write(takeWriteId(), first, count);
    const data = sectorsOf(first, count, w.id);
    this.view.sent(w);
    let ok = false;
    try {
      await this.client.write(first * SECTOR, data, fua);
      ok = true;
      this.stats.writes++;
      this.stats.bytes += data.length;
    } finally {
      this.view.replied(w, ok);
      // FUA makes this write durable by itself.
      if (ok && fua) w.durable = true;
    }
  }

  async read(first, count) {
    // Hold the range like a write, so the data read is exactly what was last acknowledged.
    this.view.hold(first, count);
    try {
      const data = await this.client.read(first * SECTOR, count * SECTOR);
      this.stats.reads++;
      this.stats.bytes += data.length;
      for (const p of this.view.check(data, first, 'acked', 3)) if (this.mismatches.length < 20) this.mismatches.push(p);
    } finally {
      this.view.hold(first, count, false);
    }
  }

  async flush() {
    const cohort = this.view.flushSent();
    try {
      await this.client.flush();
      this.view.flushed(cohort);
      this.stats.flushes++;
    } catch (e) {
      this.view.flushLost(cohort);
      throw e;
    }
  }
}

/** Reads a whole device back in pieces, a few at a time. @param {import('./nbd-client.js').NbdClient} client */
export async function readAll(client, bytes, piece = 1 << 20) {
  const parts = [];
  for (let at = 0; at < bytes; at += 8 * piece) {
    const batch = [];
    for (let p = at; p < Math.min(bytes, at + 8 * piece); p += piece) batch.push(client.read(p, Math.min(piece, bytes - p)));
    parts.push(...await Promise.all(batch));
  }
  return Buffer.concat(parts);
}
