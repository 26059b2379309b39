// @ts-check
// I/O a host has started and not yet finished, per device: what a host waits for before a
// suspend, so I/O the vector sent before it is in flight at the suspend, as in the kernel.

export class InflightIo {
  constructor() {
    /** @type {Map<string, Set<Promise<unknown>>>} */
    this.byDevice = new Map();
  }

  /** Remembers `p` as in flight on `dev` until it settles; returns it. @template T @param {string} dev @param {Promise<T>} p */
  track(dev, p) {
    let set = this.byDevice.get(dev);
    if (!set) this.byDevice.set(dev, (set = new Set()));
    set.add(p);
    p.finally(() => set?.delete(p));
    return p;
  }

  /** Resolves once the I/O started on `dev` so far has settled. @param {string} dev */
  async settled(dev) {
    await Promise.allSettled([...(this.byDevice.get(dev) ?? [])]);
  }
}
