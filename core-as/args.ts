// Parsing of table text: lines into words, words into numbers. Strict, as the kernel's
// kstrto* and sscanf("%llu%c") checks are: decimal digits only, no sign, no overflow.

/** Splits on spaces and tabs; empty words are dropped. */
export function splitWords(line: string): string[] {
  const words = new Array<string>();
  let start = -1;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    const blank = c == 32 || c == 9 || c == 13;
    if (blank) {
      if (start >= 0) { words.push(line.substring(start, i)); start = -1; }
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(line.substring(start));
  return words;
}

/** Result of a number parse: ok is false for anything that is not a decimal u64. */
export class ParsedU64 {
  constructor(public ok: bool, public value: u64) {}
}

export function parseU64(word: string): ParsedU64 {
  if (word.length == 0 || word.length > 20) return new ParsedU64(false, 0);
  let value: u64 = 0;
  for (let i = 0; i < word.length; i++) {
    const d = word.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return new ParsedU64(false, 0);
    // value * 10 + d must not pass 2^64 - 1
    if (value > (u64.MAX_VALUE - <u64>d) / 10) return new ParsedU64(false, 0);
    value = value * 10 + <u64>d;
  }
  return new ParsedU64(true, value);
}

export function isPowerOfTwo(v: u64): bool {
  return v != 0 && (v & (v - 1)) == 0;
}

/** log2 of a power of two, or -1 otherwise (as dm-stripe keeps its shifts). */
export function shiftOf(v: u64): i32 {
  return isPowerOfTwo(v) ? <i32>ctz(v) : -1;
}
