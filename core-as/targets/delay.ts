// delay <dev> <offset> <delay> [<write dev> <write offset> <write delay> [<flush dev> <flush offset> <flush delay>]]:
// a linear mapping that holds each request for a while before sending it on (dm-delay.c).
// Three classes, read, write (also DISCARD) and flush, each with its own device, offset and delay
// in milliseconds; with 3 arguments all share them, with 6 flushes follow the write class.
// Time is the host's (clock.ts): a held clone is released once the clock reaches its deadline,
// in arrival order, as flush_delayed_bios walks its list. Suspending releases everything at once.
import { Target, MAP_REMAPPED, MAP_DEFERRED, STATUS_INFO, STATUS_TABLE } from "../target";
import { Io, OP_READ, OP_FLUSH, resumeDeferred } from "../io";
import { DevRef } from "../devref";
import { parseU64 } from "../args";
import { Timed, arm, disarm, clockMs } from "../clock";

const READ_CLASS: i32 = 0;
const WRITE_CLASS: i32 = 1;
const FLUSH_CLASS: i32 = 2;

/** One direction's destination and delay, and how many of its requests are held (ops). */
class DelayClass {
  constructor(public dev: DevRef, public start: u64, public delay: u32) {}
  ops: u32 = 0;

  copy(): DelayClass {
    return new DelayClass(this.dev, this.start, this.delay);
  }

  describe(): string {
    return this.dev.name + " " + this.start.toString() + " " + this.delay.toString();
  }
}

/** The target's timer: held clones and their deadlines, oldest first. */
class HeldIo extends Timed {
  clones: Io[] = [];
  deadlines: f64[] = [];
  private due: Io[] = [];

  constructor(public target: DelayTarget) {
    super();
  }

  hold(io: Io, deadline: f64): void {
    this.clones.push(io);
    this.deadlines.push(deadline);
    arm(this);
  }

  nextDeadline(): f64 {
    let best: f64 = -1;
    for (let i = 0; i < this.deadlines.length; i++) {
      const d = this.deadlines[i];
      if (best < 0 || d < best) best = d;
    }
    return best;
  }

  expire(now: f64): void {
    this.release(now, false);
  }

  /** Sends on every clone due at `now` (all of them when `all`), in arrival order. */
  release(now: f64, all: bool): void {
    // Collect first: a released clone may come straight back here through a stacked device.
    const due = this.due;
    let kept = 0;
    for (let i = 0; i < this.clones.length; i++) {
      if (all || this.deadlines[i] <= now) {
        due.push(this.clones[i]);
      } else {
        this.clones[kept] = this.clones[i];
        this.deadlines[kept] = this.deadlines[i];
        kept++;
      }
    }
    this.clones.length = kept;
    this.deadlines.length = kept;
    for (let i = 0; i < due.length; i++) {
      const io = due[i];
      this.target.classOf(<i32>io.tracked).ops--;
      io.tracked = -1;
      resumeDeferred(io, MAP_REMAPPED);
    }
    due.length = 0;
  }
}

export class DelayTarget extends Target {
  argc: i32 = 0;
  classes: DelayClass[] = [];
  held: HeldIo = new HeldIo(this);

  typeName(): string { return "delay"; }

  ctr(args: string[]): bool {
    const n = args.length;
    if (n != 3 && n != 6 && n != 9) {
      this.error = "requires exactly 3, 6 or 9 arguments: <dev> <offset> <delay> [<write dev> <write offset> <write delay> " +
        "[<flush dev> <flush offset> <flush delay>]], got " + n.toString();
      return false;
    }
    this.argc = n;
    const read = this.parseClass(args, 0, "");
    if (read == null) return false;
    // Fewer arguments: the next class copies the previous one (its own ops count, same target).
    const write = n >= 6 ? this.parseClass(args, 3, "write ") : read.copy();
    if (write == null) return false;
    const flush = n == 9 ? this.parseClass(args, 6, "flush ") : write.copy();
    if (flush == null) return false;
    this.classes = [read, write, flush];
    this.numFlushBios = 1;
    this.numDiscardBios = 1; // no WRITE_ZEROES: Linux's delay does not take them
    return true;
  }

  /** delay_class_ctr: <dev> <offset> <delay> at args[i..i+3). */
  private parseClass(args: string[], i: i32, what: string): DelayClass | null {
    const start = parseU64(args[i + 1]);
    if (!start.ok) {
      this.error = "invalid " + what + "device sector '" + args[i + 1] + "'";
      return null;
    }
    const delay = parseU64(args[i + 2]);
    if (!delay.ok || delay.value > u32.MAX_VALUE) {
      this.error = "invalid " + what + "delay '" + args[i + 2] + "' (milliseconds, 0-4294967295)";
      return null;
    }
    const dev = this.getDevice(args[i], start.value, this.len);
    if (dev == null) {
      if (what.length > 0) this.error = what + "device: " + this.error;
      return null;
    }
    return new DelayClass(dev, start.value, <u32>delay.value);
  }

  classOf(index: i32): DelayClass {
    return this.classes[index];
  }

  map(io: Io): i32 {
    const index = io.op == OP_READ ? READ_CLASS : io.op == OP_FLUSH ? FLUSH_CLASS : WRITE_CLASS;
    const c = this.classes[index];
    io.to = c.dev;
    if (io.count != 0) io.sector = c.start + this.offset(io.sector);
    if (c.delay == 0) return MAP_REMAPPED;
    c.ops++;
    io.tracked = index;
    this.held.hold(io, clockMs() + <f64>c.delay);
    return MAP_DEFERRED;
  }

  /** delay_presuspend: whatever is held goes on now. */
  presuspend(): void {
    this.held.release(clockMs(), true);
    disarm(this.held);
  }

  destroy(): void {
    if (this.classes.length == 0) return; // ctr failed
    this.presuspend();
  }

  status(type: i32): string {
    if (type == STATUS_INFO) {
      return this.classes[READ_CLASS].ops.toString() + " " + this.classes[WRITE_CLASS].ops.toString() + " " +
        this.classes[FLUSH_CLASS].ops.toString();
    }
    if (type != STATUS_TABLE) return "";
    let s = this.classes[READ_CLASS].describe();
    if (this.argc >= 6) s += " " + this.classes[WRITE_CLASS].describe();
    if (this.argc >= 9) s += " " + this.classes[FLUSH_CLASS].describe();
    return s;
  }
}
