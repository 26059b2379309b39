// @ts-check
// dmsetup tables for the parser fuzzer: lines built from every target's grammar with arguments
// at and past their limits, missing and extra words, broken numbers, gaps and overlaps between
// segments, comments, odd whitespace and bytes; and mutations of those at the character level.

/** @typedef {() => number} Random */
const int = (r, n) => Math.floor(r() * n);
/** @template T @param {Random} r @param {T[]} xs @returns {T} */
const pick = (r, xs) => xs[int(r, xs.length)];

/** A number word: usually fitting, sometimes at or past a limit, sometimes not a number. */
function num(r, fitting) {
  if (r() < 0.75) return String(fitting);
  return pick(r, ['0', '1', '-1', '+1', '2', '7', '8', '4096', '4294967295', '4294967296', '9223372036854775807',
    '18446744073709551615', '18446744073709551616', '99999999999999999999999', '0x10', '1e3', '010', '', '½', '1.5', 'NaN']);
}

/** A device word: a registered disk, the stacked device, an unknown name or junk. */
function dev(r, disks) {
  return r() < 0.85 ? pick(r, disks) : pick(r, ['nosuch', 'lower', '', '/dev/sda', 'a b', '\u0000', 'x'.repeat(300)]);
}

/** Target arguments from each target's grammar (docs/targets.md, docs/snapshots.md). */
function args(r, type, len, disks) {
  const d = () => dev(r, disks);
  switch (type) {
    case 'linear': return [d(), num(r, int(r, 64))];
    case 'striped': {
      const n = pick(r, [1, 2, 3, 4]);
      const out = [num(r, n), num(r, pick(r, [8, 16, 128]))];
      for (let i = 0; i < n; i++) out.push(d(), num(r, int(r, 64)));
      return out;
    }
    case 'zero': case 'error': return [];
    case 'snapshot-origin': return [d()];
    case 'snapshot': case 'snapshot-merge': {
      const out = [d(), pick(r, ['cow1', 'cow2', 'cow1', 'a', 'nosuch']), type === 'snapshot' ? pick(r, ['P', 'PO', 'N', 'p', 'X', '']) : pick(r, ['P', 'N']), num(r, pick(r, [0, 8, 16, 32, 3, 1]))];
      if (r() < 0.15) out.push(num(r, 1), pick(r, ['discard_zeroes_cow', 'discard_passdown_origin', 'x']));
      return out;
    }
    case 'ebs': {
      const out = [d(), num(r, pick(r, [0, 8])), num(r, pick(r, [1, 2, 4, 8]))];
      if (r() < 0.6) out.push(num(r, pick(r, [8, 16, 1, 4096])));
      return out;
    }
    case 'flakey': {
      const out = [d(), num(r, int(r, 16)), num(r, int(r, 10)), num(r, int(r, 10))];
      const features = [];
      for (let i = int(r, 4); i > 0; i--) {
        features.push(...pick(r, [['drop_writes'], ['error_writes'], ['error_reads'], ['DROP_WRITES'],
          ['corrupt_bio_byte', num(r, 32), pick(r, ['r', 'w', 'x']), num(r, 255), num(r, 0)], ['bogus']]));
      }
      if (features.length || r() < 0.3) out.push(num(r, features.length), ...features);
      return out;
    }
    case 'delay': {
      const out = [d(), num(r, int(r, 16)), num(r, int(r, 50))];
      const extra = pick(r, [0, 0, 1, 2]);
      for (let i = 0; i < extra; i++) out.push(d(), num(r, int(r, 16)), num(r, int(r, 50)));
      return out;
    }
    default: return Array.from({ length: int(r, 4) }, () => num(r, 1));
  }
}

const TYPES = ['linear', 'striped', 'zero', 'error', 'snapshot-origin', 'snapshot', 'snapshot-merge', 'ebs', 'flakey', 'delay', 'bogus', 'LINEAR'];

/**
 * A table of a few segments, usually contiguous from 0.
 * @param {Random} r @param {string[]} disks
 */
export function generateTable(r, disks) {
  const lines = [];
  let start = 0;
  for (let i = 1 + int(r, 3); i > 0; i--) {
    const len = pick(r, [8, 16, 64, 128, 256, 1024, 1, 3]);
    const type = pick(r, TYPES);
    const s = r() < 0.9 ? start : pick(r, [start + 1, Math.max(0, start - 1), 5]);
    const words = [num(r, s), num(r, len), type, ...args(r, type, len, disks)];
    lines.push(words.join(pick(r, [' ', ' ', ' ', '\t', '  '])));
    if (r() < 0.1) lines.push(pick(r, ['# comment', '', '   ', '#']));
    start = s + len;
  }
  return lines.join(pick(r, ['\n', '\n', '\r\n']));
}

/** Character-level mutations of a table. @param {Random} r @param {string} t */
export function mutateTable(r, t) {
  let s = t;
  for (let n = 1 + int(r, 3); n > 0; n--) {
    const at = int(r, s.length + 1);
    switch (int(r, 6)) {
      case 0: s = s.slice(0, at) + s.slice(at + 1 + int(r, 8)); break;
      case 1: s = s.slice(0, at) + pick(r, [' ', '\n', '\t', '0', '9', '-', '#', '\0', 'é', '\uffff']) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at).replace(/\d+/, pick(r, ['18446744073709551615', '0', '4294967296'])); break;
      case 3: s = s + '\n' + s; break;
      case 4: s = s.slice(0, at); break;
      default: s = s.replace(/\s+/, pick(r, ['', '\n', '  ']));
    }
  }
  return s.slice(0, 100_000);
}
