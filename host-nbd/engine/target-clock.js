// @ts-check
// The clock of time-driven targets (flakey, delay), and the timer that pumps the engine again
// when the core's next deadline passes. Real milliseconds, or with virtualTime a discrete-event
// clock (the one the vector runners use): it starts at 0 and moves only by set(), or by jumping
// to the core's next timer when nothing but time is awaited, so tests are deterministic.
export class TargetClock {
  /**
   * @param {any} x the core's exports (dm_next_timer, dm_set_time)
   * @param {boolean} virtualTime
   * @param {() => void} pump runs what became due (Engine.pump)
   */
  constructor(x, virtualTime, pump) {
    this.x = x;
    this.virtualTime = virtualTime;
    this.pump = pump;
    this.now = 0;
    this.lastJump = -1;
    /** Milliseconds for time-driven targets. */
    this.read = virtualTime ? () => this.now : () => performance.now();
    this.timer = /** @type {NodeJS.Timeout | null} */ (null);
  }

  /** Virtual time: moves the clock forward (never back). */
  set(ms) {
    this.now = Math.max(this.now, ms);
  }

  /** Virtual time: jump to the next timer (the caller knows nothing is running). @returns {boolean} whether it jumped */
  jump() {
    if (!this.virtualTime) return false;
    const next = this.x.dm_next_timer();
    if (next < 0 || next === this.lastJump) return false; // a timer that releases nothing must not loop
    this.lastJump = next;
    this.now = Math.max(this.now, next);
    this.x.dm_set_time(this.now);
    return true;
  }

  /** Time-driven targets (delay) hold I/O until a deadline: pump again when it passes. */
  arm() {
    if (this.virtualTime) return;
    const next = this.x.dm_next_timer();
    if (next < 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.pump(); }, Math.max(0, next - this.read()));
  }

  /** No more pumps from the timer (the engine is closing). */
  stop() {
    if (this.timer) clearTimeout(this.timer);
  }
}
