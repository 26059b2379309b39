// Completed exceptions of a snapshot: origin chunk -> COW chunk (dm_exception_table "complete").
//
// Every change gives the table a new tag, from one counter shared by all tables: a host that keeps
// a copy of which chunks a table holds (host-nbd's receive threads keep them as claims between
// lending runs, core-as/snapshot/thread-copies.ts) knows from an unchanged tag that its copy still
// holds, without reading millions of chunks again.
let lastTag: u64 = 0;

export class ExceptionTable {
  private map: Map<u64, u64> = new Map();
  /** Changes with every set or delete; never the same for two different contents. */
  tag: u64 = ++lastTag;

  get(oldChunk: u64): i64 {
    return this.map.has(oldChunk) ? <i64>this.map.get(oldChunk) : -1;
  }

  has(oldChunk: u64): bool {
    return this.map.has(oldChunk);
  }

  set(oldChunk: u64, newChunk: u64): void {
    this.map.set(oldChunk, newChunk);
    this.tag = ++lastTag;
  }

  delete(oldChunk: u64): void {
    if (this.map.delete(oldChunk)) this.tag = ++lastTag;
  }

  get size(): i32 {
    return this.map.size;
  }

  keys(): u64[] {
    return this.map.keys();
  }
}
