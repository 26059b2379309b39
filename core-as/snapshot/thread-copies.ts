// Copies the host does without the core, for an origin whose only snapshot is transient (N) or
// persistent (P, PO).
//
// Why: a host that writes an origin from many threads (host-nbd's receive threads) would cross to
// the core's thread for every first write to a chunk, and those crossings cost more than the copy.
// So the core lends the host a run of the snapshot's COW chunks; while the core has nothing of the
// origin's or the snapshot's in flight (the host guarantees that: it takes copies back before it
// sends either device anything that could copy a chunk or read one through the snapshot), the host
// copies a chunk into the next lent one itself, writes the origin, and reports the exception; the
// core records it here (fold) as if its own copy had finished. Before the core handles the origin
// or the snapshot again, the host folds every exception it made and gives the unused chunks back.
// The COW device then holds the same chunks in use, and the status line counts the same sectors,
// as if every copy had been the core's (Linux's stores hand chunks out in order, as here).
// A persistent store lends data chunks only (it steps over metadata chunks); the host also commits
// each exception to its copy of the current metadata area on disk, as the store would, and the
// fold mirrors that commit in the store's memory (PersistentStore.lentCommitted).
import { DevRef } from "../devref";
import { SnapshotTarget } from "../targets/snapshot";
import { snapshotsOf } from "./origins";
import { EIO } from "../errno";

/** fold's oldChunk for a lent chunk whose copy failed. */
const COPY_FAILED: u64 = u64.MAX_VALUE;
/** fold's oldChunk for a failed metadata commit of the host's (persistent stores). */
const COMMIT_FAILED: u64 = u64.MAX_VALUE - 1;

/** The snapshot of `origin` whose chunks the host may copy: the only one, valid, active, idle, with a store that can lend. */
export function copyableSnapshot(origin: DevRef): SnapshotTarget | null {
  const snaps = snapshotsOf(origin);
  if (snaps.length != 1) return null;
  const s = snaps[0];
  if (!s.active || !s.valid || s.isMerge || s.copiesInFlight != 0 || !s.store.canLend()) return null;
  return s;
}

/** How many chunks could be lent now (0: none, or no such snapshot). */
export function lendableChunks(origin: DevRef): u64 {
  const s = copyableSnapshot(origin);
  return s == null ? 0 : s.store.room();
}

/** Lends n COW chunks: the first, or -1 (no such snapshot, or no room for n). */
export function lendChunks(origin: DevRef, n: u64): i64 {
  const s = copyableSnapshot(origin);
  return s == null ? -1 : s.store.lend(n);
}

/** Takes back the n unused lent chunks from `first` on (the last ones lent). */
export function unlendChunks(origin: DevRef, first: u64, n: u64): bool {
  const s = onlySnapshot(origin);
  return s != null && s.store.unlend(first, n);
}

/**
 * The host copied origin chunk `oldChunk` into lent chunk `newChunk`: the snapshot's exception.
 * oldChunk COPY_FAILED: lent chunk newChunk was used, but its copy failed; COMMIT_FAILED: the
 * host could not write the metadata area (persistent), no chunk used. False (nothing recorded)
 * for a newChunk that is not one of the chunks lent.
 */
export function foldCopy(origin: DevRef, oldChunk: u64, newChunk: u64): bool {
  const s = onlySnapshot(origin);
  if (s == null) return false;
  const store = s.store;
  if (oldChunk == COMMIT_FAILED) {
    if (!store.lentCommitFailed()) return false;
    s.invalidate(EIO);
    return true;
  }
  if (oldChunk == COPY_FAILED) {
    if (!store.lentUsed(newChunk)) return false;
    if (store.lentCopyFailed()) s.invalidate(EIO);
    return true;
  }
  if (s.hasException(oldChunk) || s.pendingFor(oldChunk) != null) return false;
  if (!store.lentUsed(newChunk)) return false;
  // After an invalidation the copies still come back, but record nothing (pending_complete).
  if (!s.valid) return true;
  s.complete.set(oldChunk, newChunk);
  store.lentCommitted(oldChunk, newChunk);
  return true;
}

/** The origin's one snapshot, valid or not (a fold or unlend after it failed still counts). */
function onlySnapshot(origin: DevRef): SnapshotTarget | null {
  const snaps = snapshotsOf(origin);
  return snaps.length == 1 ? snaps[0] : null;
}

/** The current metadata area of the copyable snapshot's persistent store, at out: bytes, or -1 (none such), -2 (max too small). */
export function originArea(origin: DevRef, out: usize, max: i32): i32 {
  const s = copyableSnapshot(origin);
  return s == null ? -1 : s.store.areaImage(out, max);
}

/** The copyable snapshot's exception table's tag (ExceptionTable.tag), or -1 (no such snapshot). */
export function exceptionsTag(origin: DevRef): i64 {
  const s = copyableSnapshot(origin);
  return s == null ? -1 : <i64>s.complete.tag;
}

/** Origin chunks the snapshot holds exceptions for, into `out` (at most max): how many there are. */
export function exceptionChunks(origin: DevRef, out: usize, max: i32): i32 {
  const s = copyableSnapshot(origin);
  if (s == null) return -1;
  const keys = s.complete.keys();
  for (let i = 0; i < keys.length && i < max; i++) store<u64>(out + (<usize>i << 3), keys[i]);
  return keys.length;
}
