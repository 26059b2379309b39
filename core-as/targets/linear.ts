// linear <dev> <offset>: a segment mapped onto a contiguous range of one device (dm-linear.c).
import { Target, MAP_REMAPPED, STATUS_TABLE } from "../target";
import { Io } from "../io";
import { DevRef } from "../devref";
import { parseU64 } from "../args";

export class LinearTarget extends Target {
  dev: DevRef | null = null;
  start: u64 = 0;

  typeName(): string { return "linear"; }

  ctr(args: string[]): bool {
    if (args.length != 2) {
      this.error = "invalid argument count: expected <dev> <offset>, got " + args.length.toString() + " arguments";
      return false;
    }
    const start = parseU64(args[1]);
    if (!start.ok) {
      this.error = "invalid device sector '" + args[1] + "'";
      return false;
    }
    this.start = start.value;
    this.dev = this.getDevice(args[0], this.start, this.len);
    if (this.dev == null) return false;
    this.numFlushBios = 1;
    this.numDiscardBios = 1;
    this.numWriteZeroesBios = 1;
    return true;
  }

  map(io: Io): i32 {
    io.to = this.dev;
    if (io.count != 0) io.sector = this.start + this.offset(io.sector);
    return MAP_REMAPPED;
  }

  status(type: i32): string {
    if (type != STATUS_TABLE) return "";
    return (<DevRef>this.dev).name + " " + this.start.toString();
  }
}
