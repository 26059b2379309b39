// Garbage collection at safe points. The core uses the minimal runtime (no write barriers on
// the I/O path), which never collects by itself and does not scan the stack: so collections
// run only at the end of exported calls, when every live object hangs off a global.
// The I/O path allocates nothing once its pools are warm; control calls and error messages do.

let garbageEvents: i32 = 0;

/** Ends a control call: collects, then passes its result through. */
export function settle(result: i32): i32 {
  __collect();
  garbageEvents = 0;
  return result;
}

/** Ends an I/O call that made garbage (an error message): collects once in a while. */
export function settleSometimes(result: i32): i32 {
  if (++garbageEvents >= 256) {
    __collect();
    garbageEvents = 0;
  }
  return result;
}
