// The transient exception store (N): exceptions live in memory only; COW chunks are handed out
// from the start of the device (dm-snap-transient.c).
import { Io } from "../io";
import { ExceptionStore } from "./store";
import { PendingException } from "./pending";

export class TransientStore extends ExceptionStore {
  /** Next free sector of the COW device. */
  private nextFree: u64 = 0;

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

  usage(): void {
    this.sectorsAllocated = this.nextFree;
    this.totalSectors = this.cow.sectors();
    this.metadataSectors = 0;
  }

  statusTable(): string {
    return " N " + this.chunkSize.toString();
  }

  ioDone(io: Io, status: i32): void {}
}
