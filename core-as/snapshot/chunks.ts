// Chunk arithmetic shared by snapshots and their exception stores (dm-exception-store.h).
import { isPowerOfTwo } from "../args";

export const SECTOR_SHIFT: u32 = 9;

/** Why a chunk size (sectors) is unusable, or "" (dm_exception_store_set_chunk_size). */
export function chunkSizeError(chunkSize: u64): string {
  if (!isPowerOfTwo(chunkSize)) return "chunk size " + chunkSize.toString() + " is not a power of 2";
  if (chunkSize > <u64>(i32.MAX_VALUE >> SECTOR_SHIFT)) return "chunk size " + chunkSize.toString() + " is too high";
  return "";
}

export function chunkShiftOf(chunkSize: u64): u32 {
  return <u32>ctz(chunkSize);
}
