// @ts-check
// Human sizes for image files and output: 64M, 1G, 1GiB, 4096 (bytes).

const UNITS = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** @param {string} text @returns {number} bytes */
export function parseSize(text) {
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(String(text).trim());
  if (!m) throw new Error(`invalid size '${text}' (use bytes or a number with K, M, G or T, e.g. 64M)`);
  const bytes = Number(m[1]) * UNITS[/** @type {keyof UNITS} */ (m[2].toUpperCase())];
  if (!Number.isSafeInteger(bytes)) throw new Error(`size '${text}' is too large`);
  if (bytes % 512 !== 0) throw new Error(`size '${text}' is not a whole number of 512-byte sectors`);
  return bytes;
}

/** @param {number} bytes */
export function formatSize(bytes) {
  for (const [unit, f] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (bytes >= f) return `${(bytes / /** @type {number} */ (f)).toFixed(1).replace(/\.0$/, '')} ${unit}`;
  }
  return `${bytes} B`;
}
