// Which snapshots watch which origin device (dm-snap.c's _origins): an origin write consults
// every active snapshot of its device, and the origin target splits writes at their smallest
// chunk size.
import { DevRef } from "../devref";
import { SnapshotTarget } from "../targets/snapshot";
import { OriginTarget } from "../targets/snapshot-origin";

class Origin {
  snapshots: SnapshotTarget[] = [];
  origins: OriginTarget[] = [];
  constructor(public dev: DevRef) {}
}

const origins = new Array<Origin>();

function find(dev: DevRef, create: bool): Origin | null {
  for (let i = 0; i < origins.length; i++) if (origins[i].dev.sameAs(dev)) return origins[i];
  if (!create) return null;
  const o = new Origin(dev);
  origins.push(o);
  return o;
}

function dropIfEmpty(o: Origin): void {
  if (o.snapshots.length == 0 && o.origins.length == 0) {
    const i = origins.indexOf(o);
    if (i >= 0) origins.splice(i, 1);
  }
}

export function registerSnapshot(s: SnapshotTarget): void {
  (<Origin>find(s.origin, true)).snapshots.push(s);
}

export function unregisterSnapshot(s: SnapshotTarget): void {
  const o = find(s.origin, false);
  if (o == null) return;
  const i = o.snapshots.indexOf(s);
  if (i >= 0) o.snapshots.splice(i, 1);
  updateSplit(o);
  dropIfEmpty(o);
}

export function registerOrigin(t: OriginTarget): void {
  const o = <Origin>find(t.dev, true);
  o.origins.push(t);
  updateSplit(o);
}

export function unregisterOrigin(t: OriginTarget): void {
  const o = find(t.dev, false);
  if (o == null) return;
  const i = o.origins.indexOf(t);
  if (i >= 0) o.origins.splice(i, 1);
  dropIfEmpty(o);
}

/** Snapshots of a device, in registration order (empty array if none). */
export function snapshotsOf(dev: DevRef): SnapshotTarget[] {
  const o = find(dev, false);
  return o == null ? [] : o.snapshots;
}

/** A snapshot's chunk size became known (resume): origin targets re-split their writes. */
export function snapshotResumed(s: SnapshotTarget): void {
  const o = find(s.origin, false);
  if (o != null) updateSplit(o);
}

/** What a new snapshot finds registered before it: a store to take over, or why it can't load. */
export class Handover {
  constructor(public from: SnapshotTarget | null, public error: string) {}
}

/**
 * __validate_exception_handover, with __find_snapshots_sharing_cow: a reload takes the exceptions
 * over from the live (resumed) snapshot of the same origin on the same COW device. Only one table
 * holds the metadata at a time, so s is refused beside a snapshot of that COW that is not live
 * yet (a reload waiting for its handover, an earlier segment of s's own table) or beside two of
 * them; a handover into snapshot-merge also needs the one merge of the origin and a store that
 * can merge. Snapshots of other origins are not looked at, as in Linux.
 */
export function validateHandover(s: SnapshotTarget): Handover {
  const o = find(s.origin, false);
  if (o == null) return new Handover(null, "");
  let src: SnapshotTarget | null = null;
  let dest: SnapshotTarget | null = null;
  let merging: SnapshotTarget | null = null;
  let count = 0;
  for (let i = 0; i < o.snapshots.length; i++) {
    const other = o.snapshots[i];
    if (other.isMerge) merging = other;
    if (other === s || !other.cow.sameAs(s.cow)) continue;
    if (other.active) src = other;
    else dest = other;
    count++;
  }
  if (count == 2 || dest != null) return new Handover(null, "Snapshot cow pairing for exception table handover failed");
  if (src == null || !s.isMerge) return new Handover(src, "");
  if (merging != null) return new Handover(null, "A snapshot is already merging.");
  if (!src.store.canMerge()) return new Handover(null, "Snapshot exception store does not support snapshot-merge.");
  return new Handover(src, "");
}

/** A COW device's snapshots of one origin: the live one and the one not live yet. */
export class CowPair {
  constructor(public src: SnapshotTarget | null, public dest: SnapshotTarget | null) {}
}

/**
 * __find_snapshots_sharing_cow as snapshot_preresume uses it: among the snapshots of s's origin
 * on s's COW device (s included), the active one is the handover's source, the other its
 * destination; both are set only while a handover waits.
 */
export function findSnapshotsSharingCow(s: SnapshotTarget): CowPair {
  const pair = new CowPair(null, null);
  const o = find(s.origin, false);
  if (o == null) return pair;
  for (let i = 0; i < o.snapshots.length; i++) {
    const other = o.snapshots[i];
    if (!other.cow.sameAs(s.cow)) continue;
    if (other.active) pair.src = other;
    else pair.dest = other;
  }
  return pair;
}

/** __minimum_chunk_size: origin writes never span a chunk of any snapshot. */
function minimumOf(o: Origin): u64 {
  let min: u64 = 0;
  for (let i = 0; i < o.snapshots.length; i++) {
    const c = o.snapshots[i].chunkSize();
    if (c != 0 && (min == 0 || c < min)) min = c;
  }
  return min;
}

export function minimumChunkSize(dev: DevRef): u64 {
  const o = find(dev, false);
  return o == null ? 0 : minimumOf(o);
}

function updateSplit(o: Origin): void {
  const min = minimumOf(o);
  for (let i = 0; i < o.origins.length; i++) o.origins[i].maxIoLen = min;
}
