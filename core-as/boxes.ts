// The outbox (commands for the host) and the done box (finished requests), as raw records in
// linear memory that the host reads with a DataView. Both accumulate until the host takes them;
// the host must read what it took before calling into the core again.

export const COMMAND_BYTES: usize = 32;
export const DONE_BYTES: usize = 12;

// The boxes' state at a fixed address (dm_boxes_ptr), so a host learns whether there is
// anything to take, and where, without calling in: outbox ptr, commands waiting in it,
// done box ptr, completions waiting in it, events raised so far, kernel-log lines waiting
// (6 x u32). Kept in step with the globals below and kernel-log.ts.
const STATE: usize = memory.data(24);

export function boxesPtr(): usize {
  return STATE;
}

/** A device event was raised (device.ts tableEvent): the host learns of it from the count. */
export function noteEvent(): void {
  store<u32>(STATE, load<u32>(STATE, 16) + 1, 16);
}

/** The kernel log holds `n` lines for the host (kernel-log.ts). */
export function noteLogLines(n: u32): void {
  store<u32>(STATE, n, 20);
}

let outbox: usize = 0;
let outboxCap: usize = 0;
let outboxCount: usize = 0;

let donebox: usize = 0;
let doneboxCap: usize = 0;
let doneboxCount: usize = 0;

function grow(ptr: usize, cap: usize, recordBytes: usize): usize {
  const bytes = (cap == 0 ? <usize>64 : cap * 2) * recordBytes;
  return ptr == 0 ? heap.alloc(bytes) : heap.realloc(ptr, bytes);
}

export function outboxPush(cmd: i32, backing: i32, op: u32, flags: u32, sector: u64, count: u32, buf: usize): void {
  if (outboxCount == outboxCap) {
    outbox = grow(outbox, outboxCap, COMMAND_BYTES);
    outboxCap = outboxCap == 0 ? 64 : outboxCap * 2;
    store<u32>(STATE, <u32>outbox);
  }
  const p = outbox + outboxCount * COMMAND_BYTES;
  store<u32>(p, cmd);
  store<u32>(p, backing, 4);
  store<u32>(p, op, 8);
  store<u32>(p, flags, 12);
  store<u64>(p, sector, 16);
  store<u32>(p, count, 24);
  store<u32>(p, <u32>buf, 28);
  outboxCount++;
  store<u32>(STATE, <u32>outboxCount, 4);
}

export function doneboxPush(tag: u32, status: i32): void {
  if (doneboxCount == doneboxCap) {
    donebox = grow(donebox, doneboxCap, DONE_BYTES);
    doneboxCap = doneboxCap == 0 ? 64 : doneboxCap * 2;
    store<u32>(STATE, <u32>donebox, 8);
  }
  const p = donebox + doneboxCount * DONE_BYTES;
  store<u32>(p, tag);
  store<i32>(p, status, 4);
  store<u32>(p, 0, 8);
  doneboxCount++;
  store<u32>(STATE, <u32>doneboxCount, 12);
}

/** Hands the accumulated commands to the host: their count; records start at outboxPtr(). */
export function takeCommands(): i32 {
  const n = <i32>outboxCount;
  outboxCount = 0;
  store<u32>(STATE, 0, 4);
  return n;
}

export function outboxPtr(): usize {
  return outbox;
}

export function takeCompletions(): i32 {
  const n = <i32>doneboxCount;
  doneboxCount = 0;
  store<u32>(STATE, 0, 12);
  return n;
}

export function doneboxPtr(): usize {
  return donebox;
}
