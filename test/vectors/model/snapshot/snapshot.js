// @ts-check
// A snapshot as dm-snap.c defines it, in the model: its exception table (origin chunk -> COW
// chunk), its store, the copy-out that origin writes trigger, and the merge back. Shared by
// the snapshot and snapshot-merge target files and, through the origin registry, by
// snapshot-origin.
//
// Order of events (dm-snap.c): a write to a chunk without an exception allocates a COW chunk
// (a pending exception) and starts its copy at once; the copy completes only after the whole
// request has been mapped (model.afterMapping), in allocation order. Completing commits the
// exception to the store, then, if the snapshot is still valid, inserts it and writes the
// snapshot writes held on it; if the snapshot went invalid meanwhile (a later piece of the same
// request found the COW device full), the exception is dropped and those writes fail. Either
// way the copy's data is already in the COW chunk, as is a whole-chunk write (sent straight
// to the COW chunk, no copy). Doing the copy at allocation is exact: nothing writes the chunk's
// origin bytes or its COW chunk before completion (origin writes wait for it, snapshot writes
// are held on it).
import { mustRead } from '../blockdev.js';
import { PersistentStore, chunkSizeProblem } from './persistent-store.js';
import { TransientStore } from './transient-store.js';

/** @typedef {import('../blockdev.js').BlockDev} BlockDev */
/**
 * A pending exception: `writes` are snapshot writes held until it completes; `full` when a
 * whole-chunk snapshot write was sent to the COW chunk instead of a copy.
 * @typedef {{chunk: number, newChunk: number, writes: Array<() => import('../blockdev.js').Result>, full: boolean}} Pending
 */

/** @typedef {{zeroesCow: boolean, passdownOrigin: boolean}} Features */

/**
 * parse_snapshot_features: `<#features> <feature>...` after the chunk size (none: no features).
 * Returns the features or why they are refused. Words after the announced ones are refused,
 * where Linux ignores them (docs/vectors.md, divergences).
 * @param {string[]} words @returns {Features | string}
 */
function parseFeatures(words) {
  const f = { zeroesCow: false, passdownOrigin: false };
  if (!words.length) return f;
  if (!/^[0-2]$/.test(words[0])) return 'invalid number of feature arguments';
  const n = Number(words[0]);
  if (words.length - 1 < n) return 'not enough feature arguments';
  if (words.length - 1 > n) return 'unexpected arguments after the features';
  for (const w of words.slice(1)) {
    if (w.toLowerCase() === 'discard_zeroes_cow') f.zeroesCow = true;
    else if (w.toLowerCase() === 'discard_passdown_origin') f.passdownOrigin = true;
    else return 'unrecognised snapshot feature';
  }
  if (f.passdownOrigin && !f.zeroesCow) return 'discard_passdown_origin feature depends on discard_zeroes_cow';
  return f;
}

/** The snapshots of each origin device (dm-snap.c's _origins), per model. */
export function snapshotsOf(/** @type {import('../index.js').Model} */ model, /** @type {BlockDev} */ origin) {
  const all = model.registry('snapshots', () => new Map());
  if (!all.has(origin)) all.set(origin, []);
  return /** @type {Snapshot[]} */ (all.get(origin));
}

/** __minimum_chunk_size: the smallest chunk of any snapshot of the origin (0: none). */
export function minimumChunk(/** @type {import('../index.js').Model} */ model, /** @type {BlockDev} */ origin) {
  let min = 0;
  for (const s of snapshotsOf(model, origin)) if (s.store.chunkSize && (!min || s.store.chunkSize < min)) min = s.store.chunkSize;
  return min;
}

/**
 * __origin_write for one position: every valid, active, non-merging snapshot of the origin
 * that does not yet have the chunk holding `sector` copies it out first.
 * @param {import('../index.js').Model} model @param {BlockDev} origin @param {number} sector
 */
export function originWriteAt(model, origin, sector) {
  for (const s of snapshotsOf(model, origin)) {
    if (s.merging || sector >= s.deviceSize) continue;
    if (!s.valid || !s.active) continue;
    const chunk = Math.floor(sector / s.store.chunkSize);
    if (s.exceptions.has(chunk) || s.pending.has(chunk)) continue;
    const pe = s.startException(chunk);
    if (!pe) {
      s.invalidate(); // no room: the snapshot dies (copies in flight fail with it), the origin write goes on
      continue;
    }
    s.copyChunk(chunk, pe.newChunk);
  }
}

/**
 * An origin write of [sector, sector+count): cut at the smallest chunk size of the origin's
 * snapshots, as the origin target splits bios, each piece copying out first.
 * @param {import('../index.js').Model} model @param {BlockDev} origin @param {number} sector @param {number} count
 */
export function originWrite(model, origin, sector, count) {
  const min = minimumChunk(model, origin);
  if (!min) return;
  for (let at = sector; at < sector + count; at = (Math.floor(at / min) + 1) * min) originWriteAt(model, origin, at);
}

export class Snapshot {
  /**
   * Parses `<origin> <COW device> <P|PO|N> <chunk_size>` and loads the store. Returns the
   * snapshot or a failure.
   * @param {string[]} args @param {import('../table.js').TargetContext} ctx @param {boolean} merging
   * @returns {Snapshot | {error: string, errno?: string}}
   */
  static create(args, ctx, merging) {
    if (args.length < 4) return ctx.fail('requires 4 or more arguments');
    const features = parseFeatures(args.slice(4));
    if (typeof features === 'string') return ctx.fail(features);
    const origin = ctx.device(args[0]);
    if (!origin) return ctx.fail('cannot get origin device');
    const cow = ctx.device(args[1]);
    if (!cow) return ctx.fail('cannot get COW device');
    if (origin === cow) return ctx.fail('COW device cannot be the same as origin device');
    const kind = args[2].toUpperCase();
    if (kind[0] !== 'P' && kind[0] !== 'N') return ctx.fail('exception store type is not P or N');
    if (kind[0] === 'P' && kind.length > 1 && kind.slice(1) !== 'O') return ctx.fail(`unsupported persistent store option: ${args[2].slice(1)}`);
    if (!/^(0|[1-9][0-9]*)$/.test(args[3]) || Number(args[3]) > 0xffffffff) return ctx.fail('invalid chunk size');
    const chunkSize = Number(args[3]);
    if (chunkSize !== 0) {
      const bad = chunkSizeProblem(chunkSize);
      if (bad) return ctx.fail(bad);
    }
    const store = kind[0] === 'P' ? new PersistentStore(cow, chunkSize, kind === 'PO') : new TransientStore(cow, chunkSize);
    const s = new Snapshot(ctx.model, origin, cow, store, merging, ctx.begin, ctx.begin + ctx.len);
    s.features = features;

    // A live snapshot already using this COW device hands its exceptions over at resume (a reload);
    // beside one not live yet (a waiting reload, an earlier segment of this table) it is refused.
    const sharing = snapshotsOf(ctx.model, origin).filter((o) => o.cow === cow);
    if (sharing.length > 1 || sharing.some((o) => !o.active)) return ctx.fail('snapshot cow pairing for exception table handover failed');
    if (merging && snapshotsOf(ctx.model, origin).some((o) => o.merging)) return ctx.fail('a snapshot is already merging');
    snapshotsOf(ctx.model, origin).push(s);
    if (sharing.length === 1) {
      s.handoverFrom = sharing[0];
      store.chunkSize = 0; // snapshot_ctr: it comes with the handover; the table line says 0 until then
      return s;
    }
    const r = store.readMetadata((o, n) => s.exceptions.set(o, n));
    if ('errno' in r) {
      s.destroy();
      return { error: `failed to read snapshot metadata: ${r.why}`, errno: r.errno };
    }
    if (r.invalid) s.valid = false;
    if (!store.chunkSize) {
      s.destroy();
      return ctx.fail('chunk size not set');
    }
    return s;
  }

  /**
   * @param {import('../index.js').Model} model @param {BlockDev} origin @param {BlockDev} cow
   * @param {PersistentStore | TransientStore} store @param {boolean} merging
   * @param {number} begin @param {number} deviceSize the size of the table it is in (one segment here)
   */
  constructor(model, origin, cow, store, merging, begin, deviceSize) {
    this.model = model;
    this.origin = origin;
    this.cow = cow;
    this.store = store;
    this.merging = merging;
    this.begin = begin;
    this.deviceSize = deviceSize;
    this.valid = true;
    this.overflowed = false;
    this.active = false;
    /** @type {Map<number, number>} origin chunk -> COW chunk */
    this.exceptions = new Map();
    /** @type {Map<number, Pending>} origin chunk -> its exception while the copy is in flight */
    this.pending = new Map();
    /** @type {Snapshot | null} */
    this.handoverFrom = null;
    /** @type {Features} */
    this.features = { zeroesCow: false, passdownOrigin: false };
    /** @type {object | null} the table segment's target object (targets/snapshot.js) */
    this.target = null;
  }

  /** Reads chunk `chunk` of the origin (cut at the origin's end) into COW chunk `newChunk`. */
  copyChunk(/** @type {number} */ chunk, /** @type {number} */ newChunk) {
    const cs = this.store.chunkSize;
    const count = Math.min(cs, this.origin.size() - chunk * cs);
    this.cow.io('write', newChunk * cs, count, mustRead(this.origin, chunk * cs, count));
  }

  /**
   * A pending exception for `chunk` (null: the COW device is full); its completion is queued to
   * run once the request is mapped: the store commits it (copy_callback -> commit_exception),
   * then pending_complete.
   * @param {number} chunk @returns {Pending | null}
   */
  startException(chunk) {
    const newChunk = this.store.prepare();
    if (newChunk === null) return null;
    /** @type {Pending} */
    const pe = { chunk, newChunk, writes: [], full: false };
    this.pending.set(chunk, pe);
    this.model.afterMapping((fail) => this.store.commit(chunk, newChunk, (ok) => {
      const errno = this.pendingComplete(pe, ok);
      if (errno) fail(errno);
    }));
    return pe;
  }

  /**
   * pending_complete: a commit that failed invalidates the snapshot; an invalid snapshot drops
   * the exception and fails the snapshot writes waiting on it (origin writes go on); a valid one
   * inserts it and lets them through. Returns the errno for the request, or null.
   * @param {Pending} pe @param {boolean} ok
   */
  pendingComplete(pe, ok) {
    this.pending.delete(pe.chunk);
    if (!ok) this.invalidate();
    if (!this.valid) return pe.full || pe.writes.length ? 'EIO' : null;
    this.exceptions.set(pe.chunk, pe.newChunk);
    let errno = null;
    for (const write of pe.writes) errno = errno ?? write().errno;
    return errno;
  }

  invalidate() {
    if (!this.valid) return;
    this.store.drop();
    this.valid = false;
  }

  /**
   * snapshot_preresume: while a handover waits (a live and a not-yet-live snapshot of this
   * origin on this COW device), the source may not resume first and the new one only once the
   * source's device is suspended. Returns null or the errno.
   */
  preresume() {
    const sharing = snapshotsOf(this.model, this.origin).filter((o) => o.cow === this.cow);
    const src = sharing.findLast((o) => o.active), dest = sharing.findLast((o) => !o.active);
    if (!src || !dest) return null;
    if (src === this) return 'EINVAL';
    return this.model.deviceHolding(src.target)?.suspended ? null : 'EINVAL';
  }

  resume() {
    const src = this.handoverFrom;
    if (src && !snapshotsOf(this.model, this.origin).includes(src)) {
      // snapshot_dtr cancelled the handover: the live snapshot went first; no metadata was read
      this.valid = false;
      this.handoverFrom = null;
    } else if (src) {
      // __handover_exceptions: the store moves over, but whether it reports overflow is the new table's
      const overflow = this.store.overflow;
      this.store = src.store;
      if (this.store instanceof PersistentStore) this.store.overflow = overflow;
      this.exceptions = src.exceptions;
      this.valid = src.valid;
      this.overflowed = src.overflowed;
      src.valid = false;
      src.exceptions = new Map();
      this.handoverFrom = null;
    }
    this.active = true;
    if (this.merging) this.merge();
  }

  destroy() {
    const list = snapshotsOf(this.model, this.origin);
    const i = list.indexOf(this);
    if (i >= 0) list.splice(i, 1);
  }

  /** snapshot_status INFO. */
  info() {
    if (!this.valid) return 'Invalid';
    if (this.overflowed) return 'Overflow';
    const [allocated, total, metadata] = this.store.usage();
    return `${allocated}/${total} ${metadata}`;
  }

  table() {
    const f = this.features;
    const names = [...(f.zeroesCow ? ['discard_zeroes_cow'] : []), ...(f.passdownOrigin ? ['discard_passdown_origin'] : [])];
    const features = names.length ? ` ${names.length} ${names.join(' ')}` : '';
    return `${this.origin.name} ${this.cow.name} ${this.store.tableArgs()}${features}`;
  }

  /**
   * The snapshot device: reads come from the COW chunk where an exception exists, else from
   * the origin; a write first gives its chunk an exception (copying the chunk unless the write
   * covers all of it). I/O is cut at chunk boundaries (max_io_len).
   * @param {import('../blockdev.js').Op} op @param {number} rel @param {number} count @param {Uint8Array} [data]
   * @returns {import('../blockdev.js').Result}
   */
  io(op, rel, count, data) {
    if (op === 'flush') {
      const first = this.merging ? this.origin.io('flush', 0, 0).errno : null;
      return { errno: first ?? this.cow.io('flush', 0, 0).errno };
    }
    if (op === 'zeroes') return { errno: 'EOPNOTSUPP' }; // no write-zeroes bios
    if (op === 'discard') return this.discard(this.begin + rel, count);
    const cs = this.store.chunkSize;
    const out = op === 'read' ? new Uint8Array(count * 512) : undefined;
    let errno = null;
    const sector = this.begin + rel; // dm-snap maps the device's own sector numbers
    for (let at = sector; at < sector + count;) {
      const next = Math.min(sector + count, (Math.floor(at / cs) + 1) * cs);
      const piece = data?.subarray((at - sector) * 512, (next - sector) * 512);
      const r = this.merging ? this.mergePiece(op, at, next - at, piece) : this.piece(op, at, next - at, piece);
      errno = errno ?? r.errno;
      if (out && r.data) out.set(r.data, (at - sector) * 512);
      at = next;
    }
    return errno ? { errno } : { errno: null, data: out };
  }

  /**
   * A discard of device sectors [sector, sector+count): refused without discard_zeroes_cow (no
   * discard bios); ignored by a merging snapshot. Otherwise cut at chunk boundaries
   * (snapshot_io_hints), each piece: passed to the origin device too with discard_passdown_origin
   * (no copy-out); on the chunk's exception, zeroes the COW chunk when the piece covers it, or
   * discards that part of it; nothing when the chunk has no exception.
   * @param {number} sector @param {number} count @returns {import('../blockdev.js').Result}
   */
  discard(sector, count) {
    if (!this.features.zeroesCow) return { errno: 'EOPNOTSUPP' };
    if (this.merging) return { errno: null };
    const cs = this.store.chunkSize;
    let errno = null;
    for (let at = sector; at < sector + count;) {
      const next = Math.min(sector + count, (Math.floor(at / cs) + 1) * cs);
      errno = errno ?? this.discardPiece(at, next - at).errno;
      at = next;
    }
    return { errno };
  }

  /** snapshot_map for a discard inside one chunk. @param {number} at @param {number} n */
  discardPiece(at, n) {
    if (!this.valid || this.overflowed) return { errno: 'EIO' }; // both clones are killed
    const cs = this.store.chunkSize;
    const passdown = this.features.passdownOrigin ? this.origin.io('discard', at, n).errno : null;
    const e = this.exceptions.get(Math.floor(at / cs));
    let errno = null;
    if (e !== undefined && n === cs) errno = this.cow.io('write', e * cs, cs, new Uint8Array(cs * 512)).errno; // zero_exception
    else if (e !== undefined) errno = this.cow.io('discard', e * cs + (at % cs), n).errno;
    return { errno: passdown ?? errno };
  }

  /** snapshot_map for one piece inside one chunk. @param {'read'|'write'} op @param {number} at @param {number} n @param {Uint8Array} [data] */
  piece(op, at, n, data) {
    const cs = this.store.chunkSize;
    const chunk = Math.floor(at / cs);
    const inChunk = at % cs;
    if (!this.valid) return { errno: 'EIO' };
    if (op === 'read') {
      const e = this.exceptions.get(chunk);
      return e === undefined ? this.origin.io('read', at, n) : this.cow.io('read', e * cs + inChunk, n);
    }
    if (this.overflowed) return { errno: 'EIO' };
    const e = this.exceptions.get(chunk);
    if (e !== undefined) return this.cow.io('write', e * cs + inChunk, n, data);
    let pe = this.pending.get(chunk);
    if (!pe) {
      pe = this.startException(chunk);
      if (!pe) {
        if (this.store.overflow) this.overflowed = true;
        else this.invalidate();
        return { errno: 'EIO' };
      }
      if (n === cs) {
        // the write covers the chunk: it goes straight to the COW chunk, no copy
        pe.full = true;
        return this.cow.io('write', pe.newChunk * cs, n, data);
      }
      this.copyChunk(chunk, pe.newChunk);
    }
    const to = pe.newChunk * cs + inChunk;
    pe.writes.push(() => this.cow.io('write', to, n, data)); // held until the exception completes
    return { errno: null };
  }

  /**
   * snapshot_merge_map for one piece: chunks still with an exception go to the COW device,
   * the rest to the origin (a write there copies out to the other snapshots first).
   * @param {'read'|'write'} op @param {number} at @param {number} n @param {Uint8Array} [data]
   */
  mergePiece(op, at, n, data) {
    const cs = this.store.chunkSize;
    const e = this.valid ? this.exceptions.get(Math.floor(at / cs)) : undefined;
    if (e !== undefined) return this.cow.io(op, e * cs + (at % cs), n, data);
    if (op === 'write') originWrite(this.model, this.origin, at, n);
    return this.origin.io(op, at, n, data);
  }

  /**
   * The whole merge, at resume (the model has no background): runs of exceptions from the
   * last one backwards are copied back to the origin (after the other snapshots of the origin
   * copied out what that overwrites), then cleared from the store, as snapshot_merge_next_chunks.
   */
  merge() {
    const store = this.store;
    if (!this.valid || !(store instanceof PersistentStore)) return;
    const cs = store.chunkSize;
    for (let run = store.prepareMerge(); run; run = store.prepareMerge()) {
      const oldChunk = run.oldChunk + 1 - run.count;
      const newChunk = run.newChunk + 1 - run.count;
      const size = run.count * cs;
      const dest = oldChunk * cs;
      const count = Math.min(size, this.origin.size() - dest);
      const step = minimumChunk(this.model, this.origin);
      for (let n = 0; n < size; n += step) originWriteAt(this.model, this.origin, dest + n);
      this.model.runCompletions(); // snapshot_merge_next_chunks waits for those copies
      this.origin.io('write', dest, count, mustRead(this.cow, newChunk * cs, count));
      store.commitMerge(run.count);
      for (let k = 0; k < run.count; k++) this.exceptions.delete(oldChunk + k);
    }
  }
}
