// The message buffer: the one place text leaves the core (errors, tables, status lines).
// It stays valid until the next call that sets a message.

let msgBytes: ArrayBuffer = new ArrayBuffer(0);

export function setMsg(text: string): void {
  msgBytes = String.UTF8.encode(text);
}

export function msgPtr(): usize {
  return changetype<usize>(msgBytes);
}

export function msgLen(): i32 {
  return msgBytes.byteLength;
}

/** Sets the message and returns -errno, so failures read `return fail(EINVAL, "...")`. */
export function fail(errno: i32, text: string): i32 {
  setMsg(text);
  return -errno;
}

/** Text passed in by the host as (ptr, len) of UTF-8. */
export function readText(ptr: usize, len: i32): string {
  return String.UTF8.decodeUnsafe(ptr, <usize>len);
}
