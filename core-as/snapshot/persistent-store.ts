// The persistent exception store (P, PO): Linux's dm-snap-persistent.c on-disk format, byte for
// byte, so a COW device written here activates under the kernel's dm-snapshot and the other way
// round.
//
// Layout (all integers little-endian, chunk = chunk_size sectors):
//   chunk 0          header: u32 magic 0x70416e53 ("SnAp"), u32 valid, u32 version (1),
//                    u32 chunk_size; the rest of the chunk is zero
//   chunk 1          metadata area 0: exceptions_per_area = chunk_bytes / 16 entries of
//                    {u64 old_chunk, u64 new_chunk}; the table ends at the first new_chunk == 0
//   chunks 2 .. epa+1      data chunks of area 0
//   chunk 1 + (epa+1) * i  metadata area i, followed by its epa data chunks
// Allocation starts at chunk 2 and steps over metadata chunks (skip_metadata).
//
// When things reach the disk, as in the kernel:
//   - a new COW device (first sector zero): the header is written, then area 0 is zeroed;
//   - a finished copy is added to the in-memory area; the area is written (flush, then write
//     with FUA) when no other copy is in flight or the area just became full. A full area first
//     gets the next area zeroed on disk. Only after that write do the waiting writes go on;
//   - any I/O error makes the store invalid; invalidation writes the header with valid = 0.
// The kernel does those writes synchronously; here they are internal I/O, and commits that
// arrive meanwhile queue up and are applied in order once the write finished.
import { Io, submitInternal, OP_READ, OP_WRITE, OP_FLUSH, FLAG_FUA } from "../io";
import { ExceptionStore } from "./store";
import { PendingException } from "./pending";
import { chunkSizeError, SECTOR_SHIFT } from "./chunks";
import { EIO } from "../errno";
import { allocData, freeData } from "../data-buffer";

const SNAP_MAGIC: u32 = 0x70416e53;
const DISK_VERSION: u32 = 1;
const HEADER_CHUNKS: u64 = 1;
const DEFAULT_CHUNK_SECTORS: u64 = 32;
const EXCEPTION_BYTES: u64 = 16;

// Steps of the internal I/O this store issues (the cookie of each I/O).
const READ_HEADER: i64 = 1;
const WRITE_NEW_HEADER: i64 = 2;
const ZERO_FIRST_AREA: i64 = 3;
const READ_AREA: i64 = 4;
const ZERO_NEXT_AREA: i64 = 5;
const FLUSH_BEFORE_AREA: i64 = 6;
const WRITE_AREA: i64 = 7;
const WRITE_INVALID_HEADER: i64 = 8;
const READ_MERGE_AREA: i64 = 9;
const FLUSH_BEFORE_MERGE_AREA: i64 = 10;
const WRITE_MERGE_AREA: i64 = 11;

export class PersistentStore extends ExceptionStore {
  valid: bool = true;
  version: u32 = DISK_VERSION;
  exceptionsPerArea: u64 = 0;
  currentArea: u64 = 0;
  nextFree: u64 = HEADER_CHUNKS + 1;
  currentCommitted: u64 = 0;
  pendingCount: i32 = 0;
  /** Pending exceptions committed to the in-memory area, told when the area reaches the disk. */
  private callbacks: PendingException[] = [];
  private callbackValid: bool[] = [];
  /** An area write is in flight; later commits wait in the queue. */
  private writing: bool = false;
  private queue: PendingException[] = [];
  private queueValid: bool[] = [];
  /** One chunk each: the current area, zeroes, the header. */
  private area: usize = 0;
  private zeroArea: usize = 0;
  private headerArea: usize = 0;

  // ---- loading

  readMetadata(): void {
    if (this.chunkSize == 0) {
      this.setChunkSize(DEFAULT_CHUNK_SECTORS);
    }
    this.allocAreas();
    submitInternal(this, this.cow, OP_READ, 0, 0, 1, this.headerArea, READ_HEADER);
  }

  private allocAreas(): void {
    this.freeAreas();
    const bytes = <usize>(this.chunkSize << SECTOR_SHIFT);
    this.area = allocData(bytes);
    this.zeroArea = allocData(bytes);
    this.headerArea = allocData(bytes);
    memory.fill(this.area, 0, bytes);
    memory.fill(this.zeroArea, 0, bytes);
    memory.fill(this.headerArea, 0, bytes);
    this.exceptionsPerArea = (this.chunkSize << SECTOR_SHIFT) / EXCEPTION_BYTES;
  }

  private freeAreas(): void {
    if (this.area != 0) freeData(this.area);
    if (this.zeroArea != 0) freeData(this.zeroArea);
    if (this.headerArea != 0) freeData(this.headerArea);
    this.area = this.zeroArea = this.headerArea = 0;
  }

  release(): void {
    this.freeAreas();
  }

  private headerRead(): void {
    const h = this.headerArea;
    const magic = load<u32>(h);
    if (magic == 0) {
      // A new snapshot: header first, then an empty first area.
      this.valid = true;
      this.writeHeader(WRITE_NEW_HEADER);
      return;
    }
    if (magic != SNAP_MAGIC) return this.loaded("invalid or corrupt snapshot: bad magic 0x" + magic.toString(16) + " in the COW header");
    this.valid = load<u32>(h, 4) != 0;
    this.version = load<u32>(h, 8);
    const diskChunk = <u64>load<u32>(h, 12);
    if (this.version != DISK_VERSION) return this.loaded("unable to handle snapshot disk version " + this.version.toString());
    if (diskChunk != this.chunkSize) {
      const bad = chunkSizeError(diskChunk);
      if (bad.length > 0) return this.loaded("invalid on-disk chunk size " + diskChunk.toString() + ": " + bad);
      // The header's chunk size wins over the table's (the kernel warns when one was given).
      this.setChunkSize(diskChunk);
      this.allocAreas();
    }
    if (!this.valid) return this.loaded("");
    this.currentArea = 0;
    this.readArea();
  }

  private areaLocation(area: u64): u64 {
    return HEADER_CHUNKS + (this.exceptionsPerArea + 1) * area;
  }

  private chunkSector(chunk: u64): u64 {
    return chunk << this.chunkShift;
  }

  private readArea(): void {
    const chunk = this.areaLocation(this.currentArea);
    if (this.chunkSector(chunk) + this.chunkSize > this.cow.sectors()) {
      return this.loaded("metadata area " + this.currentArea.toString() + " lies past the end of the COW device");
    }
    submitInternal(this, this.cow, OP_READ, 0, this.chunkSector(chunk), <u32>this.chunkSize, this.area, READ_AREA);
  }

  /** insert_exceptions: adds the area's entries; continues with the next area while full. */
  private areaRead(): void {
    for (let i: u64 = 0; i < this.exceptionsPerArea; i++) {
      const at = this.area + <usize>(i * EXCEPTION_BYTES);
      const oldChunk = load<u64>(at);
      const newChunk = load<u64>(at, 8);
      if (newChunk == 0) {
        this.currentCommitted = i;
        this.skipMetadata();
        return this.loaded("");
      }
      // A corrupt entry would send I/O past the end of the COW device or over its metadata: the
      // device is refused (the kernel loads it and fails that I/O later).
      const bad = this.badNewChunk(newChunk);
      if (bad.length > 0) {
        return this.loaded("invalid or corrupt snapshot: metadata area " + this.currentArea.toString() + ", exception " + i.toString() + ": " + bad);
      }
      if (this.nextFree <= newChunk) this.nextFree = newChunk + 1;
      this.snap.addException(oldChunk, newChunk);
    }
    this.currentArea++;
    this.readArea();
  }

  /** Why an exception's COW chunk cannot be one, or "". */
  private badNewChunk(chunk: u64): string {
    const chunks = this.cow.sectors() >> this.chunkShift;
    if (chunk >= chunks) return "COW chunk " + chunk.toString() + " lies past the end of the COW device (" + chunks.toString() + " chunks)";
    if (chunk % (this.exceptionsPerArea + 1) == HEADER_CHUNKS) return "COW chunk " + chunk.toString() + " is a metadata area";
    return "";
  }

  private loaded(error: string): void {
    this.snap.metadataRead(error, this.valid);
  }

  private skipMetadata(): void {
    const stride = this.exceptionsPerArea + 1;
    if (this.nextFree % stride == HEADER_CHUNKS) this.nextFree++;
  }

  private writeHeader(step: i64): void {
    const bytes = <usize>(this.chunkSize << SECTOR_SHIFT);
    const h = this.headerArea;
    memory.fill(h, 0, bytes);
    store<u32>(h, SNAP_MAGIC);
    store<u32>(h, this.valid ? 1 : 0, 4);
    store<u32>(h, this.version, 8);
    store<u32>(h, <u32>this.chunkSize, 12);
    if (this.chunkSize > this.cow.sectors()) return this.stepDone(step, EIO);
    submitInternal(this, this.cow, OP_WRITE, 0, 0, <u32>this.chunkSize, h, step);
  }

  private zeroDiskArea(area: u64, step: i64): void {
    const sector = this.chunkSector(this.areaLocation(area));
    // Past the end of the COW device the kernel's write fails (bio past the end): an I/O error.
    if (sector + this.chunkSize > this.cow.sectors()) return this.stepDone(step, EIO);
    submitInternal(this, this.cow, OP_WRITE, 0, sector, <u32>this.chunkSize, this.zeroArea, step);
  }

  // ---- exceptions

  prepareException(pe: PendingException): bool {
    const size = this.cow.sectors();
    if (size < (this.nextFree + 1) * this.chunkSize) return false;
    pe.newChunk = this.nextFree;
    this.nextFree++;
    this.skipMetadata();
    this.pendingCount++;
    return true;
  }

  commitException(pe: PendingException, valid: bool): void {
    if (this.writing) {
      this.queue.push(pe);
      this.queueValid.push(valid);
      return;
    }
    this.commitNow(pe, valid);
  }

  private commitNow(pe: PendingException, valid: bool): void {
    if (!valid) this.valid = false;
    this.addEntry(pe.oldChunk, pe.newChunk);
    this.callbacks.push(pe);
    this.pendingCount--;
    // With copies still in flight and room left in the area, the write waits for them.
    if (this.pendingCount != 0 && this.currentCommitted != this.exceptionsPerArea) return;
    this.writing = true;
    if (this.currentCommitted == this.exceptionsPerArea) this.zeroDiskArea(this.currentArea + 1, ZERO_NEXT_AREA);
    else this.writeArea();
  }

  /** area_io with PREFLUSH | FUA: the copied data is stable before the area points at it. */
  private writeArea(): void {
    if (!this.valid) return this.areaWritten();
    submitInternal(this, this.cow, OP_FLUSH, 0, 0, 0, 0, FLUSH_BEFORE_AREA);
  }

  private addEntry(oldChunk: u64, newChunk: u64): void {
    const at = this.area + <usize>(this.currentCommitted * EXCEPTION_BYTES);
    store<u64>(at, oldChunk);
    store<u64>(at, newChunk, 8);
    this.currentCommitted++;
  }

  /** A full area on disk: the next one, empty, becomes current. */
  private nextAreaIfFull(): void {
    if (this.currentCommitted != this.exceptionsPerArea) return;
    this.currentCommitted = 0;
    this.currentArea++;
    memory.fill(this.area, 0, <usize>(this.chunkSize << SECTOR_SHIFT));
  }

  private areaWritten(): void {
    this.nextAreaIfFull();
    const done = this.callbacks;
    this.callbacks = [];
    this.writing = false;
    for (let i = 0; i < done.length; i++) this.snap.pendingComplete(done[i], this.valid);
    while (!this.writing && this.queue.length > 0) {
      const pe = this.queue.shift();
      const valid = this.queueValid.shift();
      this.commitNow(pe, valid);
    }
  }

  // ---- chunks lent to the host's copies (snapshot/thread-copies.ts)
  // The host copies into lent chunks and commits their exceptions to disk itself, as commitNow and
  // areaWritten would, in fold order; lentCommitted mirrors that in memory without I/O, so the
  // store's next own commit writes the same bytes as if every copy had been its own.

  /** Lent chunks no copy used yet (the last ones lent), and the first of them. */
  private lentUnused: u64 = 0;
  private lentNext: u64 = 0;
  /** The first chunk of the run lent since none was left unused: copies use data chunks from here to nextFree. */
  private lentFrom: u64 = 0;

  canLend(): bool {
    return this.valid && !this.writing && this.queue.length == 0 && this.pendingCount == 0;
  }

  /** Data chunks before data chunk c (the header and metadata chunks are not). */
  private dataIndex(c: u64): u64 {
    const d = c - HEADER_CHUNKS - 1;
    return d - d / (this.exceptionsPerArea + 1);
  }

  /** The data chunk with dataIndex i. */
  private dataChunk(i: u64): u64 {
    return HEADER_CHUNKS + 1 + i + i / this.exceptionsPerArea;
  }

  /**
   * Data chunks from nextFree on that may be lent: up to the end of the last area whose next
   * area's metadata chunk lies inside the COW device (the host zeroes it when the area fills).
   */
  room(): u64 {
    const chunks = this.cow.sectors() >> this.chunkShift;
    const stride = this.exceptionsPerArea + 1;
    if (chunks < HEADER_CHUNKS + 1 + stride) return 0;
    const last = stride * ((chunks - HEADER_CHUNKS - 1) / stride);
    return last < this.nextFree ? 0 : this.dataIndex(last) - this.dataIndex(this.nextFree) + 1;
  }

  lend(n: u64): i64 {
    if (n > this.room()) return -1;
    const first = this.nextFree;
    if (this.lentUnused == 0) this.lentNext = this.lentFrom = first;
    this.nextFree = this.dataChunk(this.dataIndex(first) + n);
    this.lentUnused += n;
    return <i64>first;
  }

  /** Only all unused chunks at once: from `first`, the next a copy would use. */
  unlend(first: u64, n: u64): bool {
    if (n != this.lentUnused || first != this.usedEnd()) return false;
    this.nextFree = first;
    this.lentUnused = 0;
    return true;
  }

  lentUsed(chunk: u64): bool {
    if (this.lentUnused == 0 || chunk < this.lentFrom || chunk >= this.nextFree) return false;
    if (this.dataChunk(this.dataIndex(chunk)) != chunk) return false; // a metadata chunk
    this.lentUnused--;
    this.lentNext = this.dataChunk(this.dataIndex(this.lentNext) + 1);
    return true;
  }

  /** next_free had only the used lent chunks been allocated. */
  private usedEnd(): u64 {
    return this.lentUnused > 0 ? this.lentNext : this.nextFree;
  }

  lentCommitted(oldChunk: u64, newChunk: u64): void {
    this.addEntry(oldChunk, newChunk);
    this.nextAreaIfFull();
  }

  /** As commitNow with valid false: the store is invalid, the snapshot is invalidated. */
  lentCopyFailed(): bool {
    this.valid = false;
    return true;
  }

  /** area_io failed on the host: the store is invalid, as after a failed WRITE_AREA. */
  lentCommitFailed(): bool {
    this.valid = false;
    return true;
  }

  /** u64 exceptionsPerArea, currentArea, currentCommitted, then the current area's bytes. */
  areaImage(out: usize, max: i32): i32 {
    const bytes = <i32>(this.chunkSize << SECTOR_SHIFT);
    if (max < 24 + bytes) return -2;
    store<u64>(out, this.exceptionsPerArea);
    store<u64>(out, this.currentArea, 8);
    store<u64>(out, this.currentCommitted, 16);
    memory.copy(out + 24, this.area, <usize>bytes);
    return 24 + bytes;
  }

  // ---- merging (snapshot-merge walks the table backwards, from the last committed exception)

  /**
   * persistent_prepare_merge: finds the run of consecutive exceptions ending at the last one
   * committed; ends with snap.mergePrepared(run length, last old chunk, last new chunk), where a
   * run of 0 means nothing is left and -1 a read error.
   */
  canMerge(): bool {
    return true;
  }

  prepareMerge(): void {
    if (this.currentCommitted == 0) {
      if (this.currentArea == 0) {
        this.snap.mergePrepared(0, 0, 0);
        return;
      }
      // The current area is empty: move back to the previous one.
      this.currentArea--;
      const chunk = this.areaLocation(this.currentArea);
      submitInternal(this, this.cow, OP_READ, 0, this.chunkSector(chunk), <u32>this.chunkSize, this.area, READ_MERGE_AREA);
      return;
    }
    this.findMergeRun();
  }

  private findMergeRun(): void {
    const last = this.currentCommitted - 1;
    const lastOld = this.oldChunkAt(last);
    const lastNew = this.newChunkAt(last);
    let n: u64 = 1;
    for (; n < this.currentCommitted; n++) {
      if (this.oldChunkAt(last - n) != lastOld - n || this.newChunkAt(last - n) != lastNew - n) break;
    }
    this.snap.mergePrepared(<i64>n, lastOld, lastNew);
  }

  private oldChunkAt(i: u64): u64 {
    return load<u64>(this.area + <usize>(i * EXCEPTION_BYTES));
  }

  private newChunkAt(i: u64): u64 {
    return load<u64>(this.area + <usize>(i * EXCEPTION_BYTES), 8);
  }

  private mergeCount: u64 = 0;

  /** persistent_commit_merge: clears the merged entries and writes the area (flush + FUA). */
  commitMerge(n: u64): void {
    for (let i: u64 = 0; i < n; i++) {
      const at = this.area + <usize>((this.currentCommitted - 1 - i) * EXCEPTION_BYTES);
      store<u64>(at, 0);
      store<u64>(at, 0, 8);
    }
    this.mergeCount = n;
    submitInternal(this, this.cow, OP_FLUSH, 0, 0, 0, 0, FLUSH_BEFORE_MERGE_AREA);
  }

  private mergeAreaWritten(ok: bool): void {
    if (ok) {
      this.currentCommitted -= this.mergeCount;
      // The value next_free would have had, had every exception been committed in order.
      this.nextFree = this.areaLocation(this.currentArea) + this.currentCommitted + 1;
    }
    this.snap.mergeCommitted(ok);
  }

  dropSnapshot(): void {
    this.valid = false;
    if (this.headerArea != 0) this.writeHeader(WRITE_INVALID_HEADER);
  }

  usage(): void {
    this.sectorsAllocated = this.usedEnd() * this.chunkSize;
    this.totalSectors = this.cow.sectors();
    this.metadataSectors = (this.currentArea + 1 + HEADER_CHUNKS) * this.chunkSize;
  }

  statusTable(): string {
    return (this.overflowSupported ? " PO " : " P ") + this.chunkSize.toString();
  }

  ioDone(io: Io, status: i32): void {
    this.stepDone(io.cookie, status);
  }

  private stepDone(step: i64, status: i32): void {
    if (step == READ_HEADER) {
      if (status != 0) return this.loaded("I/O error reading the COW header");
      this.headerRead();
    } else if (step == WRITE_NEW_HEADER) {
      if (status != 0) return this.loaded("I/O error writing the COW header");
      this.currentArea = 0;
      this.zeroDiskArea(0, ZERO_FIRST_AREA);
    } else if (step == ZERO_FIRST_AREA) {
      this.loaded(status != 0 ? "I/O error zeroing the first metadata area" : "");
    } else if (step == READ_AREA) {
      if (status != 0) return this.loaded("I/O error reading metadata area " + this.currentArea.toString());
      this.areaRead();
    } else if (step == ZERO_NEXT_AREA) {
      if (status != 0) this.valid = false;
      this.writeArea();
    } else if (step == FLUSH_BEFORE_AREA) {
      if (status != 0) {
        this.valid = false;
        return this.areaWritten();
      }
      const chunk = this.areaLocation(this.currentArea);
      submitInternal(this, this.cow, OP_WRITE, FLAG_FUA, this.chunkSector(chunk), <u32>this.chunkSize, this.area, WRITE_AREA);
    } else if (step == WRITE_AREA) {
      if (status != 0) this.valid = false;
      this.areaWritten();
    } else if (step == READ_MERGE_AREA) {
      if (status != 0) {
        this.snap.mergePrepared(-1, 0, 0);
        return;
      }
      this.currentCommitted = this.exceptionsPerArea;
      this.findMergeRun();
    } else if (step == FLUSH_BEFORE_MERGE_AREA) {
      if (status != 0) return this.mergeAreaWritten(false);
      const chunk = this.areaLocation(this.currentArea);
      submitInternal(this, this.cow, OP_WRITE, FLAG_FUA, this.chunkSector(chunk), <u32>this.chunkSize, this.area, WRITE_MERGE_AREA);
    } else if (step == WRITE_MERGE_AREA) {
      this.mergeAreaWritten(status == 0);
    }
    // WRITE_INVALID_HEADER: nothing more to do; the kernel only warns when it fails.
  }
}
