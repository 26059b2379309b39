// @ts-check
// An attached device follows its export's size, as a device-mapper device does when it resumes
// with a table of another length (dm's resume calls set_capacity_and_notify): when a resume
// changes an export's size, each kernel device this server attached for it gets the new size.
// The kernel keeps a device's block size, so the new size must be a multiple of it; a device for
// which it is not keeps its size (and a log line says why). Here: which device gets which size.

/**
 * @typedef {object} Sized
 * @property {string} path        /dev/nbdN
 * @property {string} exportName
 * @property {number} sizeBytes   what the kernel device has now
 * @property {number} blockSize   its logical block size
 * @property {string} state       'attached' | 'detaching' | 'ended'
 */

/**
 * The new size for a device of `blockSize`-byte blocks, or why it cannot take it.
 * @param {number} bytes @param {number} blockSize
 * @returns {string | null} null when it can; else the reason, one sentence
 */
export function sizeProblem(bytes, blockSize) {
  if (!Number.isSafeInteger(bytes) || bytes < 0) return `${bytes} is not a size in bytes`;
  if (bytes % blockSize !== 0) return `${bytes} bytes is not a multiple of its ${blockSize}-byte block size`;
  return null;
}

/**
 * What a resize of export `exportName` to `bytes` does to each attachment: those of other
 * exports, detaching or ended ones, and those that already have the size are left out.
 * @template {Sized} T
 * @param {Iterable<T>} attachments
 * @param {string} exportName
 * @param {number} bytes
 * @returns {{attachment: T, from: number, to: number, problem: string | null}[]}
 */
export function planResize(attachments, exportName, bytes) {
  const plan = [];
  for (const a of attachments) {
    if (a.exportName !== exportName || a.state !== 'attached' || a.sizeBytes === bytes) continue;
    plan.push({ attachment: a, from: a.sizeBytes, to: bytes, problem: sizeProblem(bytes, a.blockSize) });
  }
  return plan;
}

/** The log line of a device that took its new size. @param {Sized} a @param {number} from @param {number} to @param {string} method */
export function resizedLine(a, from, to, method) {
  return `${a.path}: export '${a.exportName}' resized: ${from} -> ${to} bytes (${method})`;
}

/** The log line of a device that keeps its size. @param {Sized} a @param {number} to @param {string} why */
export function keptLine(a, to, why) {
  return `${a.path}: export '${a.exportName}' now has ${to} bytes, but the device keeps its ${a.sizeBytes}: ${why}`;
}
