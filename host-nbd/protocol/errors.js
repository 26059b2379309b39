// @ts-check
// Errors of the transmission phase: an NBD error value plus a message for humans (sent in
// structured error chunks, logged otherwise), and the mapping from the core's Linux errnos
// to the short list of values the spec allows on the wire.
import { NBD_ERR } from './constants.js';

export class NbdError extends Error {
  /** @param {number} errno an NBD_ERR value @param {string} message */
  constructor(errno, message) {
    super(message);
    this.name = 'NbdError';
    this.errno = errno;
  }
}

const ALLOWED = new Set(Object.values(NBD_ERR));
const LINUX_EOPNOTSUPP = 95;

/**
 * The NBD error value for a Linux errno from the core or the file system. The spec reserves
 * ENOTSUP for fast-zero refusals, so an operation a target cannot do is EINVAL; anything
 * outside the spec's list (ENXIO, ENODEV, EBUSY...) is an I/O error to the client.
 * @param {number} errno positive Linux errno
 */
export function nbdErrnoOf(errno) {
  if (errno === LINUX_EOPNOTSUPP) return NBD_ERR.EINVAL;
  return ALLOWED.has(errno) ? errno : NBD_ERR.EIO;
}

const NAMES = Object.fromEntries(Object.entries(NBD_ERR).map(([k, v]) => [v, k]));

/** @param {number} errno an NBD_ERR value */
export function nbdErrorName(errno) {
  return NAMES[errno] ?? `error ${errno}`;
}
