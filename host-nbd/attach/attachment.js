// @ts-check
// One attached device: its kernel side (index, method), its connections, and its owner lock.
// It ends when every connection has closed (and, with ioctl, NBD_DO_IT has returned) — after a
// detach, or because the kernel dropped the sockets (a request timed out, `dmkit detach` from
// another process). Detaching flushes first, so nothing the kernel acknowledged is lost.
import { AttachError, explain } from './errors.js';
import { flushBeforeDetach } from './flush.js';
import { disconnectDevice, resizeDevice } from './kernel.js';
import { unlockDevice } from './locks.js';
import { deviceState } from './devices.js';

const END_AFTER_DISCONNECT_MS = 30_000;
const IDLE_WAIT_MS = 30_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class Attachment {
  /**
   * @param {object} o
   * @param {import('./native.js').NativeAddon} o.native
   * @param {number} o.index
   * @param {'netlink' | 'ioctl'} o.method
   * @param {string} o.exportName
   * @param {import('./connections.js').Connection[]} o.connections
   * @param {Promise<void> | null} o.running ioctl: settles when NBD_DO_IT returns
   * @param {number | null} o.lockFd
   * @param {boolean} o.reconnected true when it revived a device whose server had died
   * @param {number} o.sizeBytes the device's size in the kernel
   * @param {number} o.blockSize its logical block size
   * @param {string} o.backend its backend identifier (netlink)
   * @param {() => number | null} [o.kernelSize] the size the kernel shows now (default: sysfs; null: unknown)
   * @param {() => Promise<void>} o.idle settles once the export has no I/O running
   * @param {() => boolean} o.suspended whether the export's device is suspended now
   * @param {(line: string) => void} o.log
   */
  constructor(o) {
    this.native = o.native;
    this.index = o.index;
    this.path = `/dev/nbd${o.index}`;
    this.method = o.method;
    this.exportName = o.exportName;
    this.connections = o.connections;
    this.lockFd = o.lockFd;
    this.reconnected = o.reconnected;
    this.sizeBytes = o.sizeBytes;
    this.blockSize = o.blockSize;
    this.backend = o.backend;
    this.kernelSize = o.kernelSize ?? (() => {
      const st = deviceState(this.index);
      return st.exists ? st.sizeBytes : null;
    });
    /** Resizes run one after the other, in the order asked. */
    this.resizing = Promise.resolve();
    this.log = o.log;
    this.idle = o.idle;
    this.suspended = o.suspended;
    /** @type {'attached' | 'detaching' | 'ended'} */
    this.state = 'attached';
    const closed = o.connections.map((c) => (c.serverSide.closed ? Promise.resolve() : new Promise((r) => c.serverSide.once('close', r))));
    this.ended = this.watch(Promise.all(closed), o.running);
  }

  async watch(allClosed, running) {
    await allClosed;
    if (running) await running.catch((e) => this.log(`${this.path}: ${explain(e, this.path).message}`));
    if (this.state === 'attached') {
      this.log(`${this.path}: every connection to export '${this.exportName}' closed without a detach by this server (\`dmkit detach\` from elsewhere, or the kernel dropped them)` +
        (this.method === 'netlink' ? ' (its I/O fails once the dead-connection timeout passes; `dmkit attach` can reattach it)' : ''));
    }
    // Requests the kernel sent before its sockets closed may still be running: the export is
    // free (for `dmkit remove`, for another attach) only once they are done.
    const settled = Promise.resolve().then(() => this.idle()).then(() => true, () => true); // removed: nothing runs
    const idle = await Promise.race([settled, sleep(IDLE_WAIT_MS).then(() => false)]);
    if (!idle) this.log(`${this.path}: export '${this.exportName}' still has I/O running ${IDLE_WAIT_MS / 1000} s after the detach`);
    this.state = 'ended';
    unlockDevice(this.native, this.lockFd);
    this.lockFd = null;
  }

  describe() {
    return { device: this.path, export: this.exportName, method: this.method, connections: this.connections.length };
  }

  /**
   * Gives the kernel device a new size (a multiple of its block size: the caller checks). Runs
   * after any resize still going on; resolves with the size it had (null: nothing to do, it has
   * that size or is no longer attached); rejects with an AttachError when the kernel refuses.
   * @param {number} bytes
   * @returns {Promise<number | null>}
   */
  resize(bytes) {
    const run = this.resizing.then(async () => {
      const from = this.sizeBytes;
      if (this.state !== 'attached' || from === bytes) return null;
      await resizeDevice(this.native, this.method, { index: this.index, sizeBytes: bytes, blockSize: this.blockSize, backend: this.backend });
      // A kernel before 5.3 accepts NBD_CMD_RECONFIGURE with a size and ignores the size.
      const now = this.kernelSize();
      if (now !== null && now !== bytes) {
        throw new AttachError(`the kernel accepted the new size but did not apply it (the device shows ${now} bytes; ` +
          'resizing a netlink-connected device needs Linux 5.3 or later)');
      }
      this.sizeBytes = bytes;
      return from;
    });
    this.resizing = run.catch(() => {});
    return run;
  }

  /**
   * Flushes, then disconnects, then waits for the connections to close.
   * @param {{force?: boolean, shutdown?: boolean}} [opts] force: detach even while the device is
   *   in use (mounted, or held by device-mapper); shutdown: the server is stopping, detach anyway
   *   after writing back every filesystem.
   */
  async detach(opts = {}) {
    if (this.state !== 'attached') return this.ended;
    this.state = 'detaching';
    const insist = !!opts.force || !!opts.shutdown;
    try {
      // A suspended device holds a FLUSH until it resumes; one left queued would also keep the
      // device busy (I/O in flight) after the detach.
      if (this.suspended()) {
        if (!insist) {
          throw new AttachError(`${this.path}: device '${this.exportName}' is suspended, so a flush would wait for it to ` +
            `resume: resume it first (dmkit resume ${this.exportName}), or detach with --force (no flush then)`, 'EBUSY');
        }
        this.log(`${this.path}: device '${this.exportName}' is suspended: detaching it without a flush`);
      } else {
        await flushBeforeDetach(this.native, this.path, insist, this.log);
      }
      await disconnectDevice(this.native, this.method, this.index);
    } catch (e) {
      if (this.state === 'detaching') this.state = 'attached';
      throw e;
    }
    const timer = setTimeout(() => {
      this.log(`${this.path}: connections still open ${END_AFTER_DISCONNECT_MS / 1000} s after the disconnect; closing them`);
      for (const c of this.connections) c.serverSide.destroy();
    }, END_AFTER_DISCONNECT_MS);
    await this.ended;
    clearTimeout(timer);
  }
}
