// Completed exceptions of a snapshot: origin chunk -> COW chunk (dm_exception_table "complete").
export class ExceptionTable {
  private map: Map<u64, u64> = new Map();

  get(oldChunk: u64): i64 {
    return this.map.has(oldChunk) ? <i64>this.map.get(oldChunk) : -1;
  }

  has(oldChunk: u64): bool {
    return this.map.has(oldChunk);
  }

  set(oldChunk: u64, newChunk: u64): void {
    this.map.set(oldChunk, newChunk);
  }

  delete(oldChunk: u64): void {
    this.map.delete(oldChunk);
  }

  get size(): i32 {
    return this.map.size;
  }

  keys(): u64[] {
    return this.map.keys();
  }
}
