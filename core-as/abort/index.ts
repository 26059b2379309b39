// The core imports nothing: the runtime's abort/trace/seed hooks are replaced by these.
// An abort is a bug in the core. It traps (the host sees a WebAssembly.RuntimeError) after
// recording where it happened, which the host can read back with dm_last_abort.

// A static slot, not globals: abort can run before the module's globals are initialised.
// Layout: message ptr, file ptr, line, column (4 x u32).
function abortSlot(): usize {
  return memory.data(16);
}

export function coreAbort(message: usize, fileName: usize, line: u32, column: u32): void {
  const slot = abortSlot();
  store<u32>(slot, <u32>message);
  store<u32>(slot, <u32>fileName, 4);
  store<u32>(slot, line, 8);
  store<u32>(slot, column, 12);
  unreachable();
}

export function coreTrace(message: usize, n: i32, a0: f64, a1: f64, a2: f64, a3: f64, a4: f64): void {}

export function coreSeed(): f64 {
  return 0x5eed; // nothing in the core may depend on randomness
}

/** "message at file:line:column" of the last abort, or "" if none happened. */
export function lastAbort(): string {
  const slot = abortSlot();
  const messagePtr = <usize>load<u32>(slot);
  const filePtr = <usize>load<u32>(slot, 4);
  if (filePtr == 0) return "";
  const message = messagePtr != 0 ? changetype<string>(messagePtr) : "abort";
  return message + " at " + changetype<string>(filePtr) + ":" + load<u32>(slot, 8).toString() + ":" + load<u32>(slot, 12).toString();
}
