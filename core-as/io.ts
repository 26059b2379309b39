// The I/O engine: requests in, commands out, completions back in, requests finished.
//
// A request (from the host, or from a device stacked on this one) is split at segment and
// max_io_len boundaries into clones; each clone goes through its target's map(). A clone
// remapped onto a host device becomes a command in the outbox; one remapped onto a mapped
// device becomes a child request of that device. A request finishes when its last clone does,
// with the first error. Nothing here blocks and nothing here allocates once the pools are warm.
import { MappedDevice } from "./device";
import { Table } from "./table";
import { Target, MAP_REMAPPED, MAP_SUBMITTED, MAP_DEFERRED } from "./target";
import { DevRef } from "./devref";
import { Backing } from "./backing";
import { EIO, EINVAL, ENOSPC, ENODEV, EOPNOTSUPP } from "./errno";
import { outboxPush, doneboxPush } from "./boxes";

export const OP_READ: u32 = 0;
export const OP_WRITE: u32 = 1;
export const OP_FLUSH: u32 = 2;
export const OP_DISCARD: u32 = 3;
export const OP_WRITE_ZEROES: u32 = 4;
export const FLAG_FUA: u32 = 1;

const KIND_REQUEST: u8 = 0; // submitted by the host; finishing it fills the done box
const KIND_CLONE: u8 = 1;   // a piece of a request inside one target
const KIND_CHILD: u8 = 2;   // a request on a lower device, made for a clone remapped onto it
const KIND_INTERNAL: u8 = 3; // issued by a target itself (chunk copies, metadata): ends in its Waiter

/** Whoever waits for an internal I/O (a pending exception, an exception store): bi_end_io. */
export abstract class Waiter {
  abstract ioDone(io: Io, status: i32): void;
}

export class Io {
  kind: u8 = 0;
  op: u32 = 0;
  flags: u32 = 0;
  sector: u64 = 0;
  count: u32 = 0;
  buf: usize = 0;
  tag: u32 = 0;
  /** Requests: the mapped device. */
  dev: MappedDevice | null = null;
  /** Requests: the table they were dispatched against (kept alive across a reload). */
  table: Table | null = null;
  /** Clones: the target mapping them, which clone of a multi-clone op this is, where map() sent it. */
  target: Target | null = null;
  targetBioNr: u32 = 0;
  to: DevRef | null = null;
  /** Clones: their request. Child requests: their clone. */
  parent: Io | null = null;
  pending: i32 = 0;
  status: i32 = 0;
  /** Commands: the id the host completes them by. */
  cmd: i32 = -1;
  /** Internal I/O: who is told when it finishes, and a number for the waiter's own use. */
  waiter: Waiter | null = null;
  cookie: i64 = 0;
  /** Clones: a chunk the target tracks while the clone is in flight (-1: none). */
  tracked: i64 = -1;
  /** Its command id while it is a command: its place in `bySlot`, fixed for the object's life. */
  slot: i32 = 0;
  /** In the pool: the next free Io. */
  nextFree: Io | null = null;
}

// ---- pools: Io objects are reused, so steady-state I/O allocates nothing. The free ones form
// a list through nextFree, and each Io is its own command id (its slot), so issuing and
// completing a command costs no array pushes and pops.

let freeIos: Io | null = null;
const bySlot = new Array<Io>();

function getIo(kind: u8): Io {
  let io = freeIos;
  if (io != null) {
    freeIos = io.nextFree;
    io.nextFree = null;
  } else {
    io = new Io();
    io.slot = bySlot.length;
    bySlot.push(io);
  }
  io.kind = kind;
  io.pending = 0;
  io.status = 0;
  io.cmd = -1;
  io.targetBioNr = 0;
  io.tracked = -1;
  io.cookie = 0;
  return io;
}

/** A pooled Io of `kind` for one operation; callers set what their kind needs besides. */
function newIo(kind: u8, op: u32, flags: u32, sector: u64, count: u32, buf: usize): Io {
  const io = getIo(kind);
  io.op = op;
  io.flags = flags;
  io.sector = sector;
  io.count = count;
  io.buf = buf;
  return io;
}

function putIo(io: Io): void {
  io.dev = null;
  io.table = null;
  io.target = null;
  io.to = null;
  io.parent = null;
  io.waiter = null;
  io.cmd = -1;
  io.nextFree = freeIos;
  freeIos = io;
}

function issueCommand(clone: Io, backing: Backing): void {
  clone.cmd = clone.slot;
  outboxPush(clone.cmd, backing.id, clone.op, clone.flags, clone.sector, clone.count, clone.buf);
}

/** The host finished a command. Returns -EINVAL for an id that is not outstanding. */
export function completeCommand(id: i32, status: i32): i32 {
  if (id < 0 || id >= bySlot.length) return -EINVAL;
  const clone = unchecked(bySlot[id]);
  if (clone.cmd != id) return -EINVAL; // free, or not a command now
  clone.cmd = -1;
  subIoDone(clone, status);
  return 0;
}

/** A clone or an internal I/O finished on its device. */
function subIoDone(io: Io, status: i32): void {
  if (io.kind == KIND_INTERNAL) {
    const w = <Waiter>io.waiter;
    w.ioDone(io, status);
    putIo(io);
  } else {
    cloneDone(io, status);
  }
}

/**
 * I/O a target issues on its own behalf (dm-io, kcopyd): `waiter.ioDone(io, status)` runs when
 * it finishes; io.cookie carries the waiter's own bookkeeping. `buf` must stay valid until then.
 */
export function submitInternal(waiter: Waiter, to: DevRef, op: u32, flags: u32, sector: u64, count: u32, buf: usize, cookie: i64): void {
  const io = newIo(KIND_INTERNAL, op, flags, sector, count, buf);
  io.waiter = waiter;
  io.cookie = cookie;
  io.to = to;
  route(io);
}

/** A clone a target deferred (MAP_DEFERRED) goes on: remapped (io.to, io.sector set), or finished. */
export function resumeDeferred(clone: Io, r: i32): void {
  afterMap(clone, r);
}

// ---- requests

/** Why a request for [sector, sector + count) cannot be served by a device of `size` sectors, or 0. */
export function rangeError(op: u32, sector: u64, count: u32, size: u64): i32 {
  if (op == OP_FLUSH) return 0;
  if (sector <= size && <u64>count <= size - sector) return 0;
  return op == OP_WRITE || op == OP_WRITE_ZEROES ? ENOSPC : EINVAL;
}

export function submitRequest(dev: MappedDevice, op: u32, flags: u32, sector: u64, count: u32, buf: usize, tag: u32): void {
  const io = newIo(KIND_REQUEST, op, flags, sector, count, buf);
  io.dev = dev;
  io.tag = tag;
  startRequest(io);
}

function startRequest(io: Io): void {
  const dev = <MappedDevice>io.dev;
  if (dev.suspended) dev.held.push(io);
  else dispatch(io);
}

/** Resume: requests held while suspended go to the (possibly new) live table in arrival order. */
export function releaseHeld(dev: MappedDevice): void {
  const held = dev.held;
  dev.held = [];
  for (let i = 0; i < held.length; i++) {
    if (dev.suspended) dev.held.push(held[i]); // suspended again by a completion callback: keep order
    else dispatch(held[i]);
  }
}

function dispatch(io: Io): void {
  const dev = <MappedDevice>io.dev;
  const table = dev.live;
  if (table == null) {
    finishUndispatched(io, ENODEV);
    return;
  }
  const err = rangeError(io.op, io.sector, io.count, table.size);
  if (err != 0) {
    finishUndispatched(io, err); // the table shrank while the request was held
    return;
  }
  io.table = table;
  dev.inflight++;
  io.pending = 1; // held by dispatch itself, so clones finishing at once cannot finish io early
  if (io.op == OP_FLUSH) splitFlush(io, table);
  else if (io.count == 0) { /* nothing to do: a zero-length request succeeds */ }
  else if (io.op == OP_DISCARD || io.op == OP_WRITE_ZEROES) splitRange(io, table);
  else splitData(io, table);
  io.pending--;
  if (io.pending == 0) finishRequest(io);
}

/** READ and WRITE: one clone per segment piece, never crossing the target's max_io_len. */
function splitData(io: Io, table: Table): void {
  let sector = io.sector;
  const end = io.sector + <u64>io.count;
  let i = table.findTarget(sector);
  while (sector < end) {
    const t = table.targets[i];
    let pieceEnd = t.begin + t.len;
    if (t.maxIoLen != 0) {
      const boundary = sector + t.maxIoLen - (sector - t.begin) % t.maxIoLen;
      if (boundary < pieceEnd) pieceEnd = boundary;
    }
    if (pieceEnd > end) pieceEnd = end;
    const clone = newClone(io, t, sector, <u32>(pieceEnd - sector), 0);
    mapClone(clone);
    sector = pieceEnd;
    if (sector == t.begin + t.len) i++;
  }
}

/** DISCARD and WRITE_ZEROES: per segment piece (discards also cut at maxDiscardLen), as many clones as the target asks for. */
function splitRange(io: Io, table: Table): void {
  let sector = io.sector;
  const end = io.sector + <u64>io.count;
  let i = table.findTarget(sector);
  while (sector < end) {
    const t = table.targets[i];
    let pieceEnd = t.begin + t.len;
    if (io.op == OP_DISCARD && t.maxDiscardLen != 0) {
      const boundary = sector + t.maxDiscardLen - sector % t.maxDiscardLen;
      if (boundary < pieceEnd) pieceEnd = boundary;
    }
    if (pieceEnd > end) pieceEnd = end;
    const n = io.op == OP_DISCARD ? t.numDiscardBios : t.numWriteZeroesBios;
    if (n == 0) {
      if (io.status == 0) io.status = EOPNOTSUPP;
    }
    for (let nr: u32 = 0; nr < n; nr++) {
      mapClone(newClone(io, t, sector, <u32>(pieceEnd - sector), nr));
    }
    sector = pieceEnd;
    if (sector == t.begin + t.len) i++;
  }
}

// Devices a flush being split has already sent to. Used as a stack: a stacked flush splits
// again before the outer split returns, so each split only looks above its own base.
const flushed = new Array<DevRef>();

/** FLUSH: every target's flush clones, each distinct device flushed once. */
function splitFlush(io: Io, table: Table): void {
  const base = flushed.length;
  for (let i = 0; i < table.targets.length; i++) {
    const t = table.targets[i];
    for (let nr: u32 = 0; nr < t.numFlushBios; nr++) {
      const clone = newClone(io, t, 0, 0, nr);
      const r = t.map(clone);
      if (r == MAP_REMAPPED && alreadyFlushed(base, <DevRef>clone.to)) {
        clone.to = null;
        clone.status = 0;
        cloneDone(clone, 0);
        continue;
      }
      afterMap(clone, r);
    }
  }
  flushed.length = base;
}

function alreadyFlushed(base: i32, to: DevRef): bool {
  for (let i = base; i < flushed.length; i++) if (flushed[i].sameAs(to)) return true;
  flushed.push(to);
  return false;
}

function newClone(io: Io, t: Target, sector: u64, count: u32, nr: u32): Io {
  const buf = io.op == OP_READ || io.op == OP_WRITE ? io.buf + (<usize>(sector - io.sector) << 9) : 0;
  const clone = newIo(KIND_CLONE, io.op, io.flags, sector, count, buf);
  clone.target = t;
  clone.targetBioNr = nr;
  clone.parent = io;
  io.pending++;
  return clone;
}

function mapClone(clone: Io): void {
  afterMap(clone, (<Target>clone.target).map(clone));
}

function afterMap(clone: Io, r: i32): void {
  if (r == MAP_DEFERRED) return;
  if (r == MAP_SUBMITTED) {
    cloneDone(clone, clone.status);
    return;
  }
  if (r != MAP_REMAPPED) {
    cloneDone(clone, EIO);
    return;
  }
  route(clone);
}

/** Sends a remapped clone or an internal I/O to its device: a host command, or a stacked request. */
function route(io: Io): void {
  const to = <DevRef>io.to;
  const backing = to.backing;
  if (backing != null) {
    // As the block layer does (bio_check_eod), I/O past the end of a device fails with EIO and
    // the host never gets a command outside its device (e.g. a snapshot target at a non-zero
    // start maps by device sector, as Linux's does, and can run past its origin's end).
    if (io.op != OP_FLUSH && (io.sector > backing.sectors || <u64>io.count > backing.sectors - io.sector)) {
      subIoDone(io, EIO);
      return;
    }
    issueCommand(io, backing);
    return;
  }
  const lower = <MappedDevice>to.mapped;
  const child = newIo(KIND_CHILD, io.op, io.flags, io.sector, io.count, io.buf);
  child.dev = lower;
  child.parent = io;
  startRequest(child);
}

function cloneDone(clone: Io, status: i32): void {
  const t = clone.target;
  if (t != null) status = t.endIo(clone, status);
  const io = <Io>clone.parent;
  putIo(clone);
  if (status != 0 && io.status == 0) io.status = status;
  io.pending--;
  if (io.pending == 0) finishRequest(io);
}

function finishRequest(io: Io): void {
  (<MappedDevice>io.dev).inflight--;
  finishUndispatched(io, io.status);
}

function finishUndispatched(io: Io, status: i32): void {
  if (io.kind == KIND_REQUEST) {
    doneboxPush(io.tag, status);
    putIo(io);
  } else {
    const sub = <Io>io.parent;
    putIo(io);
    subIoDone(sub, status == EINVAL || status == ENOSPC ? EIO : status); // past a lower device's end
  }
}
