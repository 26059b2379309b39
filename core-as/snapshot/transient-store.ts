// The transient exception store (N): exceptions live in memory only; COW chunks are handed out
// from the start of the device (dm-snap-transient.c).
import { Io } from "../io";
import { ExceptionStore } from "./store";
import { PendingException } from "./pending";

export class TransientStore extends ExceptionStore {
  /** Next free sector of the COW device. */
  private nextFree: u64 = 0;
  /** Chunks lent to the host's copies (thread-copies.ts) and not used by one yet: the last ones before nextFree. */
  lentUnused: u64 = 0;
  /** The first chunk of the run lent since none was left unused: copies use chunks from here to nextFree. */
  private lentFrom: u64 = 0;

  readMetadata(): void {
    this.snap.metadataRead("", true);
  }

  prepareException(pe: PendingException): bool {
    const size = this.cow.sectors();
    if (size < this.nextFree + this.chunkSize) return false;
    pe.newChunk = this.nextFree >> this.chunkShift;
    this.nextFree += this.chunkSize;
    return true;
  }

  commitException(pe: PendingException, valid: bool): void {
    this.snap.pendingComplete(pe, valid);
  }

  dropSnapshot(): void {}

  canLend(): bool {
    return true;
  }

  /** How many more chunks the COW device holds. */
  room(): u64 {
    const size = this.cow.sectors();
    return size <= this.nextFree ? 0 : (size - this.nextFree) >> this.chunkShift;
  }

  /** Lends the next n chunks to the host's copies: the first of them, or -1 when the COW device has no room for n. */
  lend(n: u64): i64 {
    if (this.cow.sectors() < this.nextFree + n * this.chunkSize) return -1;
    const first = this.nextFree >> this.chunkShift;
    if (this.lentUnused == 0) this.lentFrom = first;
    this.nextFree += n * this.chunkSize;
    this.lentUnused += n;
    return <i64>first;
  }

  /** Takes back the n lent chunks from `first` on, unused: they must be the last ones handed out. */
  unlend(first: u64, n: u64): bool {
    if (n > this.lentUnused || (first + n) << this.chunkShift != this.nextFree) return false;
    this.nextFree -= n * this.chunkSize;
    this.lentUnused -= n;
    return true;
  }

  /** A lent chunk holds a copy now (its exception is recorded by the caller). */
  lentUsed(chunk: u64): bool {
    if (this.lentUnused == 0 || chunk < this.lentFrom || chunk >= this.nextFree >> this.chunkShift) return false;
    this.lentUnused--;
    return true;
  }

  /** The chunk stays used; the snapshot is invalidated, as dm-snap's pending_complete does for any failed copy. */
  lentCopyFailed(): bool {
    return true;
  }

  /** Nothing to undo: the snapshot is invalidated by the caller. */
  lentCommitFailed(): bool {
    return true;
  }

  usage(): void {
    // Chunks lent and not used are not allocated yet: the count is the exceptions', as Linux's.
    this.sectorsAllocated = this.nextFree - this.lentUnused * this.chunkSize;
    this.totalSectors = this.cow.sectors();
    this.metadataSectors = 0;
  }

  statusTable(): string {
    return " N " + this.chunkSize.toString();
  }

  ioDone(io: Io, status: i32): void {}
}
