// @ts-check
// SHA-256 through WebCrypto, which Node (>= 19, globalThis.crypto) and browsers both have,
// so this file needs no imports and bundles as it is.

/** @param {Uint8Array} bytes @returns {Promise<string>} 64 lowercase hex digits */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}
