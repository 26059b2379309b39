// error: every I/O fails with EIO (dm-target.c's io_err target). Flushes have nothing to do.
import { Target, MAP_KILL } from "../target";
import { Io } from "../io";

export class ErrorTarget extends Target {
  typeName(): string { return "error"; }

  ctr(args: string[]): bool {
    // The kernel's error target ignores its arguments; so do we.
    this.numDiscardBios = 1; // fail discards with EIO; no WRITE_ZEROES bios (EOPNOTSUPP), as io_err_ctr
    return true;
  }

  map(io: Io): i32 {
    return MAP_KILL;
  }

  status(type: i32): string { return ""; }
}
