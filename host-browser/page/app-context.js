// @ts-check
// What every panel shares: the worker client, the latest state the worker reported, the chunk
// maps, the selected device, and `act`, which runs one user action with its button disabled
// and its outcome (or the worker's error message) shown next to it.
import { say } from './dom.js';

export class AppContext {
  /** @param {import('./worker-client.js').WorkerClient} client */
  constructor(client) {
    this.client = client;
    /** @type {{disks: Array<{name: string, bytes: number, usedBy: string[]}>, devices: any[], notices: string[], stepDelayMs: number}} */
    this.state = { disks: [], devices: [], notices: [], stepDelayMs: 0 };
    /** @type {Map<string, any>} chunk maps by device name */
    this.maps = new Map();
    /** @type {string|null} */
    this.selected = null;
    /** @type {Array<() => void>} */
    this.renderers = [];
  }

  onChange(fn) { this.renderers.push(fn); }

  render() { for (const fn of this.renderers) fn(); }

  device(name) { return this.state.devices.find((d) => d.name === name); }

  /** Size in sectors of a backing or mapped device (for pictures), undefined if unknown. */
  sizeOf = (name) => {
    const disk = this.state.disks.find((d) => d.name === name);
    if (disk) return disk.bytes / 512;
    const dev = this.device(name);
    return dev ? dev.sectors : undefined;
  };

  /**
   * @param {HTMLElement|null} button disabled while it runs
   * @param {HTMLElement} out where the outcome is said
   * @param {() => Promise<string|void>} fn returns the success text
   */
  async act(button, out, fn) {
    if (button) /** @type {HTMLButtonElement} */ (button).disabled = true;
    say(out, 'working…', 'ok');
    try {
      const text = await fn();
      say(out, text || 'done', 'ok');
      return true;
    } catch (e) {
      say(out, e instanceof Error ? e.message : String(e), 'error');
      return false;
    } finally {
      if (button) /** @type {HTMLButtonElement} */ (button).disabled = false;
    }
  }
}
