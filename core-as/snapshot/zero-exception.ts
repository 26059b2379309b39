// zero_exception (dm-snap.c): a discard covering a whole chunk that has an exception zeroes the
// exception's COW chunk instead of passing the discard on; the discard ends when the zeroes are
// written. Linux hands this to kcopyd, which writes zero pages where the COW device takes no
// WRITE_ZEROES; we always write a zeroed buffer, which reads back the same everywhere.
import { Io, Waiter, submitInternal, resumeDeferred, OP_WRITE } from "../io";
import { MAP_SUBMITTED, MAP_KILL } from "../target";
import { DevRef } from "../devref";
import { SECTOR_SHIFT } from "./chunks";
import { allocData, freeData } from "../data-buffer";

class ZeroJob extends Waiter {
  private buf: usize;

  constructor(private clone: Io, cow: DevRef, sector: u64, count: u32) {
    super();
    const bytes = <usize>count << SECTOR_SHIFT;
    this.buf = allocData(bytes);
    memory.fill(this.buf, 0, bytes);
    submitInternal(this, cow, OP_WRITE, 0, sector, count, this.buf, 0);
  }

  ioDone(io: Io, status: i32): void {
    freeData(this.buf);
    this.buf = 0;
    this.clone.status = 0;
    resumeDeferred(this.clone, status != 0 ? MAP_KILL : MAP_SUBMITTED);
  }
}

/** Zeroes `count` sectors of the COW device at `sector` for the (deferred) discard `clone`. */
export function zeroException(clone: Io, cow: DevRef, sector: u64, count: u32): void {
  new ZeroJob(clone, cow, sector, count);
}
