// @ts-check
// The attached devices of one server process: `dmkit serve --attach` and `dmkit attach` (through
// the control socket) come here. Attaching an export: open its connections through socket pairs
// (the handshake tells its size and flags), pick the device (the one named, else the first free
// one), take its ownership lock, hand the sockets to the kernel.
//
// A named device that is still bound to this export but whose owner has died (its lock is free)
// gets the new sockets through NBD_CMD_RECONFIGURE: I/O that was waiting for the dead-connection
// timeout carries on, and a filesystem mounted on it survives the server's restart.
//
// A device has its export's size: an attach (and a reattach) gives it the size the export has
// now, and resize() gives every device of an export the size a resume gave the export, as a
// device-mapper device takes its new table's length when it resumes. The block size stays.
import os from 'node:os';
import { loadNative } from './native.js';
import { AttachError } from './errors.js';
import { chooseMethod, connectDevice, reconnectDevice } from './kernel.js';
import { openConnection } from './connections.js';
import { Attachment } from './attachment.js';
import { backendFor, deviceState, describeHolder, listDevices, parseDevice, unboundDevices } from './devices.js';
import { tryLockDevice, unlockDevice } from './locks.js';
import { planResize, sizeProblem, resizedLine, keptLine } from './resize.js';
import { TFLAG } from '../protocol/constants.js';

export const DEFAULTS = Object.freeze({
  timeout: 30, // seconds a request may take before the kernel gives up on its connection
  deadTimeout: 30, // seconds I/O waits for a reattach once every connection died (netlink)
  maxConnections: 4, // with multi-conn: one per core, at most this many
});
const MAX_CONNECTIONS = 16;
const BLOCK_SIZES = [512, 1024, 2048, 4096]; // what the kernel accepts (up to the page size)

/**
 * @typedef {object} AttachOptions
 * @property {string} [device]       /dev/nbdN; the first free one when absent
 * @property {'netlink' | 'ioctl'} [method]
 * @property {number} [connections]
 * @property {number} [blockSize]
 * @property {number} [timeout]
 * @property {number} [deadTimeout]
 */

export class AttachManager {
  /**
   * @param {object} o
   * @param {import('./connections.js').ServeFd} o.serveFd serves one connected socket descriptor
   * @param {(name: string) => boolean} [o.hasExport]
   * @param {(name: string) => Promise<void>} [o.idle] settles once the export has no I/O running
   * @param {(name: string) => boolean} [o.suspended] whether the export's device is suspended
   * @param {(name: string) => number | null} [o.sizeOf] the export's size now (null: unknown)
   * @param {(line: string) => void} [o.log]
   */
  constructor(o) {
    this.serveFd = o.serveFd;
    this.hasExport = o.hasExport ?? (() => true);
    this.idle = o.idle ?? (async () => {});
    this.suspended = o.suspended ?? (() => false);
    this.sizeOf = o.sizeOf ?? (() => null);
    this.log = o.log ?? (() => {});
    /** @type {Map<number, Attachment>} */
    this.attachments = new Map();
  }

  /**
   * @param {string} exportName
   * @param {AttachOptions} [opts]
   * @returns {Promise<Attachment>}
   */
  async attach(exportName, opts = {}) {
    const settings = checkSettings(opts);
    const index = opts.device === undefined ? null : parseDevice(opts.device);
    if (!this.hasExport(exportName)) throw new AttachError(`no device named '${exportName}' (dmkit ls lists them)`);
    const native = loadNative();
    const method = chooseMethod(native, opts.method);

    const first = await openConnection(native, this.serveFd, exportName);
    const connections = [first.connection];
    try {
      const info = first.info;
      const count = connectionCount(info.flags, settings.connections, exportName);
      for (let i = 1; i < count; i++) connections.push((await openConnection(native, this.serveFd, exportName)).connection);
      const params = {
        index: -1,
        sizeBytes: info.size,
        blockSize: chooseBlockSize(info, settings.blockSize, exportName),
        flags: info.flags,
        timeout: settings.timeout,
        deadTimeout: settings.deadTimeout,
        fds: connections.map((c) => c.clientFd),
        backend: backendFor(exportName),
      };
      const placed = index === null
        ? await this.placeOnFirstFree(native, method, params)
        : await this.placeOn(native, method, index, params, exportName);
      for (const c of connections) c.closeClient(); // the kernel holds its own references now
      const a = new Attachment({ native, method, exportName, connections, idle: () => this.idle(exportName),
        suspended: () => this.suspended(exportName), log: this.log, backend: params.backend, ...placed });
      this.attachments.set(a.index, a);
      a.ended.then(() => { if (this.attachments.get(a.index) === a) this.attachments.delete(a.index); });
      this.log(`${placed.reconnected ? 'reattached' : 'attached'} export '${exportName}' to ${a.path} ` +
        `(${method}, ${count} connection${count > 1 ? 's' : ''}, ${a.blockSize}-byte blocks)`);
      // A reattached device has the size it had; and a resume during the attach may have
      // changed the export's size after the handshake told it.
      const now = this.sizeOf(exportName) ?? params.sizeBytes;
      if (now !== a.sizeBytes) await this.resize(exportName, now);
      return a;
    } catch (e) {
      for (const c of connections) c.abort();
      throw e;
    }
  }

  /** The device the user named: free, or bound to this export with its owner gone. */
  async placeOn(native, method, index, params, exportName) {
    const path = `/dev/nbd${index}`;
    const mine = this.attachments.get(index);
    if (mine) throw new AttachError(`${path} is already attached to export '${mine.exportName}' by this server`, 'EBUSY');
    const state = deviceState(index);
    if (!state.exists && method === 'ioctl') {
      throw new AttachError(`${path} does not exist (the nbd module made fewer devices: reload it with \`modprobe nbd nbds_max=N\`)`);
    }
    const lockFd = tryLockDevice(native, index);
    if (lockFd === null) throw new AttachError(`${path} is attached by another dmkit process (${describeHolder(state)})`, 'EBUSY');
    try {
      const p = { ...params, index };
      if (!state.bound) {
        return { index, lockFd, reconnected: false, sizeBytes: p.sizeBytes, blockSize: p.blockSize, ...(await connectDevice(native, method, p)) };
      }
      if (state.backend !== params.backend) {
        // We hold its lock, so a dmkit backend means the server that attached it has exited.
        const orphan = state.backend?.startsWith('dmkit:') ? ` (its dmkit server has exited: \`dmkit detach ${path}\` frees it)` : '';
        throw new AttachError(`${path} is busy: it is attached to ${describeHolder(state)}${orphan}`, 'EBUSY');
      }
      if (method !== 'netlink') {
        throw new AttachError(`${path} lost its server, and only the netlink interface can give it new connections: ` +
          `detach it first (dmkit detach ${path})`);
      }
      // The device keeps its block size; it takes the export's size as it is now (which a
      // resume may have changed while the device had no server).
      const blockSize = state.blockSize ?? params.blockSize;
      const problem = state.sizeBytes === params.sizeBytes ? null : sizeProblem(params.sizeBytes, blockSize);
      if (problem) {
        throw new AttachError(`${path} has ${state.sizeBytes} bytes and export '${exportName}' now has ${params.sizeBytes}, ` +
          `which the device cannot take (${problem}): detach it first (dmkit detach ${path})`);
      }
      try {
        await reconnectDevice(native, p);
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'EINVAL') throw e;
        throw new AttachError(`${path} would not take new connections: it was disconnected but something still ` +
          `has it open (close it, or \`dmkit detach ${path}\`, then attach again; \`dmesg\` may say more)`, 'EINVAL');
      }
      // attach() then resizes it to the export's size, as a resume would.
      return { index, lockFd, reconnected: true, running: null, sizeBytes: state.sizeBytes, blockSize };
    } catch (e) {
      unlockDevice(native, lockFd);
      throw e;
    }
  }

  /** The lowest device with no configuration that nobody else is taking at the same moment. */
  async placeOnFirstFree(native, method, params) {
    const candidates = unboundDevices().filter((i) => !this.attachments.has(i));
    // Netlink can add a device past the ones the module made at load time.
    if (candidates.length === 0 && method === 'netlink') candidates.push(Math.max(-1, ...listDevices()) + 1);
    for (const index of candidates) {
      const lockFd = tryLockDevice(native, index);
      if (lockFd === null) continue;
      try {
        if (deviceState(index).bound) throw new AttachError('bound meanwhile', 'EBUSY');
        return { index, lockFd, reconnected: false, sizeBytes: params.sizeBytes, blockSize: params.blockSize,
          ...(await connectDevice(native, method, { ...params, index })) };
      } catch (e) {
        unlockDevice(native, lockFd);
        if (/** @type {any} */ (e).code !== 'EBUSY') throw e;
      }
    }
    throw new AttachError(`no free NBD device (${listDevices().length} exist, all in use): ` +
      'detach one, or reload the module with more (`modprobe nbd nbds_max=N`)', 'EBUSY');
  }

  /**
   * A resume gave export `exportName` a new size: every device attached for it takes that size
   * (one log line each). A device whose block size does not divide it, or whose kernel refuses,
   * keeps its size and says so; nothing here fails the resume.
   * @param {string} exportName
   * @param {number} bytes
   */
  async resize(exportName, bytes) {
    await Promise.all(planResize(this.attachments.values(), exportName, bytes).map(async ({ attachment: a, to, problem }) => {
      if (problem) { this.log(keptLine(a, to, problem)); return; }
      try {
        const from = await a.resize(to);
        if (from !== null) this.log(resizedLine(a, from, to, a.method));
      } catch (e) {
        this.log(keptLine(a, to, e instanceof Error ? e.message : String(e)));
      }
    }));
  }

  /** @param {string} device */
  get(device) {
    return this.attachments.get(parseDevice(device)) ?? null;
  }

  list() {
    return [...this.attachments.values()].map((a) => a.describe());
  }

  /** Detaches everything (the server is stopping): in-use devices are synced and detached too. */
  async detachAll() {
    const failures = [];
    for (const a of [...this.attachments.values()]) {
      try {
        await a.detach({ shutdown: true });
        this.log(`detached ${a.path}`);
      } catch (e) {
        failures.push(`${a.path}: ${e instanceof Error ? e.message : e}`);
      }
    }
    if (failures.length) throw new AttachError(`detaching failed: ${failures.join('; ')}`);
  }
}

/** @param {AttachOptions} o */
function checkSettings(o) {
  const int = (name, v, min, max) => {
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || v < min || v > max) throw new AttachError(`${name} must be an integer from ${min} to ${max}, got ${v}`);
    return v;
  };
  const blockSize = int('block size', o.blockSize, 512, 4096);
  if (blockSize !== undefined && !BLOCK_SIZES.includes(blockSize)) {
    throw new AttachError(`block size must be one of ${BLOCK_SIZES.join(', ')}, got ${blockSize}`);
  }
  return {
    connections: int('connections', o.connections, 1, MAX_CONNECTIONS),
    blockSize,
    timeout: int('timeout', o.timeout, 0, 86400) ?? DEFAULTS.timeout,
    deadTimeout: int('dead-connection timeout', o.deadTimeout, 0, 86400) ?? DEFAULTS.deadTimeout,
  };
}

function connectionCount(flags, requested, name) {
  const multi = !!(flags & TFLAG.CAN_MULTI_CONN);
  if (requested !== undefined) {
    if (requested > 1 && !multi) {
      throw new AttachError(`export '${name}' allows one connection only (it does not advertise NBD_FLAG_CAN_MULTI_CONN)`);
    }
    return requested;
  }
  return multi ? Math.min(DEFAULTS.maxConnections, os.availableParallelism()) : 1;
}

function chooseBlockSize(info, requested, name) {
  const min = info.blockSize?.min ?? 1;
  if (requested !== undefined && requested < min) {
    throw new AttachError(`export '${name}' needs blocks of at least ${min} bytes, ${requested} was asked for`);
  }
  const size = requested ?? BLOCK_SIZES.find((b) => b >= min);
  if (size === undefined) throw new AttachError(`export '${name}' needs blocks of ${min} bytes; the kernel allows at most 4096`);
  if (info.size === 0) throw new AttachError(`export '${name}' is empty`);
  if (info.size % size !== 0) throw new AttachError(`export '${name}' has ${info.size} bytes, not a multiple of the ${size}-byte block size`);
  return size;
}
