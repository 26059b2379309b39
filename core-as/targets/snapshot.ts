// snapshot <origin> <COW device> <P|PO|N> <chunk_size> [<#features> <feature>...]: the origin as
// it was when the snapshot was taken (dm-snap.c). Reads go to the COW chunk where the chunk has
// been copied, to the origin otherwise; the first write to a chunk copies it from the origin first
// (read-modify-write), unless the write covers the whole chunk. Copies commit in the order they
// were allocated. Discards are taken only with discard_zeroes_cow (snapshot/features.ts): they
// never create an exception, only zero or discard existing ones (mapDiscard).
import { Target, MAP_REMAPPED, MAP_KILL, MAP_DEFERRED, MAP_SUBMITTED, STATUS_INFO, STATUS_TABLE } from "../target";
import { Io, OP_FLUSH, OP_WRITE, OP_READ, OP_DISCARD, resumeDeferred } from "../io";
import { DevRef, isCollecting } from "../devref";
import { parseU64 } from "../args";
import { ENOMEM, EIO } from "../errno";
import { ExceptionStore } from "../snapshot/store";
import { PersistentStore } from "../snapshot/persistent-store";
import { TransientStore } from "../snapshot/transient-store";
import { ExceptionTable } from "../snapshot/exceptions";
import { PendingException } from "../snapshot/pending";
import { chunkSizeError } from "../snapshot/chunks";
import { registerSnapshot, unregisterSnapshot, snapshotResumed, validateHandover, findSnapshotsSharingCow } from "../snapshot/origins";
import { MappedDevice, tableEvent } from "../device";
import { tableLog } from "../kernel-log";
import { originWrite, exceptionDone } from "../snapshot/origin-write";
import { SnapshotFeatures, parseSnapshotFeatures } from "../snapshot/features";
import { zeroException } from "../snapshot/zero-exception";

export class SnapshotTarget extends Target {
  origin: DevRef = changetype<DevRef>(0);
  cow: DevRef = changetype<DevRef>(0);
  store: ExceptionStore = changetype<ExceptionStore>(0);
  valid: bool = true;
  active: bool = false;
  overflowed: bool = false;
  mergeFailed: bool = false;
  isMerge: bool = false;
  features: SnapshotFeatures = new SnapshotFeatures();
  complete: ExceptionTable = new ExceptionTable();
  private pending: Map<u64, PendingException> = new Map();
  private startSequence: u64 = 0;
  private completeSequence: u64 = 0;
  private outOfOrder: Map<u64, PendingException> = new Map();
  /** Snapshot reads in flight on origin chunks: a copy of such a chunk waits for them to drain. */
  private tracked: Map<u64, i32> = new Map();
  private drainWaiters: PendingException[] = [];
  /** Copies in flight, for status and tests. */
  copiesInFlight: i32 = 0;
  private handoverFrom: SnapshotTarget | null = null;
  protected registered: bool = false;

  typeName(): string { return "snapshot"; }

  chunkSize(): u64 { return this.store.chunkSize; }
  chunkShift(): u32 { return this.store.chunkShift; }
  /** dm_table_get_size of this snapshot's table: origin writes past it need no copy. */
  deviceSectors(): u64 { return (<Table>this.table).size; }

  ctr(args: string[]): bool {
    if (args.length < 4) {
      this.error = "requires 4 or more arguments: <origin> <COW device> <P|PO|N> <chunk_size>";
      return false;
    }
    // Linux reads the features before anything else, so their errors come first.
    const features = parseSnapshotFeatures(args, 4);
    if (features.error.length > 0) {
      this.error = features.error;
      return false;
    }
    this.features = features;
    const origin = this.getDevice(args[0], 0, this.len);
    if (origin == null) {
      this.error = "cannot get origin device: " + this.error;
      return false;
    }
    const cow = this.getDevice(args[1], 0, 0);
    if (cow == null) {
      this.error = "cannot get COW device: " + this.error;
      return false;
    }
    if (cow.sameAs(origin) && !isCollecting()) {
      this.error = "COW device cannot be the same as origin device";
      return false;
    }
    this.origin = origin;
    this.cow = cow;
    const kind = args[2].toUpperCase();
    if (kind.startsWith("P")) {
      if (kind.length > 1 && kind != "PO") {
        this.error = "unsupported persistent store option: " + args[2].substring(1);
        return false;
      }
      this.store = new PersistentStore(this, cow);
      this.store.overflowSupported = kind == "PO";
    } else if (kind.startsWith("N")) {
      this.store = new TransientStore(this, cow);
    } else {
      this.error = "exception store type is not P or N: '" + args[2] + "'";
      return false;
    }
    const chunk = parseU64(args[3]);
    if (!chunk.ok || chunk.value > u32.MAX_VALUE) {
      this.error = "invalid chunk size '" + args[3] + "'";
      return false;
    }
    if (chunk.value != 0) {
      const bad = chunkSizeError(chunk.value);
      if (bad.length > 0) {
        this.error = bad;
        return false;
      }
    }
    this.store.setChunkSize(chunk.value);
    this.numFlushBios = this.isMerge ? 2 : 1;
    // The second discard clone of discard_passdown_origin goes to the origin.
    if (features.discardZeroesCow) this.numDiscardBios = features.discardPassdownOrigin ? 2 : 1;
    if (isCollecting()) return true;
    // A reload with the same COW device takes the exceptions over from the live snapshot at resume.
    const handover = validateHandover(this);
    if (handover.error.length > 0) {
      this.error = handover.error;
      return false;
    }
    this.handoverFrom = handover.from;
    registerSnapshot(this);
    this.registered = true;
    return true;
  }

  prepare(): bool {
    const from = this.handoverFrom;
    if (from != null) {
      // snapshot_ctr: the chunk size comes with the handover; until then the table line says 0.
      this.store.setChunkSize(0);
      this.setChunkLimits(from.chunkSize());
      return false;
    }
    this.store.readMetadata();
    return true;
  }

  /** The store finished reading (or creating) its metadata. */
  metadataRead(error: string, valid: bool): void {
    if (error.length > 0) {
      this.finishPrepare("failed to read snapshot metadata: " + error);
      return;
    }
    this.valid = valid;
    if (!valid) this.log("Snapshot is marked invalid."); // snapshot_ctr's DMWARN
    if (this.store.chunkSize == 0) {
      this.finishPrepare("chunk size not set");
      return;
    }
    this.setChunkLimits(this.store.chunkSize);
    this.finishPrepare("");
  }

  /** I/O is cut at chunk boundaries; discards too when they zero exceptions (snapshot_io_hints). */
  private setChunkLimits(chunkSize: u64): void {
    this.maxIoLen = chunkSize;
    if (this.features.discardZeroesCow) this.maxDiscardLen = chunkSize;
  }

  /** dm_add_exception: an exception read back from the COW device. */
  addException(oldChunk: u64, newChunk: u64): void {
    this.complete.set(oldChunk, newChunk);
  }

  /**
   * snapshot_preresume: while a handover waits, its source may not resume first, and the new
   * snapshot resumes only once the source's device is suspended (no I/O of the source may reach
   * the store it gives away).
   */
  preresume(): string {
    const pair = findSnapshotsSharingCow(this);
    const src = pair.src;
    if (src == null || pair.dest == null) return "";
    if (src === this) return "Unable to resume snapshot source until handover completes.";
    if (!src.deviceSuspended()) return "Unable to perform snapshot handover until source is suspended.";
    return "";
  }

  /**
   * Linux's snapshot_resume waits for copies the source still has in flight (origin writes, a
   * merge step: it suspends the origin, stop_merge waits); the core cannot wait, so it refuses
   * until they are done. A source that is not suspended is preresume's refusal instead.
   */
  resumeBusy(): string {
    const pair = findSnapshotsSharingCow(this);
    const src = pair.src;
    if (src == null || pair.dest == null || src === this || !src.deviceSuspended()) return "";
    if (src.busy()) return "Unable to perform snapshot handover while the source still has copies in flight; retry when they complete.";
    return "";
  }

  /** dm_suspended: the device this snapshot's table belongs to is suspended. */
  deviceSuspended(): bool {
    const d = (<Table>this.table).device;
    return d != null && (<MappedDevice>d).suspended;
  }

  /** Work in flight that uses the store: copies and their commits (a merge step too, in snapshot-merge). */
  busy(): bool {
    return this.pending.size > 0;
  }

  resume(): void {
    const from = this.handoverFrom;
    if (from != null && !from.registered) {
      // The live snapshot was destroyed before handing its store over (snapshot_dtr's
      // "Cancelling snapshot handover"): this one never read the metadata and stays invalid.
      this.valid = false;
      this.handoverFrom = null;
    } else if (from != null) {
      // __handover_exceptions: swap stores and tables; the old instance gets no more I/O.
      const mine = this.store;
      this.store = from.store;
      this.store.overflowSupported = mine.overflowSupported;
      this.store.snap = this;
      from.store = mine;
      mine.snap = from;
      const table = this.complete;
      this.complete = from.complete;
      from.complete = table;
      this.valid = from.valid;
      this.overflowed = from.overflowed;
      this.setChunkLimits(this.store.chunkSize);
      from.valid = false;
      this.handoverFrom = null;
    }
    this.active = true;
    snapshotResumed(this);
  }

  destroy(): void {
    if (this.registered) unregisterSnapshot(this);
    this.registered = false;
    this.active = false;
    if (changetype<usize>(this.store) != 0 && this.pending.size == 0) this.store.release();
  }

  // ---- mapping

  protected remap(io: Io, newChunk: u64): void {
    io.to = this.cow;
    io.sector = (newChunk << this.chunkShift()) + (io.sector & (this.chunkSize() - 1));
  }

  map(io: Io): i32 {
    if (io.op == OP_FLUSH) {
      io.to = this.cow;
      return MAP_REMAPPED;
    }
    if (!this.valid) return MAP_KILL;
    const isWrite = io.op != OP_READ;
    if (this.overflowed && isWrite) return MAP_KILL;
    const chunk = io.sector >> this.chunkShift();
    if (io.op == OP_DISCARD) return this.mapDiscard(io, chunk);
    const e = this.complete.get(chunk);
    if (e >= 0) {
      this.remap(io, <u64>e);
      return MAP_REMAPPED;
    }
    if (!isWrite) {
      io.to = this.origin;
      this.track(chunk, io);
      return MAP_REMAPPED;
    }
    let pe = this.pendingFor(chunk);
    if (pe == null) {
      pe = this.insertPending(chunk);
      if (pe == null) {
        if (!this.store.overflowSupported) this.invalidate(ENOMEM);
        else if (this.valid && !this.overflowed) {
          this.overflowed = true;
          this.log("Snapshot overflowed: Unable to allocate exception.");
        }
        return MAP_KILL;
      }
    }
    this.remap(io, pe.newChunk);
    if (!pe.started && <u64>io.count == this.chunkSize() && io.op == OP_WRITE) {
      pe.started = true;
      pe.startFullWrite(io);
      return MAP_DEFERRED;
    }
    pe.snapshotClones.push(io);
    if (!pe.started) {
      pe.started = true;
      pe.startCopy();
    }
    return MAP_DEFERRED;
  }

  /**
   * A discard piece (never more than one chunk): with discard_passdown_origin the second clone
   * goes to the origin device, bypassing copy-out. The first zeroes the chunk's exception when it
   * covers the chunk, discards that part of the COW chunk when it covers less, and ends at once
   * where the chunk has no exception (copying it out first would defeat the discard).
   */
  private mapDiscard(io: Io, chunk: u64): i32 {
    if (this.features.discardPassdownOrigin && io.targetBioNr != 0) {
      io.to = this.origin;
      this.track(chunk, io);
      return MAP_REMAPPED;
    }
    const e = this.complete.get(chunk);
    if (e < 0) {
      io.status = 0;
      return MAP_SUBMITTED;
    }
    this.remap(io, <u64>e);
    if (<u64>io.count == this.chunkSize()) {
      zeroException(io, this.cow, io.sector, io.count);
      return MAP_DEFERRED;
    }
    return MAP_REMAPPED;
  }

  endIo(io: Io, status: i32): i32 {
    if (io.tracked >= 0) this.untrack(<u64>io.tracked);
    return status;
  }

  // ---- pending exceptions

  pendingFor(chunk: u64): PendingException | null {
    return this.pending.has(chunk) ? this.pending.get(chunk) : null;
  }

  hasException(chunk: u64): bool {
    return this.complete.has(chunk);
  }

  /** __insert_pending_exception: allocates the COW chunk, in request order. */
  insertPending(chunk: u64): PendingException | null {
    const pe = new PendingException(this, chunk);
    if (!this.store.prepareException(pe)) return null;
    pe.sequence = this.startSequence++;
    this.pending.set(chunk, pe);
    return pe;
  }

  copyStarted(): void {
    this.copiesInFlight++;
  }

  /** copy_callback: commit in allocation order, holding copies that finished early. */
  copyDone(pe: PendingException, error: bool): void {
    this.copiesInFlight--;
    pe.copyError = error;
    if (pe.sequence != this.completeSequence) {
      this.outOfOrder.set(pe.sequence, pe);
      return;
    }
    this.completeSequence++;
    this.store.commitException(pe, !pe.copyError);
    while (this.outOfOrder.has(this.completeSequence)) {
      const next = this.outOfOrder.get(this.completeSequence);
      this.outOfOrder.delete(this.completeSequence);
      this.completeSequence++;
      this.store.commitException(next, !next.copyError);
    }
  }

  /** pending_complete: the exception is on disk (or failed); release what waited for it. */
  pendingComplete(pe: PendingException, success: bool): void {
    if (!success) {
      this.invalidate(EIO);
      this.finishPending(pe, true);
      return;
    }
    if (!this.valid) {
      this.finishPending(pe, true);
      return;
    }
    this.complete.set(pe.oldChunk, pe.newChunk);
    // Snapshot reads still reading the old origin data must finish before origin writes go on.
    if (this.trackedCount(pe.oldChunk) > 0) {
      this.drainWaiters.push(pe);
      return;
    }
    this.finishPending(pe, false);
  }

  private finishPending(pe: PendingException, error: bool): void {
    this.pending.delete(pe.oldChunk);
    pe.freeBuffer();
    const full = pe.fullClone;
    if (full != null) {
      full.status = 0;
      resumeDeferred(full, error ? MAP_KILL : MAP_SUBMITTED);
    }
    const snapshotClones = pe.snapshotClones;
    for (let i = 0; i < snapshotClones.length; i++) resumeDeferred(snapshotClones[i], error ? MAP_KILL : MAP_REMAPPED);
    const originClones = pe.originClones;
    for (let i = 0; i < originClones.length; i++) {
      const clone = originClones[i];
      if (originWrite(this.origin, clone, clone.sector, clone.count) == MAP_REMAPPED) resumeDeferred(clone, MAP_REMAPPED);
    }
    if (this.pending.size == 0 && !this.registered && changetype<usize>(this.store) != 0) this.store.release();
    exceptionDone(this.origin);
  }

  // ---- merge hooks (snapshot-merge overrides them)

  /** The store found the next run of exceptions to merge (0: none left, -1: read error). */
  mergePrepared(count: i64, lastOld: u64, lastNew: u64): void {}
  /** The store wrote the area with merged exceptions cleared. */
  mergeCommitted(ok: bool): void {}
  /** The last tracked I/O on a chunk finished. */
  protected chunkDrained(chunk: u64): void {}

  /** __invalidate_snapshot, with its DMERR line for the two errors Linux names. */
  invalidate(err: i32): void {
    if (!this.valid) return;
    if (err == EIO) this.log("Invalidating snapshot: Error reading/writing.");
    else if (err == ENOMEM) this.log("Invalidating snapshot: Unable to allocate exception.");
    this.store.dropSnapshot();
    this.valid = false;
    const t = this.table;
    if (t != null) tableEvent(t);
  }

  /** DMERR, for the host's log (kernel-log.ts). */
  log(text: string): void {
    const t = this.table;
    if (t != null) tableLog(<Table>t, this.typeName(), text);
  }

  // ---- tracked reads

  protected track(chunk: u64, io: Io): void {
    this.tracked.set(chunk, this.trackedCount(chunk) + 1);
    io.tracked = <i64>chunk;
  }

  protected trackedCount(chunk: u64): i32 {
    return this.tracked.has(chunk) ? this.tracked.get(chunk) : 0;
  }

  private untrack(chunk: u64): void {
    const n = this.trackedCount(chunk) - 1;
    if (n > 0) {
      this.tracked.set(chunk, n);
      return;
    }
    this.tracked.delete(chunk);
    for (let i = 0; i < this.drainWaiters.length; i++) {
      const pe = this.drainWaiters[i];
      if (pe.oldChunk == chunk) {
        this.drainWaiters.splice(i, 1);
        this.finishPending(pe, false);
        break;
      }
    }
    this.chunkDrained(chunk);
  }

  // ---- status

  status(type: i32): string {
    if (type == STATUS_INFO) {
      if (!this.valid) return "Invalid";
      if (this.mergeFailed) return "Merge failed";
      if (this.overflowed) return "Overflow";
      this.store.usage();
      return this.store.sectorsAllocated.toString() + "/" + this.store.totalSectors.toString() + " " +
        this.store.metadataSectors.toString();
    }
    if (type == STATUS_TABLE) return this.origin.name + " " + this.cow.name + this.store.statusTable() + this.features.tableText();
    return "";
  }
}

import { Table } from "../table";
