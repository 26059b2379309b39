// @ts-check
// The kernel's NBD devices as sysfs shows them. A device is *bound* while it has a configuration
// with sockets: the kernel then publishes /sys/block/nbdN/pid (the task that connected it) and,
// for netlink connections, /sys/block/nbdN/backend (the identifier given at connect).
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { AttachError } from './errors.js';

const SYS_BLOCK = process.env.DMKIT_SYS_BLOCK ?? '/sys/block';

/** dmkit's backend identifier for an export: reconnecting needs the same one. */
export function backendFor(exportName) {
  return `dmkit:${exportName}`;
}

/** '/dev/nbd3' or 'nbd3' → 3; anything else is a usage error. */
export function parseDevice(text) {
  const m = /^(?:\/dev\/)?nbd(\d+)$/.exec(text);
  if (!m) throw new AttachError(`'${text}' is not an NBD device (expected /dev/nbdN)`);
  return Number(m[1]);
}

export function devicePath(index) {
  return `/dev/nbd${index}`;
}

function readSys(index, file) {
  try {
    return readFileSync(`${SYS_BLOCK}/nbd${index}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * @param {number} index
 * @returns {{index: number, path: string, exists: boolean, bound: boolean, pid: number | null,
 *   backend: string | null, sizeBytes: number, blockSize: number | null}} blockSize: the logical
 *   block size the kernel gives the device (null when sysfs does not say)
 */
export function deviceState(index) {
  const exists = existsSync(`${SYS_BLOCK}/nbd${index}`);
  const pid = readSys(index, 'pid');
  const size = readSys(index, 'size');
  const block = readSys(index, 'queue/logical_block_size');
  return {
    index,
    path: devicePath(index),
    exists,
    bound: pid !== null,
    pid: pid === null ? null : Number(pid),
    backend: readSys(index, 'backend') || null,
    sizeBytes: size === null ? 0 : Number(size) * 512,
    blockSize: block === null ? null : Number(block),
  };
}

/** Indices of the NBD devices the kernel has, in order. */
export function listDevices() {
  let names;
  try {
    names = readdirSync(SYS_BLOCK);
  } catch {
    return [];
  }
  return names.map((n) => /^nbd(\d+)$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** Devices with no configuration, lowest first: the candidates for "first free". */
export function unboundDevices() {
  return listDevices().filter((i) => !deviceState(i).bound);
}

/** A human description of who holds a bound device. */
export function describeHolder(state) {
  const who = state.backend ? `'${state.backend}'` : 'a client';
  return state.pid ? `${who} (pid ${state.pid})` : who;
}
