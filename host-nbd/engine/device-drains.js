// @ts-check
// Callers waiting for a device to have no request in flight (suspend), woken after each pump.

export class DeviceDrains {
  /** @param {import('../../core-as/js/dmcore.js').DmCore} core */
  constructor(core) {
    this.core = core;
    /** @type {Array<{dev:number, resolve: () => void}>} */
    this.waiters = [];
  }

  /** Resolves once the device has no request in flight. @param {number} dev */
  drained(dev) {
    if (this.core.inflight(dev) === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ dev, resolve }));
  }

  /** Resolves the waiters whose device drained (or was removed). */
  wake() {
    this.waiters = this.waiters.filter((w) => {
      let busy;
      try { busy = this.core.inflight(w.dev) > 0; } catch { busy = false; } // removed: nothing to wait for
      if (!busy) w.resolve();
      return busy;
    });
  }
}
