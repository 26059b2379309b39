#!/usr/bin/env node
// @ts-check
// The vector dispatcher: `node test/vectors/run.js <runner> [name-filter]`.
// Loads test/vectors/runners/<runner>.js, runs every matching vector through it, prints one line
// per vector and ends with `N passed, M failed` (`, K skipped`). Exits 1 on any failure.
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadVectorFiles } from './lib/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const runnersDir = join(here, 'runners');

/** Prints the usage (after the problem, if any) and exits: 0 when asked for it, 2 after a problem. */
function usage(problem) {
  const names = existsSync(runnersDir)
    ? readdirSync(runnersDir).filter((f) => f.endsWith('.js') && !f.startsWith('_')).map((f) => f.slice(0, -3))
    : [];
  const text = 'usage: node test/vectors/run.js <runner> [name-filter]   (npm run vectors -- <runner> [name-filter])\n' +
    'Runs every golden vector whose name contains name-filter through one runner (docs/vectors.md).\n' +
    `runners: ${names.join(', ') || '(none)'}`;
  if (!problem) {
    console.log(text);
    process.exit(0);
  }
  console.error(`${problem}\n${text}`);
  process.exit(2);
}

const [runnerName, filter] = process.argv.slice(2);
if (runnerName === '--help' || runnerName === '-h') usage('');
if (!runnerName) usage('no runner given');
if (!/^[a-z][a-z0-9-]*$/.test(runnerName)) usage(`'${runnerName}' is not a runner name`);
const runnerPath = join(runnersDir, `${runnerName}.js`);
if (!existsSync(runnerPath)) usage(`unknown runner '${runnerName}'`);

const runner = await import(pathToFileURL(runnerPath).href);
if (typeof runner.runVector !== 'function') {
  console.error(`runner '${runnerName}' does not export runVector(vector, context)`);
  process.exit(2);
}

const entries = await loadVectorFiles({ filter });
const vectors = entries.flatMap((e) => (e.vector ? [e.vector] : []));
if (entries.length === 0) {
  console.error(`no vector matches '${filter}'`);
  process.exit(1);
}

const timeoutMs = Number(process.env.VECTOR_TIMEOUT_MS) || runner.timeoutMs || 120_000;
let passed = 0, failed = 0, skipped = 0;
for (const e of entries) {
  if (!e.error) continue;
  failed++;
  console.log(`FAIL  ${e.name}: ${e.error.message}`);
}
const context = runner.setup ? await runner.setup({ filter, vectors }) : undefined;
try {
  for (const v of vectors) {
    let result;
    let timer;
    try {
      result = await Promise.race([
        runner.runVector(v, context),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs); }),
      ]);
    } catch (err) {
      result = { status: 'fail', detail: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
    const note = result.skippedStatements ? ` (${result.skippedStatements} statement(s) skipped)` : '';
    if (result.status === 'pass') {
      passed++;
      console.log(`pass  ${v.name}${note}`);
    } else if (result.status === 'skip') {
      skipped++;
      console.log(`skip  ${v.name}: ${result.detail ?? 'not expressible by this runner'}`);
    } else {
      failed++;
      console.log(`FAIL  ${v.name}: ${result.detail ?? 'failed'}`);
    }
  }
} finally {
  if (runner.teardown) await runner.teardown(context);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
