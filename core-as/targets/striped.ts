// striped <#stripes> <chunk_size> [<dev> <offset>]+ : chunks dealt round-robin over devices (dm-stripe.c).
import { Target, MAP_REMAPPED, MAP_SUBMITTED, STATUS_INFO, STATUS_TABLE } from "../target";
import { Io, OP_FLUSH, OP_DISCARD, OP_WRITE_ZEROES } from "../io";
import { DevRef } from "../devref";
import { parseU64, shiftOf } from "../args";
import { EOPNOTSUPP } from "../errno";

class Stripe {
  errors: u32 = 0;
  constructor(public dev: DevRef, public physicalStart: u64) {}
}

export class StripedTarget extends Target {
  stripes: u32 = 0;
  chunkSize: u64 = 0;
  width: u64 = 0;        // sectors each stripe holds
  stripesShift: i32 = -1;
  chunkShift: i32 = -1;
  stripe: Stripe[] = [];

  typeName(): string { return "striped"; }

  ctr(args: string[]): bool {
    if (args.length < 2) {
      this.error = "not enough arguments: expected <#stripes> <chunk_size> [<dev> <offset>]+";
      return false;
    }
    const stripes = parseU64(args[0]);
    if (!stripes.ok || stripes.value == 0 || stripes.value > u32.MAX_VALUE) {
      this.error = "invalid stripe count '" + args[0] + "'";
      return false;
    }
    const chunk = parseU64(args[1]);
    if (!chunk.ok || chunk.value == 0 || chunk.value > u32.MAX_VALUE) {
      this.error = "invalid chunk_size '" + args[1] + "'";
      return false;
    }
    const n = stripes.value;
    if (this.len % n != 0) {
      this.error = "target length " + this.len.toString() + " is not divisible by the number of stripes (" + n.toString() + ")";
      return false;
    }
    this.width = this.len / n;
    if (this.width % chunk.value != 0) {
      this.error = "target length " + this.len.toString() + " is not divisible by chunk size " + chunk.value.toString() +
        " times the number of stripes";
      return false;
    }
    if (<u64>args.length != 2 + 2 * n) {
      this.error = "not enough destinations specified: " + n.toString() + " stripes need " + (2 * n).toString() +
        " arguments after the chunk size, got " + (args.length - 2).toString();
      return false;
    }
    this.stripes = <u32>n;
    this.chunkSize = chunk.value;
    this.stripesShift = shiftOf(n);
    this.chunkShift = shiftOf(chunk.value);
    this.maxIoLen = chunk.value;
    this.numFlushBios = this.stripes;
    this.numDiscardBios = this.stripes;
    this.numWriteZeroesBios = this.stripes;
    for (let i: u32 = 0; i < this.stripes; i++) {
      const devArg = args[2 + 2 * i];
      const startArg = args[3 + 2 * i];
      const start = parseU64(startArg);
      if (!start.ok) {
        this.error = "stripe " + i.toString() + ": invalid device sector '" + startArg + "'";
        return false;
      }
      const dev = this.getDevice(devArg, start.value, this.width);
      if (dev == null) {
        this.error = "stripe " + i.toString() + ": " + this.error;
        return false;
      }
      this.stripe.push(new Stripe(dev, start.value));
    }
    return true;
  }

  // Results of mapSector, kept in fields so the hot path allocates nothing.
  private posStripe: u32 = 0;
  private posSector: u64 = 0;

  /** stripe_map_sector: which stripe holds a sector (posStripe), and where inside it (posSector). */
  private mapSector(sector: u64): void {
    let chunk = this.offset(sector);
    let chunkOffset: u64;
    if (this.chunkShift < 0) {
      chunkOffset = chunk % this.chunkSize;
      chunk = chunk / this.chunkSize;
    } else {
      chunkOffset = chunk & (this.chunkSize - 1);
      chunk >>= <u64>this.chunkShift;
    }
    let stripe: u32;
    if (this.stripesShift < 0) {
      stripe = <u32>(chunk % <u64>this.stripes);
      chunk = chunk / <u64>this.stripes;
    } else {
      stripe = <u32>(chunk & <u64>(this.stripes - 1));
      chunk >>= <u64>this.stripesShift;
    }
    this.posStripe = stripe;
    this.posSector = chunk * this.chunkSize + chunkOffset;
  }

  /** stripe_map_range_sector: where a range boundary falls inside one given stripe. */
  private mapRangeSector(sector: u64, target: u32): u64 {
    this.mapSector(sector);
    if (this.posStripe == target) return this.posSector;
    let result = this.posSector - this.posSector % this.chunkSize; // round down to the chunk
    if (target < this.posStripe) result += this.chunkSize;          // that stripe's part starts at its next chunk
    return result;
  }

  map(io: Io): i32 {
    const nr = io.targetBioNr;
    if (io.op == OP_FLUSH) {
      io.to = this.stripe[nr].dev;
      return MAP_REMAPPED;
    }
    if (io.op == OP_DISCARD || io.op == OP_WRITE_ZEROES) {
      const begin = this.mapRangeSector(io.sector, nr);
      const end = this.mapRangeSector(io.sector + <u64>io.count, nr);
      if (begin >= end) {
        io.status = 0; // this stripe holds none of the range
        return MAP_SUBMITTED;
      }
      io.to = this.stripe[nr].dev;
      io.sector = this.stripe[nr].physicalStart + begin;
      io.count = <u32>(end - begin);
      return MAP_REMAPPED;
    }
    this.mapSector(io.sector);
    const stripe = this.stripe[this.posStripe];
    io.to = stripe.dev;
    io.sector = stripe.physicalStart + this.posSector;
    return MAP_REMAPPED;
  }

  endIo(io: Io, status: i32): i32 {
    // stripe_end_io: count errors per stripe device, shown as 'D' in the status.
    if (status != 0 && status != EOPNOTSUPP && io.to != null) {
      for (let i = 0; i < this.stripe.length; i++) {
        if (this.stripe[i].dev.sameAs(<DevRef>io.to)) this.stripe[i].errors++;
      }
    }
    return status;
  }

  status(type: i32): string {
    let s = "";
    if (type == STATUS_INFO) {
      s = this.stripes.toString() + " ";
      for (let i = 0; i < this.stripe.length; i++) s += this.stripe[i].dev.name + " ";
      s += "1 ";
      for (let i = 0; i < this.stripe.length; i++) s += this.stripe[i].errors != 0 ? "D" : "A";
    } else if (type == STATUS_TABLE) {
      s = this.stripes.toString() + " " + this.chunkSize.toString();
      for (let i = 0; i < this.stripe.length; i++) {
        s += " " + this.stripe[i].dev.name + " " + this.stripe[i].physicalStart.toString();
      }
    }
    return s;
  }
}
