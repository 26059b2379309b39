// ebs <dev> <offset> <emulated sectors> [<underlying sectors>]: 512-byte sectors over a device
// that only takes whole blocks of <underlying sectors> (dm-ebs-target.c). Requests aligned to
// the underlying block go straight through, as dm-ebs remaps them; any other read or write is
// split by ebs/block-op.ts into whole blocks, with a read-modify-write of partial blocks, so the
// device only ever sees whole-block I/O. Writes are ordered per block (ebs/write-order.ts).
// Without <underlying sectors> the device's logical block size is used: 1 sector, since dmkit's
// backing devices and mapped devices all take 512-byte sectors.
import { Target, MAP_REMAPPED, MAP_SUBMITTED, MAP_DEFERRED, MAP_KILL, STATUS_TABLE } from "../target";
import { Io, OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD } from "../io";
import { DevRef } from "../devref";
import { parseU64, isPowerOfTwo, shiftOf } from "../args";
import { Blocks } from "../ebs/blocks";
import { WriteOrder } from "../ebs/write-order";
import { BlockOp, getBlockOp, putBlockOp, KIND_DIRECT, KIND_SPLIT_READ, KIND_SPLIT_WRITE } from "../ebs/block-op";

const MAX_EMULATED: u64 = 8; // PAGE_SIZE in sectors, as dm-ebs limits it
const MAX_UNDERLYING: u64 = 32768; // the largest power of two a %hu holds
const HAS_OP: i64 = 1; // io.tracked: a DIRECT op in the write order belongs to this clone

export class EbsTarget extends Target {
  dev: DevRef | null = null;
  start: u64 = 0;
  emulated: u32 = 0;
  underlying: u32 = 1;
  underlyingSet: bool = false;
  blocks: Blocks = new Blocks(1, 0);
  order: WriteOrder = new WriteOrder();

  typeName(): string { return "ebs"; }

  ctr(args: string[]): bool {
    if (args.length < 3 || args.length > 4) {
      return this.fail("invalid argument count: expected <dev> <offset> <emulated sectors> [<underlying sectors>], got " +
        args.length.toString() + " arguments");
    }
    const start = parseU64(args[1]);
    if (!start.ok) return this.fail("invalid device offset sector '" + args[1] + "'");
    if (start.value >= this.len) {
      return this.fail("device offset sector " + args[1] + " must be smaller than the target length " + this.len.toString() +
        " (dm-ebs rule)");
    }
    this.start = start.value;
    const emulated = parseU64(args[2]);
    if (!emulated.ok || !isPowerOfTwo(emulated.value) || emulated.value > MAX_EMULATED) {
      return this.fail("invalid emulated block size '" + args[2] + "': 1, 2, 4 or 8 sectors");
    }
    this.emulated = <u32>emulated.value;
    if (args.length == 4) {
      const underlying = parseU64(args[3]);
      if (!underlying.ok || !isPowerOfTwo(underlying.value) || underlying.value > MAX_UNDERLYING) {
        return this.fail("invalid underlying block size '" + args[3] + "': a power of two from 1 to 32768 sectors");
      }
      this.underlying = <u32>underlying.value;
      this.underlyingSet = true;
    }
    const size = <u64>this.underlying;
    this.blocks = new Blocks(size, <u32>shiftOf(size));
    // The last block is read and rewritten whole: the device must hold all of it.
    const rounded = this.blocks.roundUp(this.len);
    if (rounded < this.len) return this.fail("target length " + this.len.toString() + " does not fit in whole underlying blocks");
    this.dev = this.getDevice(args[0], this.start, rounded);
    if (this.dev == null) return false;
    if (!this.blocks.isAligned(this.start)) {
      return this.fail("device offset " + args[1] + " is not a multiple of the underlying block size " + size.toString());
    }
    this.numFlushBios = 1;
    this.numDiscardBios = 1; // no WRITE_ZEROES: Linux's ebs does not take them
    return true;
  }

  private fail(message: string): bool {
    this.error = message;
    return false;
  }

  map(io: Io): i32 {
    io.to = this.dev;
    if (io.op == OP_FLUSH) return MAP_REMAPPED;
    const b = this.blocks;
    const start = this.start + this.offset(io.sector);
    const stop = start + <u64>io.count;
    io.sector = start;
    if (io.op == OP_DISCARD) return this.mapDiscard(io, start, stop);
    const aligned = b.isAligned(start) && b.isAligned(stop);
    if (io.op == OP_READ) {
      if (aligned) return MAP_REMAPPED;
      return this.startSplit(KIND_SPLIT_READ, io, start, stop);
    }
    if (io.op == OP_WRITE) {
      if (aligned) return this.startDirect(io, start, stop);
      return this.startSplit(KIND_SPLIT_WRITE, io, start, stop);
    }
    return MAP_KILL; // WRITE_ZEROES never gets here (numWriteZeroesBios is 0)
  }

  /** Only whole blocks are discarded; partial ones at either end are left alone (__ebs_discard_bio). */
  private mapDiscard(io: Io, start: u64, stop: u64): i32 {
    const b = this.blocks;
    const first = b.blockAtOrAfter(start);
    const end = b.blockOf(stop);
    if (first >= end) {
      io.status = 0;
      return MAP_SUBMITTED;
    }
    io.sector = b.firstSector(first);
    io.count = <u32>(b.firstSector(end) - io.sector);
    return this.startDirect(io, io.sector, b.firstSector(end));
  }

  /** A whole-block write or discard: remapped as is, once no overlapping RMW is in its way. */
  private startDirect(io: Io, start: u64, stop: u64): i32 {
    const op = getBlockOp();
    op.init(KIND_DIRECT, io, <DevRef>this.dev, this.blocks, this.order, start, stop);
    io.tracked = HAS_OP;
    return this.order.enter(op) ? MAP_REMAPPED : MAP_DEFERRED;
  }

  private startSplit(kind: u8, io: Io, start: u64, stop: u64): i32 {
    const op = getBlockOp();
    op.init(kind, io, <DevRef>this.dev, this.blocks, this.order, start, stop);
    if (kind == KIND_SPLIT_READ || this.order.enter(op)) op.startSplit();
    return MAP_DEFERRED;
  }

  endIo(io: Io, status: i32): i32 {
    if (io.tracked == HAS_OP) {
      io.tracked = -1;
      const inFlight = this.order.inFlight;
      for (let i = 0; i < inFlight.length; i++) {
        const op = <BlockOp>inFlight[i];
        if (op.clone === io) {
          this.order.leave(op);
          putBlockOp(op);
          break;
        }
      }
    }
    return status;
  }

  status(type: i32): string {
    if (type != STATUS_TABLE) return "";
    let s = (<DevRef>this.dev).name + " " + this.start.toString() + " " + this.emulated.toString();
    if (this.underlyingSet) s += " " + this.underlying.toString();
    return s;
  }
}
