// snapshot-origin <origin>: the origin device as its users see it; a write first has every
// snapshot of the device copy the chunks it would overwrite (dm-snap.c origin target).
import { Target, MAP_REMAPPED, STATUS_TABLE } from "../target";
import { Io, OP_READ, OP_FLUSH } from "../io";
import { DevRef } from "../devref";
import { originWrite } from "../snapshot/origin-write";
import { registerOrigin, unregisterOrigin } from "../snapshot/origins";

export class OriginTarget extends Target {
  dev: DevRef = changetype<DevRef>(0);
  private registered: bool = false;

  typeName(): string { return "snapshot-origin"; }

  ctr(args: string[]): bool {
    if (args.length != 1) {
      this.error = "incorrect number of arguments: expected <origin>, got " + args.length.toString();
      return false;
    }
    const dev = this.getDevice(args[0], 0, this.len);
    if (dev == null) return false;
    this.dev = dev;
    this.numFlushBios = 1; // and no discard or WRITE_ZEROES bios: origin_ctr sets none
    registerOrigin(this);
    this.registered = true;
    return true;
  }

  map(io: Io): i32 {
    // No offset: like the kernel's origin, the mapping is sector for sector from sector 0.
    io.to = this.dev;
    if (io.op == OP_READ || io.op == OP_FLUSH) return MAP_REMAPPED;
    return originWrite(this.dev, io, io.sector, io.count);
  }

  destroy(): void {
    if (this.registered) unregisterOrigin(this);
    this.registered = false;
  }

  status(type: i32): string {
    return type == STATUS_TABLE ? this.dev.name : "";
  }
}
