// @ts-check
// First writes to an origin's chunks done by the receive threads (host-nbd/addon/src/
// thread_copies.h; the core's side: core-as/snapshot/thread-copies.ts).
//
// Why: a first write to an origin chunk through the core costs the event loop a crossing from the
// receive thread, the core's copy and the reply, about three times a plain write; the threads do
// the copy and the write in about 1.4 times (docs/performance.md, "First writes on the threads").
//
// While an origin qualifies (one `snapshot-origin` segment onto an image file, one snapshot of it,
// transient or persistent, on an image file, no other device stacked on either), the core lends
// the threads a run of the snapshot's COW chunks. A thread claims the chunks under a first write,
// copies them into the next lent chunks, logs the exceptions and writes the origin; with a
// persistent snapshot it first commits the exceptions to the snapshot's metadata areas, as the
// core's store would (addon cow_areas.h), starting from the area the core had. The event loop folds the
// log into the core as it accounts for the threads' requests, and lends more as they run low.
// The core must not see the origin or the snapshot meanwhile, since it does not know of the
// copies in progress: so a write to the snapshot device (or any request but a read), or a write
// to the origin device that goes through the core (the threads hand over what they cannot do:
// FUA, unaligned, overlapping), waits at the engine's gate while the copies are taken back: no
// new copy starts, the threads' requests are all accounted for (their exceptions folded), and the
// unused chunks are given back. Those requests then run, and the copies are lent again once the
// origin and the snapshot have had nothing through the core for IDLE_MS. A suspend takes them
// back the same way. A read of the snapshot goes on beside the copies instead (a backup reading
// the snapshot while the origin is written would otherwise keep the first writes on the core):
// its chunks are counted as read, the threads' copies so far folded, and only then is it mapped;
// a thread that copied a chunk waits for the reads counting it before it writes the origin
// (addon snapshot_reads.h), as dm-snap's origin writes wait for tracked snapshot reads.
import { OP } from '../../core-as/js/dmcore.js';
import { whenThreadsAccounted } from './thread-publication.js';

/** Chunks lent at a time; more once fewer than half are left. */
const LEND = 4096;
/** Fewer free than this, and the core hands out the COW device's last chunks itself. */
const LEND_MIN = 64;
/** How long the snapshot and the origin's core path stay quiet before copies are lent again. */
const IDLE_MS = 50;

const SECTOR = 512;
/** What lets a guarded snapshot read's chunks go, by the done track() gave it (for a refusal). */
const GUARDS = /** @type {WeakMap<Function, () => void>} */ (new WeakMap());
/** The snapshot stores whose first writes the threads may do (as dm-snap, case does not matter). */
const STORES = new Set(['N', 'P', 'PO']);

/** @typedef {import('./device-export.js').DeviceExport} DeviceExport */

export class ThreadCopies {
  /** @param {DeviceExport} exp the origin device's export */
  constructor(exp) {
    this.exp = exp;
    this.engine = exp.engine;
    /** off: the core's; on: lent to the threads; taking: being taken back. @type {'off' | 'on' | 'taking'} */
    this.state = 'off';
    /** The snapshot device's id while copies are lent or being taken back. */
    this.snapId = -1;
    /** Requests through the core on the origin or the snapshot that the gate let through, not done. */
    this.inCore = 0;
    /** Requests waiting at the gate for the copies to be taken back. @type {Array<() => void>} */
    this.waiting = [];
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.idleTimer = null;
    /** The snapshot's chunk in sectors while copies are lent. */
    this.chunkSectors = 1;
    /** Chunks the threads copied (first writes they made), folded so far: `dmkit exports`. */
    this.chunksCopied = 0;
    /** Whether the core refused a fold since copies were lent (the claims are not its exceptions then). */
    this.foldRefused = false;
  }

  /** After the export was published: lends copies if the origin qualifies. */
  start() {
    if (this.state !== 'off' || this.inCore > 0 || this.waiting.length > 0) return;
    const plan = this.plan();
    if (!plan) return;
    const { core, id } = this.exp;
    const count = Math.min(LEND, core.originLendable(id, 0));
    if (count < LEND_MIN) return;
    const tag = core.originExceptionsTag(id, 0);
    // A persistent store's current metadata area: the threads commit their exceptions into it.
    const area = plan.persistent ? core.originArea(id, 0) : null;
    if (tag === null || (plan.persistent && !area)) return;
    const first = core.originLend(id, 0, count);
    if (first === null) return;
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    /** @param {BigUint64Array | bigint} held the snapshot's chunks, or the tag of the claims kept */
    const enable = (held) => {
      const args = /** @type {const} */ ([plan.cow.fd, plan.chunkBytes, this.exp.bytes, plan.origin.bytes, first, count, held]);
      return area ? map.enableCopies(...args, area.perArea, area.area, area.committed, area.bytes) : map.enableCopies(...args);
    };
    try {
      // The claims kept when copies were last taken back, if the snapshot's exceptions have not
      // changed since (a snapshot of millions of chunks is not read again); else its chunks.
      if (!enable(tag)) {
        const held = core.originExceptions(id, 0);
        if (!held) throw new Error('the snapshot has no exception table');
        enable(held);
      }
    } catch (e) {
      core.originUnlend(id, 0, first, count);
      this.engine.log(`origin ${this.exp.name}: first writes stay on the event loop: ${e instanceof Error ? e.message : e}`);
      return;
    }
    this.state = 'on';
    this.foldRefused = false;
    this.snapId = plan.snapId;
    this.chunkSectors = plan.chunkBytes / SECTOR;
    this.engine.gates.set(id, this);
    this.engine.gates.set(plan.snapId, this);
  }

  /**
   * What lending needs, or null when the origin does not qualify: its live table one
   * `snapshot-origin` segment from sector 0 onto an open image file, published with chunk marks
   * of the snapshot's chunk size, and no other device's `snapshot-origin` onto that file;
   * exactly one device with a `snapshot` of that file, one segment from sector 0, its COW device
   * an open image file; no table naming either device.
   */
  plan() {
    const { exp } = this;
    const { allocation, engine, core } = exp;
    if (!exp.published || !exp.originMarks || !exp.writeMap?.enableCopies) return null;
    const segs = allocation.segments(exp.name);
    if (segs.length !== 1 || segs[0].target !== 'snapshot-origin' || segs[0].start !== 0) return null;
    const originPath = segs[0].args[0];
    const origin = allocation.isDevice(originPath) ? undefined : engine.fileByPath(originPath);
    if (!origin || origin.closed) return null;
    const tables = core.listDevices().flatMap((name) => {
      try { return [{ name, segs: allocation.segments(name) }]; } catch { return []; }
    });
    let snap = null;
    for (const { name, segs: devSegs } of tables) {
      for (const seg of devSegs) {
        if (seg.args.includes(exp.name)) return null; // a table stacked on the origin device
        // Another origin device over the file: its writes through the core would copy too.
        if (seg.target === 'snapshot-origin' && name !== exp.name && engine.fileByPath(seg.args[0]) === origin) return null;
        if (seg.target !== 'snapshot' && seg.target !== 'snapshot-merge') continue;
        if (engine.fileByPath(seg.args[0]) !== origin) continue;
        if (snap || devSegs.length !== 1 || seg.start !== 0 || seg.target !== 'snapshot' || !STORES.has(seg.args[2].toUpperCase())) return null;
        snap = { name, seg };
      }
    }
    if (!snap) return null;
    const snapName = snap.name;
    if (tables.some(({ segs: devSegs }) => devSegs.some((seg) => seg.args.includes(snapName)))) return null; // stacked on the snapshot
    const cowPath = snap.seg.args[1];
    const cow = allocation.isDevice(cowPath) ? undefined : engine.fileByPath(cowPath);
    const chunkBytes = Number(snap.seg.args[3]) * SECTOR;
    if (!cow || cow.closed || cow.readOnly || chunkBytes !== exp.originMarks.chunk * SECTOR) return null;
    return { origin, cow, chunkBytes, snapId: core.findDevice(snap.name), persistent: snap.seg.args[2].toUpperCase() !== 'N' };
  }

  /**
   * The engine's gate for a request to the origin or the snapshot device: false when it must wait
   * (`run` submits it once the copies are taken back); true to go on now, with `done` counted.
   * @param {number} dev @param {number} op @param {() => void} run
   */
  holds(dev, op, run) {
    if (!this.reaches(dev, op)) return false;
    if (this.state === 'off' || this.readsBeside(dev, op)) return false;
    this.waiting.push(run);
    if (this.state === 'on') this.takeBack();
    return true;
  }

  /** Whether a request of `op` to `dev` goes where copies matter (else the gate ignores it). */
  reaches(dev, op) {
    if (dev === this.snapId) return true;
    return op !== OP.READ && op !== OP.FLUSH;
  }

  /**
   * Whether a request is a read of the snapshot that goes on beside the threads' copies: while
   * they are lent, a snapshot read does not take them back; its chunks are guarded instead (track).
   * @param {number} dev @param {number} op
   */
  readsBeside(dev, op) {
    return this.state === 'on' && dev === this.snapId && op === OP.READ;
  }

  /**
   * Counts a request the gate let through until done. A snapshot read beside the copies first
   * counts its chunks as read (the threads wait for them before they write the origin over a
   * chunk they copied), then folds what the threads copied so far, so that the core maps it onto
   * every such copy (addon snapshot_reads.h); the chunks are let go when it is done.
   * @param {number} dev @param {number} op @param {number} sector @param {number} count
   * @param {(status: number) => void} done
   */
  track(dev, op, sector, count, done) {
    if (!this.reaches(dev, op)) return done;
    this.inCore++;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    const unguard = this.readsBeside(dev, op) ? this.guardRead(sector, count) : null;
    const tracked = (/** @type {number} */ status) => {
      unguard?.();
      if (--this.inCore === 0) this.armIdle();
      done(status);
    };
    if (unguard) GUARDS.set(tracked, unguard);
    return tracked;
  }

  /**
   * A request track() counted was refused at once (no done will come).
   * @param {number} dev @param {number} op @param {(status: number) => void} tracked what track() returned
   */
  refused(dev, op, tracked) {
    GUARDS.get(tracked)?.();
    if (this.reaches(dev, op) && --this.inCore === 0) this.armIdle();
  }

  /** Counts a snapshot read's chunks as read and folds the threads' copies; returns what lets them go. @param {number} sector @param {number} count */
  guardRead(sector, count) {
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    const first = Math.floor(sector / this.chunkSectors);
    const n = Math.floor((sector + Math.max(count, 1) - 1) / this.chunkSectors) - first + 1;
    map.snapshotReads(first, n, true);
    this.fold();
    return () => map.snapshotReads(first, n, false);
  }

  /** Lends again once nothing went through the core for IDLE_MS. */
  armIdle() {
    if (this.idleTimer || this.state !== 'off') return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.inCore === 0 && this.waiting.length === 0 && this.exp.published) this.start();
    }, IDLE_MS);
    this.idleTimer.unref?.();
  }

  /** No new copy starts; once the threads' requests are accounted for, the rest is given back. */
  takeBack() {
    this.state = 'taking';
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    map.disableCopies();
    whenThreadsAccounted(this.exp).then(() => {
      this.settle();
      this.runWaiting();
    });
  }

  /** Submits what waited at the gate. */
  runWaiting() {
    const waiting = this.waiting;
    this.waiting = [];
    for (const run of waiting) run();
  }

  /**
   * The export is withdrawn (a suspend): no new copy starts; withdrawn() follows once the
   * threads' requests are accounted for.
   */
  withdraw() {
    if (this.state === 'off') return;
    this.state = 'taking';
    /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap).disableCopies();
  }

  /** Withdrawn and every thread request accounted for: settled, the gate gone, what waited at it submitted. */
  withdrawn() {
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    this.engine.gates.delete(this.exp.id);
    this.engine.gates.delete(this.snapId);
    this.settle();
    this.runWaiting();
  }

  /** The threads' requests are all accounted for (copies disabled): their copies folded, the unused chunks given back. */
  settle() {
    if (this.state === 'off') return;
    const { core, id } = this.exp;
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    this.fold();
    const [next, end, unused] = map.unusedCopies();
    if (unused > 0) {
      try {
        core.originUnlend(id, 0, next, unused);
      } catch (e) {
        this.engine.log(`bug: origin ${this.exp.name}: giving back ${unused} COW chunks from ${next} (before ${end}) failed: ${e instanceof Error ? e.message : e}`);
      }
    }
    // The COW file's descriptor goes; the claims are kept while they are exactly the snapshot's
    // exceptions (every copy folded), under the tag that changes with them.
    const tag = this.foldRefused ? null : core.originExceptionsTag(id, 0);
    if (tag === null) map.releaseCopies();
    else map.releaseCopies(tag);
    this.state = 'off';
    if (this.inCore === 0) this.armIdle();
  }

  /** After the threads' requests were accounted for: their copies into the core, and more chunks lent when few are left. */
  threadIoDone() {
    if (this.state === 'off') return;
    this.fold();
    if (this.state !== 'on') return;
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    const [, end, unused] = map.unusedCopies();
    if (unused >= LEND / 2) return;
    const { core, id } = this.exp;
    const count = Math.min(LEND, core.originLendable(id, 0));
    if (count < LEND_MIN) return; // the COW device is nearly full: the core hands out the last chunks
    const first = core.originLend(id, 0, count);
    if (first === null) return;
    if (first === end) { map.lendCopies(count); return; }
    core.originUnlend(id, 0, first, count);
    this.engine.log(`bug: origin ${this.exp.name}: lent COW chunks from ${first}, expected ${end}`);
  }

  /** The threads' copies so far, recorded as the snapshot's exceptions (none: the copies are the core's). */
  fold() {
    if (this.state === 'off') return;
    const map = /** @type {import('../server/receive-threads.js').NativeWriteMap} */ (this.exp.writeMap);
    const log = map.drainCopies();
    const { core, id } = this.exp;
    for (let i = 0; i < log.length; i += 2) {
      if (core.originFold(id, 0, log[i], log[i + 1])) this.chunksCopied++;
      else {
        this.foldRefused = true;
        this.engine.log(`bug: origin ${this.exp.name}: the core refused the threads' copy of chunk ${log[i]} into ${log[i + 1]}`);
      }
    }
  }
}
