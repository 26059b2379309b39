// @ts-check
// Argument parsing shared by the model's targets (not a target: exports no types).
export const types = {};

/** An unsigned decimal sector number below 2^53, or null. */
export function parseSector(/** @type {string} */ word) {
  if (!/^(0|[1-9][0-9]*)$/.test(word)) return null;
  const n = Number(word);
  return Number.isSafeInteger(n) ? n : null;
}
