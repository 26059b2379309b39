// A pending exception: one origin chunk being copied to its new COW chunk, and the I/O that
// waits for it (dm_snap_pending_exception). The copy reads the origin chunk into a buffer and
// writes it to the COW device (kcopyd's job); a write covering the whole chunk is the copy itself.
import { Io, Waiter, submitInternal, OP_READ, OP_WRITE } from "../io";
import { SnapshotTarget } from "../targets/snapshot";
import { SECTOR_SHIFT } from "./chunks";
import { allocData, freeData } from "../data-buffer";

const STEP_COPY_READ: i64 = 1;
const STEP_COPY_WRITE: i64 = 2;
const STEP_FULL_WRITE: i64 = 3;

export class PendingException extends Waiter {
  newChunk: u64 = 0;
  started: bool = false;
  copyError: bool = false;
  /** Order of allocation; commits happen in this order (exception_sequence). */
  sequence: u64 = 0;
  /** Snapshot writes remapped onto the new chunk, released once the exception is committed. */
  snapshotClones: Io[] = [];
  /** Origin writes that must wait until the chunk has been copied. */
  originClones: Io[] = [];
  /** A snapshot write covering the whole chunk, written in place of the copy. */
  fullClone: Io | null = null;
  private buf: usize = 0;

  constructor(public snap: SnapshotTarget, public oldChunk: u64) {
    super();
  }

  /** start_copy: origin chunk -> buffer -> COW chunk, shortened at the end of the origin. */
  startCopy(): void {
    const s = this.snap;
    const chunkSize = s.chunkSize();
    const src = this.oldChunk << s.chunkShift();
    const originSize = s.origin.sectors();
    // Cut at the origin's end; a chunk wholly past it (a snapshot placed after another segment
    // maps by device sector, as Linux's does) is read whole, as dm-snap's start_copy computes it,
    // and fails with EIO at the device's end (route), as the block layer fails it.
    const count = <u32>(src <= originSize ? min<u64>(chunkSize, originSize - src) : chunkSize);
    this.buf = allocData(<usize>count << SECTOR_SHIFT);
    s.copyStarted();
    submitInternal(this, s.origin, OP_READ, 0, src, count, this.buf, STEP_COPY_READ);
  }

  /** start_full_bio: the whole-chunk write goes straight to the new chunk and counts as the copy. */
  startFullWrite(clone: Io): void {
    this.fullClone = clone;
    this.snap.copyStarted();
    submitInternal(this, this.snap.cow, OP_WRITE, clone.flags, clone.sector, clone.count, clone.buf, STEP_FULL_WRITE);
  }

  ioDone(io: Io, status: i32): void {
    if (io.cookie == STEP_COPY_READ && status == 0) {
      const dest = this.newChunk << this.snap.chunkShift();
      submitInternal(this, this.snap.cow, OP_WRITE, 0, dest, io.count, this.buf, STEP_COPY_WRITE);
      return;
    }
    this.freeBuffer();
    this.snap.copyDone(this, status != 0);
  }

  freeBuffer(): void {
    if (this.buf != 0) {
      freeData(this.buf);
      this.buf = 0;
    }
  }
}
