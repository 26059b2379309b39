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

/** The snapshot sharing this COW device, other than s (a reload hands exceptions over). */
export function snapshotSharingCow(s: SnapshotTarget): SnapshotTarget | null {
  for (let i = 0; i < origins.length; i++) {
    const snaps = origins[i].snapshots;
    for (let j = 0; j < snaps.length; j++) {
      if (snaps[j] !== s && snaps[j].cow.sameAs(s.cow)) return snaps[j];
    }
  }
  return null;
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
