// __origin_write / do_origin: before a write reaches an origin chunk, every active snapshot that
// has not copied that chunk yet starts copying it, and the write waits for those copies.
import { Io } from "../io";
import { DevRef } from "../devref";
import { MAP_REMAPPED, MAP_DEFERRED } from "../target";
import { snapshotsOf } from "./origins";
import { PendingException } from "./pending";
import { ENOMEM } from "../errno";
import { SnapshotTarget } from "../targets/snapshot";

/**
 * For a write of [sector, sector + count) to `origin`: returns MAP_REMAPPED when no copy is
 * needed, or MAP_DEFERRED after queueing `clone` (if any) on a pending exception; the clone is
 * retried through here when that exception completes.
 */
export function originWrite(origin: DevRef, clone: Io | null, sector: u64, count: u32): i32 {
  let r = MAP_REMAPPED;
  let startLast: PendingException | null = null;
  const snaps = snapshotsOf(origin);
  // Copy all the snapshots' chunks under the write, chunk by chunk in order, as the kernel does
  // after splitting the write at the smallest chunk size.
  const last = lastSector(sector, count);
  for (let i = 0; i < snaps.length; i++) {
    const snap = snaps[i];
    if (!watches(snap, sector)) continue;
    const shift = snap.chunkShift();
    const lastChunk = lastChunkUnder(snap, last);
    for (let chunk = sector >> shift; chunk <= lastChunk; chunk++) {
      let pe = snap.pendingFor(chunk);
      if (pe == null) {
        if (snap.hasException(chunk)) continue;
        pe = snap.insertPending(chunk);
        if (pe == null) {
          snap.invalidate(ENOMEM);
          break;
        }
      }
      r = MAP_DEFERRED;
      if (clone != null) {
        pe.originClones.push(clone);
        clone = null;
        if (!pe.started) {
          pe.started = true;
          startLast = pe;
        }
      }
      if (!pe.started) {
        pe.started = true;
        pe.startCopy();
      }
    }
  }
  // The exception the write waits on starts last, giving the others a head start.
  if (startLast != null) startLast.startCopy();
  return r;
}

/**
 * Whether a write of [sector, sector + count) to `origin` would go straight on now: every
 * snapshot originWrite consults holds a finished exception for every chunk under it (none
 * pending). Hosts ask it after a write, to let their own threads write such chunks without the
 * core until a snapshot is resumed (which may add one that has not copied them).
 */
export function originCopied(origin: DevRef, sector: u64, count: u32): bool {
  const snaps = snapshotsOf(origin);
  const last = lastSector(sector, count);
  for (let i = 0; i < snaps.length; i++) {
    const snap = snaps[i];
    if (!watches(snap, sector)) continue;
    const lastChunk = lastChunkUnder(snap, last);
    for (let chunk = sector >> snap.chunkShift(); chunk <= lastChunk; chunk++) {
      if (snap.pendingFor(chunk) != null || !snap.hasException(chunk)) return false;
    }
  }
  return true;
}

function lastSector(sector: u64, count: u32): u64 {
  return count == 0 ? sector : sector + <u64>count - 1;
}

/** Whether an origin write at `sector` needs snap's copies: an active, valid snapshot (merges take none) that reaches that far. */
function watches(snap: SnapshotTarget, sector: u64): bool {
  return !snap.isMerge && snap.valid && snap.active && sector < snap.deviceSectors();
}

/** The snapshot's last chunk under a write ending at `last`, or its last chunk if the write goes past its end. */
function lastChunkUnder(snap: SnapshotTarget, last: u64): u64 {
  const shift = snap.chunkShift();
  const endChunk = (snap.deviceSectors() - 1) >> shift;
  const lastChunk = last >> shift;
  return lastChunk > endChunk ? endChunk : lastChunk;
}

/** Something waiting for every pending exception under an extent to finish (a merge step). */
export abstract class ExceptionWaiter {
  abstract retry(): void;
}

const waitingForExceptions = new Array<ExceptionWaiter>();

export function waitForExceptions(w: ExceptionWaiter): void {
  if (!waitingForExceptions.includes(w)) waitingForExceptions.push(w);
}

export function stopWaitingForExceptions(w: ExceptionWaiter): void {
  const i = waitingForExceptions.indexOf(w);
  if (i >= 0) waitingForExceptions.splice(i, 1);
}

/** A pending exception of some snapshot of `origin` finished: waiters look again. */
export function exceptionDone(origin: DevRef): void {
  if (waitingForExceptions.length == 0) return;
  const waiting = waitingForExceptions.slice();
  waitingForExceptions.length = 0;
  for (let i = 0; i < waiting.length; i++) waiting[i].retry();
}

/**
 * origin_write_extent: starts the copies other snapshots need before [sector, sector + size)
 * of the origin is overwritten by a merge; true if some are still in flight.
 */
export function originWriteExtent(origin: DevRef, sector: u64, size: u64, step: u64): bool {
  let mustWait = false;
  if (step == 0) step = size;
  for (let n: u64 = 0; n < size; n += step) {
    if (originWrite(origin, null, sector + n, 1) == MAP_DEFERRED) mustWait = true;
  }
  return mustWait;
}
