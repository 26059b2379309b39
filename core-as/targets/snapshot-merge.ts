// snapshot-merge <origin> <COW device> P <chunk_size>: takes the origin's place and shows the
// snapshot's data while copying its exceptions back into the origin in the background, last
// committed first, runs of consecutive chunks at a time (dm-snap.c's merge). Once done the COW
// device holds no exceptions and the origin reads as the snapshot did.
import { MAP_REMAPPED, MAP_DEFERRED, MAP_KILL } from "../target";
import { Io, Waiter, submitInternal, resumeDeferred, OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD } from "../io";
import { SnapshotTarget } from "./snapshot";
import { originWrite, originWriteExtent, ExceptionWaiter, waitForExceptions, stopWaitingForExceptions } from "../snapshot/origin-write";
import { minimumChunkSize } from "../snapshot/origins";
import { SECTOR_SHIFT } from "../snapshot/chunks";
import { allocData, freeData } from "../data-buffer";

const MERGE_READ: i64 = 1;
const MERGE_WRITE: i64 = 2;
const MERGE_FLUSH: i64 = 3;

export class SnapshotMergeTarget extends SnapshotTarget {
  merging: bool = false;
  /** Suspending: the merge stops after the step in flight (SHUTDOWN_MERGE). */
  private stopping: bool = false;
  private firstMergingChunk: u64 = 0;
  private numMergingChunks: u64 = 0;
  /** Writes to chunks being merged wait here (bios_queued_during_merge). */
  private queuedDuringMerge: Io[] = [];
  private job: MergeJob = changetype<MergeJob>(0);

  constructor() {
    super();
    this.isMerge = true;
  }

  typeName(): string { return "snapshot-merge"; }

  ctr(args: string[]): bool {
    if (!super.ctr(args)) return false;
    if (!this.store.canMerge()) {
      this.error = "snapshot exception store does not support snapshot-merge (use P)";
      return false;
    }
    this.numFlushBios = 2;
    this.job = new MergeJob(this);
    return true;
  }

  resume(): void {
    super.resume();
    // snapshot-merge acts as an origin: writes never span a chunk of any snapshot.
    this.maxIoLen = minimumChunkSize(this.origin);
    this.startMerge();
  }

  /** snapshot_merge_presuspend -> stop_merge: no new step; the one in flight finishes. */
  presuspend(): void {
    if (this.merging) this.stopping = true;
  }

  busy(): bool {
    return super.busy() || this.merging;
  }

  destroy(): void {
    this.merging = false;
    if (changetype<usize>(this.job) != 0) stopWaitingForExceptions(this.job);
    super.destroy();
  }

  map(io: Io): i32 {
    if (io.op == OP_FLUSH) {
      io.to = io.targetBioNr == 0 ? this.origin : this.cow;
      return MAP_REMAPPED;
    }
    if (io.op == OP_DISCARD) {
      io.status = 0; // once merging, discards no longer change anything
      return 1;
    }
    const chunk = io.sector >> this.chunkShift();
    const isWrite = io.op != OP_READ;
    if (this.valid) {
      const e = this.complete.get(chunk);
      if (e >= 0) {
        if (isWrite && chunk >= this.firstMergingChunk && chunk < this.firstMergingChunk + this.numMergingChunks) {
          io.to = this.origin;
          this.queuedDuringMerge.push(io);
          return MAP_DEFERRED;
        }
        this.remap(io, <u64>e);
        if (isWrite) this.track(chunk, io);
        return MAP_REMAPPED;
      }
    }
    io.to = this.origin;
    if (isWrite) return originWrite(this.origin, io, io.sector, io.count);
    return MAP_REMAPPED;
  }

  // ---- the merge, step by step

  startMerge(): void {
    this.stopping = false;
    if (this.merging) return;
    this.merging = true;
    this.nextChunks();
  }

  nextChunks(): void {
    if (!this.merging) return;
    if (this.stopping) {
      this.stopping = false;
      this.shutdown();
      return;
    }
    if (!this.valid) {
      this.log("Snapshot is invalid: can't merge");
      this.shutdown();
      return;
    }
    this.store.prepareMerge();
  }

  mergePrepared(count: i64, lastOld: u64, lastNew: u64): void {
    if (count <= 0) {
      if (count < 0) {
        this.log("Read error in exception store: shutting down merge");
        this.mergeFailed = true;
      }
      this.shutdown();
      return;
    }
    const n = <u64>count;
    this.job.begin(lastOld + 1 - n, lastNew + 1 - n, n);
  }

  /** The copies other snapshots needed are done: stop new writes to the run, wait for old ones. */
  runReady(oldChunk: u64, n: u64): void {
    this.firstMergingChunk = oldChunk;
    this.numMergingChunks = n;
    this.job.waitForWrites();
  }

  writesDrained(oldChunk: u64, n: u64): bool {
    for (let i: u64 = 0; i < n; i++) if (this.trackedCount(oldChunk + i) > 0) return false;
    return true;
  }

  protected chunkDrained(chunk: u64): void {
    if (this.merging) this.job.writeDrained();
  }

  /** The run is in the origin and the area no longer lists it. */
  mergeCommitted(ok: bool): void {
    if (!ok) {
      this.fail("Write error in exception store: shutting down merge");
      return;
    }
    // remove_single_exception_chunk: the merged chunks read from the origin from now on.
    for (let i: u64 = 0; i < this.numMergingChunks; i++) this.complete.delete(this.firstMergingChunk + i);
    this.numMergingChunks = 0;
    this.releaseQueued(false);
    this.nextChunks();
  }

  /** merge_callback's `shut`, with the DMERR line that says why. */
  fail(why: string): void {
    this.log(why);
    this.mergeFailed = true;
    this.numMergingChunks = 0;
    this.releaseQueued(true);
    this.shutdown();
  }

  private releaseQueued(error: bool): void {
    const queued = this.queuedDuringMerge;
    this.queuedDuringMerge = [];
    for (let i = 0; i < queued.length; i++) resumeDeferred(queued[i], error ? MAP_KILL : MAP_REMAPPED);
  }

  private shutdown(): void {
    this.merging = false;
  }
}

/** One merge step's I/O: COW run -> buffer -> origin, then an origin flush (kcopyd + merge_callback). */
class MergeJob extends ExceptionWaiter {
  private oldChunk: u64 = 0;
  private newChunk: u64 = 0;
  private count: u64 = 0;
  private buf: usize = 0;
  private waitingForWrites: bool = false;
  private io: MergeIo = changetype<MergeIo>(0);

  constructor(public target: SnapshotMergeTarget) {
    super();
    this.io = new MergeIo(this);
  }

  begin(oldChunk: u64, newChunk: u64, count: u64): void {
    this.oldChunk = oldChunk;
    this.newChunk = newChunk;
    this.count = count;
    this.retry();
  }

  /** Other snapshots copy the origin chunks first; retried whenever one of their copies ends. */
  retry(): void {
    const t = this.target;
    if (!t.merging) return;
    const sector = this.oldChunk << t.chunkShift();
    const size = this.count * t.chunkSize();
    if (originWriteExtent(t.origin, sector, size, t.maxIoLen)) {
      waitForExceptions(this);
      return;
    }
    t.runReady(this.oldChunk, this.count);
  }

  waitForWrites(): void {
    this.waitingForWrites = true;
    this.writeDrained();
  }

  writeDrained(): void {
    if (!this.waitingForWrites || !this.target.writesDrained(this.oldChunk, this.count)) return;
    this.waitingForWrites = false;
    this.copy();
  }

  private copy(): void {
    const t = this.target;
    const dest = this.oldChunk << t.chunkShift();
    const originSize = t.origin.sectors();
    let sectors = this.count * t.chunkSize();
    if (sectors > originSize - dest) sectors = originSize - dest;
    this.buf = allocData(<usize>(sectors << SECTOR_SHIFT));
    submitInternal(this.io, t.cow, OP_READ, 0, this.newChunk << t.chunkShift(), <u32>sectors, this.buf, MERGE_READ);
  }

  done(io: Io, status: i32): void {
    const t = this.target;
    if (status != 0 || !t.merging) {
      this.freeBuffer();
      if (t.merging) t.fail(failure(io.cookie));
      return;
    }
    if (io.cookie == MERGE_READ) {
      submitInternal(this.io, t.origin, OP_WRITE, 0, this.oldChunk << t.chunkShift(), io.count, this.buf, MERGE_WRITE);
    } else if (io.cookie == MERGE_WRITE) {
      this.freeBuffer();
      submitInternal(this.io, t.origin, OP_FLUSH, 0, 0, 0, 0, MERGE_FLUSH);
    } else {
      t.store.commitMerge(this.count);
    }
  }

  private freeBuffer(): void {
    if (this.buf != 0) freeData(this.buf);
    this.buf = 0;
  }
}

/** merge_callback's and the origin flush's DMERR for a failed step. */
function failure(step: i64): string {
  if (step == MERGE_READ) return "Read error: shutting down merge.";
  if (step == MERGE_WRITE) return "Write error: shutting down merge.";
  return "Flush after merge failed: shutting down merge";
}

/** The Waiter for a merge job's I/O (a class can extend only one base). */
class MergeIo extends Waiter {
  constructor(public job: MergeJob) {
    super();
  }

  ioDone(io: Io, status: i32): void {
    this.job.done(io, status);
  }
}
