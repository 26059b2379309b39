// The exception store interface (struct dm_exception_store_type): where copied chunks live on
// the COW device and how that mapping survives. Implementations: persistent (P, PO), transient (N).
import { Waiter } from "../io";
import { DevRef } from "../devref";
import { PendingException } from "./pending";
import { SnapshotTarget } from "../targets/snapshot";
import { chunkShiftOf } from "./chunks";

export abstract class ExceptionStore extends Waiter {
  /** Chunk size in sectors; 0 until known (a persistent store may take it from its header). */
  chunkSize: u64 = 0;
  chunkShift: u32 = 0;
  /** The snapshot that owns the store now (a reload may hand it to a new one). */
  snap: SnapshotTarget;
  /** PO: the user wants "Overflow" rather than invalidation when the COW device fills up. */
  overflowSupported: bool = false;
  /** Usage, refreshed by usage(). */
  sectorsAllocated: u64 = 0;
  totalSectors: u64 = 0;
  metadataSectors: u64 = 0;

  constructor(snap: SnapshotTarget, public cow: DevRef) {
    super();
    this.snap = snap;
  }

  setChunkSize(chunkSize: u64): void {
    this.chunkSize = chunkSize;
    this.chunkShift = chunkSize == 0 ? 0 : chunkShiftOf(chunkSize);
  }

  /** Loads the metadata; ends with snap.metadataRead(error, valid). May finish before returning. */
  abstract readMetadata(): void;
  /** Chooses the COW chunk for pe (pe.newChunk); false when the COW device is full. */
  abstract prepareException(pe: PendingException): bool;
  /** Records a finished copy; ends with snap.pendingComplete(pe, success), in commit order. */
  abstract commitException(pe: PendingException, valid: bool): void;
  /** The snapshot became invalid: persist that. */
  abstract dropSnapshot(): void;
  abstract usage(): void;
  /** The store's part of the TABLE status: " P 8", " PO 8", " N 8". */
  abstract statusTable(): string;
  /** snapshot-merge support (persistent stores only); see PersistentStore. */
  canMerge(): bool {
    return false;
  }
  prepareMerge(): void {}
  commitMerge(n: u64): void {}
  // Chunks lent to the host's own copies (snapshot/thread-copies.ts). By default a store cannot lend.
  /** The store could lend chunks now (nothing of its own in flight). */
  canLend(): bool {
    return false;
  }
  /** How many chunks lend() could lend now. */
  room(): u64 {
    return 0;
  }
  /** Lends the next n chunks: the first, or -1. */
  lend(n: u64): i64 {
    return -1;
  }
  /** Takes back the n lent chunks no copy used, from `first` on. */
  unlend(first: u64, n: u64): bool {
    return false;
  }
  /** Lent chunk `chunk` holds a copy (or a failed one): false when none was left, or it is no lent chunk. */
  lentUsed(chunk: u64): bool {
    return false;
  }
  /** A lent chunk's copy failed: whether the snapshot becomes invalid. */
  lentCopyFailed(): bool {
    return true;
  }
  /** The host committed the exception {oldChunk, newChunk} in a lent chunk as the store would have. */
  lentCommitted(oldChunk: u64, newChunk: u64): void {}
  /** The host's commit of lent copies failed: false when the store never lends. */
  lentCommitFailed(): bool {
    return false;
  }
  /** The metadata area the host's commits continue (persistent stores): bytes written at out, or -1 (none), -2 (max too small). */
  areaImage(out: usize, max: i32): i32 {
    return -1;
  }
  /** Frees buffers; the store is no longer used. */
  release(): void {}
}
