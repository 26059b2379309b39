// The exports of the dmkit core: the ABI of docs/core-abi.md. Each function checks its
// arguments, delegates, and reports failure as a negative errno plus a message.
import { setMsg, fail, msgPtr, msgLen, readText } from "./msg";
import { EPERM, EINVAL, EEXIST, ENXIO, ENODEV, EBUSY, ENOENT, ENOSPC } from "./errno";
import { OriginTarget } from "./targets/snapshot-origin";
import { originCopied } from "./snapshot/origin-write";
import { minimumChunkSize } from "./snapshot/origins";
import { lendChunks, lendableChunks, unlendChunks, foldCopy, exceptionChunks, exceptionsTag, originArea } from "./snapshot/thread-copies";
import { backingAdd, backingById, backingByName, backingRemove } from "./backing";
import { MappedDevice, deviceAdd, deviceById, deviceByName, deviceRemove, deviceCount } from "./device";
import { Table, parseTable, tableError } from "./table";
import { startLoad, loadFailure } from "./load";
import { setLoadingDevice, startCollecting, stopCollecting } from "./devref";
import { STATUS_INFO, STATUS_TABLE } from "./target";
import { submitRequest, completeCommand, releaseHeld, rangeError, OP_WRITE_ZEROES, OP_WRITE, FLAG_FUA } from "./io";
import { takeCommands, outboxPtr, takeCompletions, doneboxPtr, boxesPtr } from "./boxes";
import { patternFill } from "./pattern";
import { takeLog } from "./kernel-log";
import { setClock, nextTimer } from "./clock";
import { splitWords } from "./args";
import { lastAbort } from "./abort/index";
import { settle, settleSometimes } from "./gc";
import { allocData, freeData } from "./data-buffer";

// ---- memory and messages

export function dm_alloc(bytes: u32): usize {
  return allocData(bytes);
}

export function dm_free(ptr: usize): void {
  freeData(ptr);
}

export function dm_msg_ptr(): usize {
  return msgPtr();
}

export function dm_msg_len(): i32 {
  return msgLen();
}

export function dm_pattern_fill(buf: usize, len: u32, seed: u32): void {
  patternFill(buf, len, seed);
}

/** After a trap: where the core aborted, in the message buffer. */
export function dm_last_abort(): i32 {
  setMsg(lastAbort());
  return settle(0);
}

/** The host's clock (ms, only moves forward); releases timed I/O that is due (delay). */
export function dm_set_time(ms: f64): void {
  setClock(ms);
}

/** When the host must next call dm_set_time (ms), or -1 when no I/O waits for time. */
export function dm_next_timer(): f64 {
  return nextTimer();
}

// ---- backing devices

function validName(name: string): string {
  if (name.length == 0) return "a device name must not be empty";
  if (name.length > 127) return "device name '" + name + "' is longer than 127 characters";
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 32 || c == 127) return "device name '" + name + "' contains white space or control characters";
  }
  return "";
}

export function dm_backing_add(namePtr: usize, nameLen: i32, sectors: u64): i32 {
  const name = readText(namePtr, nameLen);
  const bad = validName(name);
  if (bad.length > 0) return settle(fail(EINVAL, bad));
  if (backingByName(name) != null) return settle(fail(EEXIST, "backing device " + name + " already exists"));
  if (deviceByName(name) != null) return settle(fail(EEXIST, name + " is the name of a mapped device"));
  return settle(backingAdd(name, sectors).id);
}

export function dm_backing_resize(id: i32, sectors: u64): i32 {
  const b = backingById(id);
  if (b == null) return settle(fail(ENXIO, "no backing device with id " + id.toString()));
  b.sectors = sectors;
  return settle(0);
}

export function dm_backing_remove(id: i32): i32 {
  const b = backingById(id);
  if (b == null) return settle(fail(ENXIO, "no backing device with id " + id.toString()));
  if (b.refs > 0) return settle(fail(EBUSY, "backing device " + b.name + " is used by " + b.refs.toString() + " table(s)"));
  backingRemove(b);
  return settle(0);
}

export function dm_table_deps(textPtr: usize, textLen: i32): i32 {
  setLoadingDevice(null);
  startCollecting();
  const table = parseTable(readText(textPtr, textLen));
  const names = stopCollecting();
  if (table == null) return settle(fail(EINVAL, tableError));
  table.destroyTargets();
  setMsg(names.join("\n"));
  return settle(names.length);
}

// ---- mapped devices

function device(id: i32): MappedDevice | null {
  const d = deviceById(id);
  if (d == null) setMsg("no mapped device with id " + id.toString());
  return d;
}

export function dm_dev_create(namePtr: usize, nameLen: i32): i32 {
  const name = readText(namePtr, nameLen);
  const bad = validName(name);
  if (bad.length > 0) return settle(fail(EINVAL, bad));
  if (deviceByName(name) != null) return settle(fail(EEXIST, "device " + name + " already exists"));
  if (backingByName(name) != null) return settle(fail(EEXIST, name + " is the name of a backing device"));
  return settle(deviceAdd(name).id);
}

export function dm_dev_find(namePtr: usize, nameLen: i32): i32 {
  const name = readText(namePtr, nameLen);
  const d = deviceByName(name);
  if (d == null) return settle(fail(ENXIO, "device " + name + " does not exist"));
  return settle(d.id);
}

/**
 * dmsetup load: 0 when the table is ready as the inactive table, 1 when its targets are still
 * reading metadata (a completion with `tag` follows; dm_dev_load_error explains a failure).
 */
export function dm_dev_load(id: i32, textPtr: usize, textLen: i32, tag: u32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  if (d.loading != null) return settle(fail(EBUSY, "device " + d.name + " is still loading a table"));
  const r = startLoad(d, readText(textPtr, textLen), tag);
  if (r < 0) return settle(fail(-r, loadFailure));
  return settle(r);
}

/** Why the last asynchronous load of a device failed ("" if it did not). */
export function dm_dev_load_error(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  setMsg(d.loadError);
  return settle(0);
}

export function dm_dev_clear(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const old = d.inactive;
  if (old != null) old.retire();
  d.inactive = null;
  return settle(0);
}

export function dm_dev_suspend(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  if (!d.suspended) presuspend(d);
  d.suspended = true;
  return settle(0);
}

/** Targets let go of I/O they hold (delay) before the device suspends or its table is swapped. */
function presuspend(d: MappedDevice): void {
  const live = d.live;
  if (live != null) for (let i = 0; i < live.targets.length; i++) live.targets[i].presuspend();
}

/**
 * do_resume: a loaded table replaces the live one (the device suspended first), then dm_resume
 * runs every target's preresume and resume. A refused preresume leaves the device suspended on
 * the new table (the old one is gone, as in Linux); a later resume tries again.
 */
export function dm_dev_resume(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  if (d.loading != null) return settle(fail(EBUSY, "device " + d.name + " is still loading a table"));
  const next = d.inactive;
  const resuming = next != null ? next : d.suspended ? d.live : null;
  if (resuming != null) {
    const busy = targetRefusal(d, resuming, false);
    if (busy.length > 0) return settle(fail(EBUSY, busy));
  }
  let old: Table | null = null;
  if (next != null) {
    if (!d.suspended) presuspend(d); // the kernel suspends a device before swapping its table
    d.suspended = true;
    old = d.live;
    d.live = next;
    d.inactive = null;
  }
  const live = d.live;
  if (d.suspended && live != null) {
    const refused = targetRefusal(d, live, true);
    if (refused.length > 0) {
      if (old != null) old.retire();
      return settle(fail(EINVAL, refused));
    }
    for (let i = 0; i < live.targets.length; i++) live.targets[i].resume();
  }
  d.suspended = false;
  releaseHeld(d);
  // Only now, as do_resume: a snapshot's resume takes the old table's store over first.
  if (old != null) old.retire(); // requests in flight keep their own reference to it
  return settle(0);
}

/** The first target of t that refuses to resume (preresume, or resumeBusy), named by its line. */
function targetRefusal(d: MappedDevice, t: Table, pre: bool): string {
  for (let i = 0; i < t.targets.length; i++) {
    const target = t.targets[i];
    const why = pre ? target.preresume() : target.resumeBusy();
    if (why.length > 0) return d.name + ": line " + t.lineNos[i].toString() + ": " + target.typeName() + ": " + why;
  }
  return "";
}

export function dm_dev_remove(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  if (d.openCount > 0) return settle(fail(EBUSY, "device " + d.name + " is busy: open " + d.openCount.toString() + " time(s)"));
  if (d.users > 0) return settle(fail(EBUSY, "device " + d.name + " is busy: used by " + d.users.toString() + " other table(s)"));
  if (d.inflight > 0 || d.held.length > 0) return settle(fail(EBUSY, "device " + d.name + " is busy: I/O in flight"));
  if (d.loading != null) return settle(fail(EBUSY, "device " + d.name + " is still loading a table"));
  const live = d.live;
  if (live != null) live.retire();
  const inactive = d.inactive;
  if (inactive != null) inactive.retire();
  deviceRemove(d);
  return settle(0);
}

export function dm_dev_open(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  d.openCount++;
  return settle(d.openCount);
}

export function dm_dev_close(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  if (d.openCount > 0) d.openCount--;
  return settle(d.openCount);
}

export function dm_dev_size(id: i32): u64 {
  const d = deviceById(id);
  return d == null ? 0 : d.liveSectors();
}

export function dm_dev_inflight(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  return settle(d.inflight);
}

/**
 * The `snapshot-origin` segment of d's live table holding all of [sector, sector + count), if
 * the device is live and not suspended (a host's threads write for it only then).
 */
function originSegment(d: MappedDevice, sector: u64, count: u32, evenSuspended: bool = false): OriginTarget | null {
  const t = d.live;
  if (t == null || (d.suspended && !evenSuspended) || t.targets.length == 0) return null;
  const target = t.targets[t.findTarget(sector)];
  if (!(target instanceof OriginTarget)) return null;
  if (sector < target.begin || sector + <u64>count > target.begin + target.len) return null;
  return <OriginTarget>target;
}

/**
 * For a host that writes origin chunks without the core: the smallest chunk size (sectors) of
 * the snapshots watching the `snapshot-origin` segment at `sector` (0: none yet), or -ENOENT
 * when no such segment is live there.
 */
export function dm_origin_chunk(id: i32, sector: u64): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  if (o == null) return settle(-ENOENT);
  return settle(<i32>minimumChunkSize(o.dev));
}

/**
 * 1 when a write of [sector, sector + count) to device id needs no snapshot copy now (a live
 * `snapshot-origin` segment, and every snapshot watching it has finished copying every chunk
 * under it), else 0; until a snapshot of that origin resumes, such a write may go straight on.
 */
export function dm_origin_copied(id: i32, sector: u64, count: u32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  // On the I/O path (a host asks after its writes): allocates nothing, so no collection.
  const o = originSegment(d, sector, count);
  return o != null && originCopied(o.dev, sector, count) ? 1 : 0;
}

/**
 * Copies by the host (snapshot/thread-copies.ts), for the `snapshot-origin` segment at `sector`
 * of device id whose only snapshot is transient or persistent: lends n COW chunks (the first, or
 * -ENOENT when there is no such snapshot, -ENOSPC when the COW device has no room for n).
 */
export function dm_origin_lend(id: i32, sector: u64, n: u32): i64 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  if (o == null) return settle(-ENOENT);
  const first = lendChunks(o.dev, <u64>n);
  return first >= 0 ? first : <i64>settle(-ENOSPC);
}

/** How many COW chunks dm_origin_lend could lend now (0: none, or no copyable snapshot). */
export function dm_origin_lendable(id: i32, sector: u64): i64 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  return o == null ? 0 : <i64>lendableChunks(o.dev);
}

/** Takes back n unused lent chunks from `first` on (the last ones lent): 0, or -EINVAL. */
export function dm_origin_unlend(id: i32, sector: u64, first: u64, n: u32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  // Even suspended: a suspend takes the copies back after the device stopped taking I/O.
  const o = originSegment(d, sector, 1, true);
  if (o == null || !unlendChunks(o.dev, first, <u64>n)) {
    return settle(fail(EINVAL, "chunks " + first.toString() + "+" + n.toString() + " are not the last lent to the host"));
  }
  return settle(0);
}

/**
 * The host copied origin chunk `oldChunk` into lent chunk `newChunk`: 0, or -EINVAL (no such lent
 * chunk, or the chunk has an exception). oldChunk 2^64-1: a lent chunk's copy failed; 2^64-2: the
 * host's metadata commit failed (both invalidate a persistent snapshot; see docs/core-abi.md).
 */
export function dm_origin_fold(id: i32, sector: u64, oldChunk: u64, newChunk: u64): i32 {
  const d = device(id);
  if (d == null) return -ENXIO;
  const o = originSegment(d, sector, 1, true);
  // On the I/O path: a new exception may grow the table, whose old buckets wait for a collection.
  return settleSometimes(o != null && foldCopy(o.dev, oldChunk, newChunk) ? 0 : -EINVAL);
}

/**
 * The copyable snapshot's current metadata area, when its store is persistent: u64
 * exceptions per area, current area, entries committed in it, then the area's chunk, at buf.
 * The bytes written, -ENOENT (no such snapshot), or -EINVAL (max too small).
 */
export function dm_origin_area(id: i32, sector: u64, buf: usize, max: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  const n = o == null ? -1 : originArea(o.dev, buf, max);
  if (n == -1) return settle(-ENOENT);
  return settle(n < 0 ? fail(EINVAL, "buffer of " + max.toString() + " bytes is too small for the metadata area") : n);
}

/** Origin chunks the copyable snapshot has exceptions for, as u64s at buf (at most max): how many, or -ENOENT. */
export function dm_origin_exceptions(id: i32, sector: u64, buf: usize, max: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  const n = o == null ? -1 : exceptionChunks(o.dev, buf, max);
  return settle(n < 0 ? -ENOENT : n);
}

/** A tag that changes whenever the copyable snapshot's exceptions change (-ENOENT: none such). */
export function dm_origin_exceptions_tag(id: i32, sector: u64): i64 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const o = originSegment(d, sector, 1);
  const tag = o == null ? -1 : exceptionsTag(o.dev);
  return tag < 0 ? <i64>settle(-ENOENT) : tag;
}

export function dm_dev_table(id: i32, inactive: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const t = inactive != 0 ? d.inactive : d.live;
  setMsg(t == null ? "" : t.describe(STATUS_TABLE));
  return settle(0);
}

export function dm_dev_status(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const t = d.live;
  setMsg(t == null ? "" : t.describe(STATUS_INFO));
  return settle(0);
}

export function dm_dev_info(id: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const state = d.suspended ? "SUSPENDED" : "ACTIVE";
  setMsg(d.name + " " + state + " " + d.openCount.toString() + " " + d.liveSectors().toString() + " " +
    (d.inactive != null ? "1" : "0") + " " + d.eventNr.toString());
  return settle(0);
}

export function dm_dev_list(): i32 {
  const names = new Array<string>();
  for (let i = 0; i < deviceCount(); i++) {
    const d = deviceById(i);
    if (d != null) names.push(d.name);
  }
  setMsg(names.join("\n"));
  return settle(names.length);
}

export function dm_dev_message(id: i32, sector: u64, textPtr: usize, textLen: i32): i32 {
  const d = device(id);
  if (d == null) return settle(-ENXIO);
  const t = d.live;
  if (t == null) return settle(fail(ENODEV, "device " + d.name + " has no live table"));
  if (sector >= t.size) return settle(fail(EINVAL, "sector " + sector.toString() + " is past the end of " + d.name));
  const target = t.targets[t.findTarget(sector)];
  const err = target.message(splitWords(readText(textPtr, textLen)));
  if (err.length > 0) return settle(fail(EINVAL, err));
  setMsg("");
  return settle(0);
}

// ---- I/O

export function dm_submit(id: i32, op: u32, flags: u32, sector: u64, count: u32, buf: usize, tag: u32): i32 {
  const d = deviceById(id);
  if (d == null) return settleSometimes(fail(ENXIO, "no mapped device with id " + id.toString()));
  if (op > OP_WRITE_ZEROES) return settleSometimes(fail(EINVAL, "unknown operation " + op.toString()));
  if ((flags & ~FLAG_FUA) != 0) return settleSometimes(fail(EINVAL, "unknown request flags " + flags.toString()));
  const t = d.live;
  if (t == null && !(d.suspended && d.inactive != null)) return settleSometimes(fail(ENODEV, "device " + d.name + " has no live table"));
  if (t != null) {
    const err = rangeError(op, sector, count, t.size);
    if (err != 0) {
      return settleSometimes(fail(err, "request for sectors " + sector.toString() + "+" + count.toString() +
        " is past the end of " + d.name + " (" + t.size.toString() + " sectors)"));
    }
  }
  submitRequest(d, op, flags, sector, count, buf, tag);
  return 0;
}

export function dm_take_commands(): i32 {
  return takeCommands();
}

export function dm_outbox_ptr(): usize {
  return outboxPtr();
}

export function dm_complete(cmd: i32, status: i32): i32 {
  const r = completeCommand(cmd, status);
  if (r < 0) {
    setMsg("no outstanding command with id " + cmd.toString());
    return settleSometimes(r);
  }
  return r;
}

export function dm_take_completions(): i32 {
  return takeCompletions();
}

export function dm_donebox_ptr(): usize {
  return doneboxPtr();
}

export function dm_boxes_ptr(): usize {
  return boxesPtr();
}

export function dm_take_log(): i32 {
  const lines = takeLog();
  setMsg(lines.join("\n"));
  return settle(lines.length);
}
