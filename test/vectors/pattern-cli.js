#!/usr/bin/env node
// @ts-check
// Prints pattern(SEED, BYTES) to stdout, for deriving expectations by hand with standard tools:
//   node test/vectors/pattern-cli.js 7 4096 | sha256sum
import { pattern } from './lib/pattern.js';

const [seed, bytes] = process.argv.slice(2).map(Number);
if (!Number.isInteger(seed) || !Number.isInteger(bytes) || seed < 0 || seed > 0xffffffff || bytes < 0) {
  console.error('usage: node test/vectors/pattern-cli.js SEED BYTES   (prints pattern(SEED, BYTES) to stdout)');
  process.exit(2);
}
process.stdout.write(pattern(seed, bytes));
