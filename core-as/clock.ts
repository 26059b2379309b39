// Time as the host tells it (milliseconds), so time-driven targets stay deterministic in tests.
//
// The core has no clock of its own and never waits: flakey reads the time at map, and delay holds
// I/O until a deadline. A target holding I/O arms itself here; the host asks for the earliest
// deadline (dm_next_timer) and calls dm_set_time when it has come, which lets armed targets
// release what is due. The clock only moves forward: an earlier time is ignored.
let nowMs: f64 = 0;

/** A target that holds I/O until some time (a kernel timer_list, in effect). */
export abstract class Timed {
  armed: bool = false;
  /** The earliest deadline of what it holds, in ms, or -1 when it holds nothing. */
  abstract nextDeadline(): f64;
  /** The clock reached `now`: release everything due. */
  abstract expire(now: f64): void;
}

const armed = new Array<Timed>();

/** Registers a target that now holds timed I/O (idempotent). */
export function arm(t: Timed): void {
  if (t.armed) return;
  t.armed = true;
  armed.push(t);
}

/** Forgets a target (it was destroyed, or released everything it held). */
export function disarm(t: Timed): void {
  if (!t.armed) return;
  t.armed = false;
  const i = armed.indexOf(t);
  if (i >= 0) armed.splice(i, 1);
}

export function clockMs(): f64 {
  return nowMs;
}

/** Moves the clock forward and releases due I/O; the host then takes commands and completions. */
export function setClock(ms: f64): void {
  if (!(ms > nowMs)) return; // also ignores NaN
  nowMs = ms;
  // Releasing I/O may arm other targets (a delay stacked on a delay): walk by index, and only
  // drop a target once it reports nothing left.
  for (let i = 0; i < armed.length; i++) armed[i].expire(nowMs);
  for (let i = armed.length - 1; i >= 0; i--) {
    const t = armed[i];
    if (t.nextDeadline() < 0) {
      t.armed = false;
      armed.splice(i, 1);
    }
  }
}

/** The earliest deadline of any held I/O (ms), or -1 when nothing waits for time. */
export function nextTimer(): f64 {
  let best: f64 = -1;
  for (let i = 0; i < armed.length; i++) {
    const d = armed[i].nextDeadline();
    if (d >= 0 && (best < 0 || d < best)) best = d;
  }
  return best;
}
