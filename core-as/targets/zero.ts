// zero: reads return zeroes, writes are dropped (dm-zero.c). Anything else fails closed.
import { Target, MAP_SUBMITTED, MAP_KILL } from "../target";
import { Io, OP_READ, OP_WRITE, OP_DISCARD } from "../io";

export class ZeroTarget extends Target {
  typeName(): string { return "zero"; }

  ctr(args: string[]): bool {
    if (args.length != 0) {
      this.error = "no arguments required, got " + args.length.toString();
      return false;
    }
    this.numDiscardBios = 1; // dropped, as writes are; no WRITE_ZEROES bios: Linux's zero takes none
    return true;
  }

  map(io: Io): i32 {
    if (io.op == OP_READ) {
      memory.fill(io.buf, 0, <usize>io.count << 9);
      io.status = 0;
      return MAP_SUBMITTED;
    }
    if (io.op == OP_WRITE || io.op == OP_DISCARD) {
      io.status = 0;
      return MAP_SUBMITTED;
    }
    return MAP_KILL;
  }

  status(type: i32): string { return ""; }
}
