// The target interface, as struct target_type is in the kernel: ctr, map, end_io, status.
// A target owns no I/O: map() either remaps the clone onto a device (the core submits it),
// or finishes it itself (zero-fill, error), exactly like DM_MAPIO_REMAPPED / _SUBMITTED / _KILL.
import { Io } from "./io";
import { DevRef, resolveDevice, resolveError } from "./devref";
import { Table } from "./table";

export const MAP_REMAPPED: i32 = 0;  // io.to and io.sector now name the destination
export const MAP_SUBMITTED: i32 = 1; // finished by the target, with io.status
export const MAP_KILL: i32 = 2;      // fail with EIO
export const MAP_DEFERRED: i32 = 3;  // kept by the target, which later calls resumeDeferred()

export const STATUS_INFO: i32 = 0;
export const STATUS_TABLE: i32 = 1;

export abstract class Target {
  /** First sector and length of this segment in the mapped device (ti->begin, ti->len). */
  begin: u64 = 0;
  len: u64 = 0;
  /** Set by ctr when it fails (ti->error). */
  error: string = "";
  /** READ/WRITE clones never cross a multiple of this many sectors from begin (0: no limit). */
  maxIoLen: u64 = 0;
  /** How many clones of a FLUSH / DISCARD / WRITE_ZEROES this target gets (0: not supported). */
  numFlushBios: u32 = 0;
  numDiscardBios: u32 = 0;
  numWriteZeroesBios: u32 = 0;
  /**
   * DISCARD clones never cross a multiple of this many device sectors (0: no limit): the queue's
   * max_discard_sectors and discard_granularity, by which the block layer splits discards.
   */
  maxDiscardLen: u64 = 0;
  /** Every device this target maps onto (iterate_devices), filled by ctr through getDevice. */
  devices: DevRef[] = [];
  /** The table this target belongs to (set before ctr). */
  table: Table | null = null;

  abstract typeName(): string;
  /** Parses and checks the arguments; on failure sets this.error and returns false. */
  abstract ctr(args: string[]): bool;
  abstract map(io: Io): i32;
  /** Sees every clone's completion status and may change it. */
  endIo(io: Io, status: i32): i32 {
    return status;
  }
  abstract status(type: i32): string;
  /**
   * Runs after every ctr of the table succeeded. Returns false when done; true when it started
   * I/O (e.g. reading metadata) and will call table.targetPrepared(this, error) when finished.
   */
  prepare(): bool {
    return false;
  }
  /** True while prepare() runs, so a preparation that finishes at once is not reported twice. */
  private preparingNow: bool = false;

  /** Runs prepare() and tells whether the target is still busy preparing afterwards. */
  startPrepare(): bool {
    this.preparingNow = true;
    this.prepareDone = false;
    const started = this.prepare();
    this.preparingNow = false;
    return started && !this.prepareDone;
  }

  private prepareDone: bool = false;

  /** A target's asynchronous preparation ended ("" on success). */
  finishPrepare(error: string): void {
    this.prepareDone = true;
    const t = <Table>this.table;
    if (this.preparingNow) {
      t.notePrepareError(this, error);
      return;
    }
    t.targetPrepared(this, error);
  }

  /**
   * Before the table's targets resume (preresume): "" to go on, or why the resume is refused
   * (-EINVAL; the device stays suspended with this table live, as dm_resume leaves it).
   */
  preresume(): string {
    return "";
  }
  /**
   * What Linux would wait for before this resume and the core cannot (it never blocks): "" to
   * go on, or why to refuse with -EBUSY before anything changes, so the host can retry.
   */
  resumeBusy(): string {
    return "";
  }
  /** The table became live, or its suspended device resumes (snapshot_resume and the like). */
  resume(): void {}
  /** The device is being suspended, or its table replaced: let go of held I/O (delay_presuspend). */
  presuspend(): void {}
  /** The table stopped being live or inactive, or failed to load (dtr). */
  destroy(): void {}
  /** dmsetup message; returns an error text, or "" when handled. */
  message(args: string[]): string {
    return "target " + this.typeName() + " does not take messages";
  }

  /** dm_get_device: resolves and range-checks a device, remembering it in this.devices. */
  protected getDevice(name: string, start: u64, len: u64): DevRef | null {
    const ref = resolveDevice(name, start, len);
    if (ref == null) {
      this.error = resolveError;
      return null;
    }
    this.devices.push(ref);
    return ref;
  }

  /** dm_target_offset: a sector's offset inside this segment. */
  offset(sector: u64): u64 {
    return sector - this.begin;
  }
}
