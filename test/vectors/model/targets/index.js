// @ts-check
// The model's target types: every other file in this directory exports
// `types = { 'target-name': constructor }` (see ../table.js for the constructor contract and
// docs/vectors.md, "Adding a target to the model"). Files are found by listing the directory,
// so adding a target is adding a file.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));

/** @type {Map<string, (args: string[], ctx: import('../table.js').TargetContext) => import('../table.js').Target | {error: string}>} */
export const targetTypes = new Map();

for (const file of readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'index.js' && !f.endsWith('.test.js')).sort()) {
  const mod = await import(pathToFileURL(join(here, file)).href);
  if (!mod.types) throw new Error(`model/targets/${file} does not export types`);
  for (const [name, make] of Object.entries(mod.types)) {
    if (targetTypes.has(name)) throw new Error(`model/targets/${file}: target type '${name}' is defined twice`);
    targetTypes.set(name, make);
  }
}
