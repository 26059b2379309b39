// @ts-check
// File access for Node runners: reads test/vectors/cases/*.vec (sorted by name) and parses
// them. Kept apart from parse.js so the parser stays free of fs for browser bundles.
import { readdir, readFile } from 'node:fs/promises';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseVector } from './parse.js';

export const CASES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'cases');

/**
 * @typedef {{dir?: string, filter?: string, allowUnfilled?: boolean}} LoadOptions
 *   filter: a substring of the vector's name
 */

/**
 * Every matching vector file, parsed or with the reason it does not parse (a broken vector is
 * one failure, not the end of the run).
 * @param {LoadOptions} [options]
 * @returns {Promise<Array<{name: string, file: string, text: string, vector?: import('./parse.js').Vector, error?: Error}>>}
 */
export async function loadVectorFiles(options = {}) {
  const dir = options.dir ?? CASES_DIR;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.vec')).sort();
  const out = [];
  for (const f of files) {
    const name = f.slice(0, -4);
    if (options.filter && !name.includes(options.filter)) continue;
    const file = join(dir, f);
    const text = await readFile(file, 'utf8');
    try {
      // messages name the file relative to the working directory; vector.file stays absolute
      const vector = parseVector(text, relative(process.cwd(), file) || file, { allowUnfilled: options.allowUnfilled });
      vector.file = file;
      out.push({ name, file, text, vector });
    } catch (error) {
      out.push({ name, file, text, error: /** @type {Error} */ (error) });
    }
  }
  return out;
}

/**
 * Every matching vector, parsed; throws the first syntax error.
 * @param {LoadOptions} [options]
 */
export async function loadVectors(options = {}) {
  const entries = await loadVectorFiles(options);
  const broken = entries.find((e) => e.error);
  if (broken) throw broken.error;
  return entries.map((e) => /** @type {import('./parse.js').Vector} */ (e.vector));
}
