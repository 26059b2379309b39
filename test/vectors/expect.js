#!/usr/bin/env node
// @ts-check
// Fills in the expectations of `derived model` vectors: every `=> ?` becomes the reference
// model's answer. `node test/vectors/expect.js [name-filter]`. Vectors derived by hand are
// never touched. Afterwards run `npm test` (model-agrees checks every vector against the model).
import { writeFile } from 'node:fs/promises';
import { loadVectorFiles } from './lib/load.js';
import { fillIn } from './model/check.js';

const filter = process.argv[2];
const entries = await loadVectorFiles({ filter, allowUnfilled: true });
let changed = 0, failed = 0;
for (const e of entries) {
  if (e.error) { console.error(`${e.name}: ${e.error.message}`); failed++; continue; }
  const v = /** @type {import('./lib/parse.js').Vector} */ (e.vector);
  try {
    const { text, filled } = fillIn(e.text, v);
    if (filled === 0) continue;
    if (v.derived !== 'model') {
      console.error(`${v.name}: has '=> ?' but is 'derived ${v.derived}': only model vectors are filled in`);
      failed++;
      continue;
    }
    await writeFile(e.file, text);
    console.log(`${v.name}: filled ${filled} expectation(s)`);
    changed++;
  } catch (err) {
    console.error(`${v.name}: ${err instanceof Error ? err.message : err}`);
    failed++;
  }
}
console.log(`${changed} vector(s) filled in${failed ? `, ${failed} failed` : ''}`);
process.exit(failed ? 1 : 0);
