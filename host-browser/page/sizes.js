// @ts-check
// Sizes as people type them: 512, 4K, 16M, 1G (powers of 1024), or "s" for sectors (2048s).

const UNITS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** @returns {number} bytes @throws {Error} with a readable message */
export function parseSize(text) {
  const m = /^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text) ?? /^\s*(\d+)\s*(s)\s*$/i.exec(text);
  if (!m) throw new Error(`'${text}' is not a size (examples: 4096, 64K, 16M, 1G, 2048s)`);
  const n = Number(m[1]);
  const bytes = m[2].toLowerCase() === 's' ? n * 512 : n * UNITS[/** @type {'k'} */ (m[2].toLowerCase())];
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`'${text}' is not a usable size`);
  return bytes;
}

export function formatSize(bytes) {
  for (const [unit, f] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]]) {
    if (bytes >= f) {
      const v = bytes / /** @type {number} */ (f);
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} B`;
}
