// Per-block ordering of the writes an ebs target has in flight (the buffer lock of dm-bufio).
//
// A write that reads a block before rewriting it (read-modify-write) must not interleave with any
// other write to that block, or one of them is lost: the RMW would write back data it read before
// the other write landed. So a write waits for every earlier write in flight that overlaps it in
// blocks, when either of the two is an RMW; whole-block writes to distinct or shared blocks need no
// order between them, and nothing waits when no RMW is in flight. Waits only point at earlier
// writes, so they cannot deadlock, and overlapping writes go out in arrival order.
import { Waiter } from "../io";

/** A write over the underlying blocks [first, end). */
export abstract class OrderedWrite extends Waiter {
  first: u64 = 0;
  end: u64 = 0;
  rmw: bool = false;
  /** Earlier writes this one still waits for, and the later ones waiting for it. */
  blockers: i32 = 0;
  waiters: OrderedWrite[] = [];

  /** Every write this one waited for has finished: start it. */
  abstract go(): void;

  overlaps(other: OrderedWrite): bool {
    return this.first < other.end && other.first < this.end;
  }
}

export class WriteOrder {
  inFlight: OrderedWrite[] = [];
  private rmwInFlight: i32 = 0;

  /** Registers a write; true if it may start now, false if go() will be called later. */
  enter(w: OrderedWrite): bool {
    w.blockers = 0;
    if (w.rmw || this.rmwInFlight > 0) {
      for (let i = 0; i < this.inFlight.length; i++) {
        const other = this.inFlight[i];
        if ((w.rmw || other.rmw) && w.overlaps(other)) {
          other.waiters.push(w);
          w.blockers++;
        }
      }
    }
    this.inFlight.push(w);
    if (w.rmw) this.rmwInFlight++;
    return w.blockers == 0;
  }

  /** A write finished (on the device, or with an error): later writes that waited only for it start. */
  leave(w: OrderedWrite): void {
    const i = this.inFlight.indexOf(w);
    if (i < 0) return;
    const last = this.inFlight.length - 1;
    this.inFlight[i] = this.inFlight[last]; // order in this list does not matter
    this.inFlight.length = last;
    if (w.rmw) this.rmwInFlight--;
    const waiters = w.waiters;
    for (let k = 0; k < waiters.length; k++) {
      const next = waiters[k];
      next.blockers--;
      if (next.blockers == 0) next.go();
    }
    waiters.length = 0;
  }
}
