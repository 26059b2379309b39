// flakey <dev> <offset> <up interval> <down interval> [<#feature args> [<feature>...]]:
// a linear mapping that misbehaves on a schedule (dm-flakey.c, Linux 6.1, plus upstream's
// error_reads). Up for `up` seconds, then down for `down` seconds, counted from table load on
// the host's clock (clock.ts). While down:
//   no features          every read and write fails (EIO)
//   error_reads          reads fail                  (upstream, newer than 6.1)
//   drop_writes          writes succeed without reaching the device
//   error_writes         writes fail
//   corrupt_bio_byte N d v f   byte N (from 1) of each matching read (d=r, after it completes) or
//                        write (d=w, before it is sent) becomes v; f: only requests whose kernel
//                        bi_opf has all these bits (kernelOpf below)
// FLUSH and DISCARD count as writes, as bio_data_dir() says in the kernel.
import { Target, MAP_REMAPPED, MAP_SUBMITTED, MAP_KILL, STATUS_TABLE } from "../target";
import { Io, OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, FLAG_FUA } from "../io";
import { DevRef } from "../devref";
import { parseU64 } from "../args";
import { EIO } from "../errno";
import { clockMs } from "../clock";

// Linux 6.1's bi_opf encoding (include/linux/blk_types.h), for the corrupt_bio_byte flags mask.
const REQ_OP_READ: u32 = 0;
const REQ_OP_WRITE: u32 = 1;
const REQ_OP_DISCARD: u32 = 3;
const REQ_OP_WRITE_ZEROES: u32 = 9;
const REQ_FUA: u32 = 1 << 17;
const REQ_PREFLUSH: u32 = 1 << 18;

const MAX_FEATURE_ARGS: u64 = 6;
// io.tracked while a clone is in flight: it was mapped while down (a read end_io may corrupt),
// or a write had byte N overwritten in the caller's buffer (CORRUPTED + the original byte,
// put back at end_io so the caller's data is untouched, as upstream's bio clone achieves).
const TRACK_DOWN: i64 = 1;
const TRACK_CORRUPTED: i64 = 0x100;

/** The kernel's bi_opf for a clone, as far as dmkit requests can express it. */
function kernelOpf(io: Io): u32 {
  if (io.op == OP_READ) return REQ_OP_READ;
  if (io.op == OP_FLUSH) return REQ_OP_WRITE | REQ_PREFLUSH;
  if (io.op == OP_DISCARD) return REQ_OP_DISCARD;
  const fua = (io.flags & FLAG_FUA) != 0 ? REQ_FUA : 0;
  return (io.op == OP_WRITE ? REQ_OP_WRITE : REQ_OP_WRITE_ZEROES) | fua;
}

export class FlakeyTarget extends Target {
  dev: DevRef | null = null;
  start: u64 = 0;
  up: u32 = 0;
  down: u32 = 0;
  startMs: f64 = 0;
  /** No feature arguments: everything fails while down. */
  allFail: bool = false;
  errorReads: bool = false;
  dropWrites: bool = false;
  errorWrites: bool = false;
  corruptByte: u32 = 0; // 0: feature off; else 1-based byte number
  corruptWrites: bool = false;
  corruptValue: u8 = 0;
  corruptFlags: u32 = 0;

  typeName(): string { return "flakey"; }

  ctr(args: string[]): bool {
    if (args.length < 4) {
      this.error = "invalid argument count: expected <dev> <offset> <up interval> <down interval> [<#feature args> [<arg>...]], got " +
        args.length.toString() + " arguments";
      return false;
    }
    this.startMs = clockMs();
    const start = parseU64(args[1]);
    if (!start.ok) return this.fail("invalid device sector '" + args[1] + "'");
    this.start = start.value;
    const up = parseU64(args[2]);
    if (!up.ok || up.value > u32.MAX_VALUE) return this.fail("invalid up interval '" + args[2] + "' (seconds, 0-4294967295)");
    const down = parseU64(args[3]);
    if (!down.ok || down.value > u32.MAX_VALUE) return this.fail("invalid down interval '" + args[3] + "' (seconds, 0-4294967295)");
    if (up.value + down.value == 0) return this.fail("total (up + down) interval is zero");
    if (up.value + down.value > u32.MAX_VALUE) return this.fail("interval overflow: up + down must fit in 32 bits");
    this.up = <u32>up.value;
    this.down = <u32>down.value;
    if (!this.parseFeatures(args)) return false;
    this.dev = this.getDevice(args[0], this.start, this.len);
    if (this.dev == null) return false;
    this.numFlushBios = 1;
    this.numDiscardBios = 1; // no WRITE_ZEROES: Linux's flakey does not take them
    return true;
  }

  private fail(message: string): bool {
    this.error = message;
    return false;
  }

  /** parse_features: args[4] counts the feature words that follow, and nothing may follow them. */
  private parseFeatures(args: string[]): bool {
    if (args.length == 4) {
      this.allFail = true;
      return true;
    }
    const n = parseU64(args[4]);
    if (!n.ok || n.value > MAX_FEATURE_ARGS) return this.fail("invalid number of feature args '" + args[4] + "' (0-6)");
    const end = 5 + <i32>n.value;
    if (end > args.length) {
      return this.fail("not enough feature arguments: " + n.value.toString() + " announced, " + (args.length - 5).toString() + " given");
    }
    if (end < args.length) return this.fail("unexpected arguments after the features: '" + args.slice(end).join(" ") + "'");
    if (n.value == 0) this.allFail = true;
    let i = 5;
    while (i < end) {
      const word = args[i++].toLowerCase();
      if (word == "error_reads") {
        if (this.errorReads) return this.fail("feature error_reads duplicated");
        this.errorReads = true;
      } else if (word == "drop_writes") {
        if (this.dropWrites) return this.fail("feature drop_writes duplicated");
        if (this.errorWrites) return this.fail("feature drop_writes conflicts with feature error_writes");
        this.dropWrites = true;
      } else if (word == "error_writes") {
        if (this.errorWrites) return this.fail("feature error_writes duplicated");
        if (this.dropWrites) return this.fail("feature error_writes conflicts with feature drop_writes");
        this.errorWrites = true;
      } else if (word == "corrupt_bio_byte") {
        if (!this.parseCorrupt(args, i, end)) return false;
        i += 4;
      } else {
        return this.fail("unrecognised flakey feature '" + args[i - 1] + "'");
      }
    }
    if (this.corruptByte != 0 && this.corruptWrites && this.dropWrites) {
      return this.fail("drop_writes is incompatible with corrupt_bio_byte with the WRITE flag set");
    }
    if (this.corruptByte != 0 && this.corruptWrites && this.errorWrites) {
      return this.fail("error_writes is incompatible with corrupt_bio_byte with the WRITE flag set");
    }
    if (this.corruptByte != 0 && !this.corruptWrites && this.errorReads) {
      return this.fail("error_reads is incompatible with corrupt_bio_byte with the READ flag set");
    }
    return true;
  }

  /** corrupt_bio_byte <Nth_byte> <r|w> <value> <flags>, its parameters at args[i..i+4). */
  private parseCorrupt(args: string[], i: i32, end: i32): bool {
    if (this.corruptByte != 0) return this.fail("feature corrupt_bio_byte duplicated");
    if (end - i < 4) return this.fail("feature corrupt_bio_byte requires 4 parameters: <Nth_byte> <r|w> <value> <flags>");
    const nth = parseU64(args[i]);
    if (!nth.ok || nth.value == 0 || nth.value > u32.MAX_VALUE) {
      return this.fail("invalid corrupt bio byte '" + args[i] + "' (1-4294967295)");
    }
    const dir = args[i + 1].toLowerCase();
    if (dir != "r" && dir != "w") return this.fail("invalid corrupt bio direction '" + args[i + 1] + "' (r or w)");
    const value = parseU64(args[i + 2]);
    if (!value.ok || value.value > 255) {
      return this.fail("invalid corrupt value '" + args[i + 2] + "' to write into bio byte (0-255)");
    }
    const flags = parseU64(args[i + 3]);
    if (!flags.ok || flags.value > u32.MAX_VALUE) return this.fail("invalid corrupt bio flags mask '" + args[i + 3] + "'");
    this.corruptByte = <u32>nth.value;
    this.corruptWrites = dir == "w";
    this.corruptValue = <u8>value.value;
    this.corruptFlags = <u32>flags.value;
    return true;
  }

  /** Whole seconds since table load, against the up/down cycle (jiffies / HZ in the kernel). */
  isDown(): bool {
    const elapsedMs = clockMs() - this.startMs;
    const elapsed = elapsedMs <= 0 ? <u64>0 : <u64>Math.floor(elapsedMs / 1000);
    return elapsed % (<u64>this.up + <u64>this.down) >= <u64>this.up;
  }

  private remap(io: Io): i32 {
    io.to = this.dev;
    if (io.count != 0) io.sector = this.start + this.offset(io.sector);
    return MAP_REMAPPED;
  }

  private corruptionApplies(io: Io): bool {
    return (kernelOpf(io) & this.corruptFlags) == this.corruptFlags && <u64>(this.corruptByte - 1) < (<u64>io.count << 9);
  }

  map(io: Io): i32 {
    if (!this.isDown()) return this.remap(io);
    if (io.op == OP_READ) {
      if (this.allFail || this.errorReads) return MAP_KILL;
      io.tracked = TRACK_DOWN;
      return this.remap(io);
    }
    if (this.dropWrites) {
      io.status = 0;
      return MAP_SUBMITTED;
    }
    if (this.errorWrites) {
      io.status = EIO;
      return MAP_SUBMITTED;
    }
    if (this.allFail) return MAP_KILL;
    if (this.corruptByte != 0 && this.corruptWrites && io.op == OP_WRITE && this.corruptionApplies(io)) {
      const at = io.buf + <usize>(this.corruptByte - 1);
      io.tracked = TRACK_CORRUPTED + <i64>load<u8>(at);
      store<u8>(at, this.corruptValue);
    }
    return this.remap(io);
  }

  endIo(io: Io, status: i32): i32 {
    const tracked = io.tracked;
    if (tracked >= TRACK_CORRUPTED) {
      store<u8>(io.buf + <usize>(this.corruptByte - 1), <u8>(tracked - TRACK_CORRUPTED));
    } else if (tracked == TRACK_DOWN && status == 0 && this.corruptByte != 0 && !this.corruptWrites &&
               this.corruptionApplies(io)) {
      store<u8>(io.buf + <usize>(this.corruptByte - 1), this.corruptValue);
    }
    return status;
  }

  status(type: i32): string {
    if (type != STATUS_TABLE) return "";
    // Linux 6.1 prints each word followed by a space, the last one included.
    let s = (<DevRef>this.dev).name + " " + this.start.toString() + " " + this.up.toString() + " " + this.down.toString() + " ";
    const words = (this.errorReads ? 1 : 0) + (this.dropWrites || this.errorWrites ? 1 : 0) + (this.corruptByte != 0 ? 5 : 0);
    s += words.toString() + " ";
    if (this.errorReads) s += "error_reads ";
    if (this.dropWrites) s += "drop_writes ";
    else if (this.errorWrites) s += "error_writes ";
    if (this.corruptByte != 0) {
      s += "corrupt_bio_byte " + this.corruptByte.toString() + (this.corruptWrites ? " w " : " r ") +
        this.corruptValue.toString() + " " + this.corruptFlags.toString() + " ";
    }
    return s;
  }
}
