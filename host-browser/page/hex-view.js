// @ts-check
// Sectors as hex and ASCII, `perRow` bytes a row, offsets as the device's byte offsets.

/** @param {Uint8Array} bytes @param {number} firstSector @param {number} perRow */
export function hexDump(bytes, firstSector, perRow) {
  const lines = [];
  const base = firstSector * 512;
  for (let i = 0; i < bytes.length; i += perRow) {
    const row = bytes.subarray(i, i + perRow);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const asc = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(base + i).toString(16).padStart(8, '0')}  ${hex}  |${asc}|`);
  }
  return lines.join('\n');
}

/** Runs of identical rows collapse to one "*" line, as hexdump -C does. */
export function collapseRepeats(dump) {
  const out = [];
  let last = '', starred = false;
  for (const line of dump.split('\n')) {
    const body = line.slice(10);
    if (body === last) {
      if (!starred) out.push('*');
      starred = true;
      continue;
    }
    out.push(line);
    last = body;
    starred = false;
  }
  return out.join('\n');
}
