// @ts-check
// The `browser` runner: every vector in headless Chromium (Debian's, through playwright-core),
// through the demo page's worker: a fresh core per vector, its disks as OPFS files, every
// command on a FileSystemSyncAccessHandle (host-browser/worker/vectors.js does the work).
import { readFile } from 'node:fs/promises';
import { openDemo, chromiumMissing } from '../../../host-browser/test/browser.js';

export const timeoutMs = 120_000;

export async function setup() {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  return { session: await openDemo() };
}

/**
 * @param {import('../lib/parse.js').Vector} vector
 * @param {{session: Awaited<ReturnType<typeof openDemo>>}} context
 */
export async function runVector(vector, context) {
  const text = await readFile(vector.file, 'utf8');
  const { page, problems } = context.session;
  const [result] = await page.evaluate(async (v) => {
    const dmkit = /** @type {any} */ (window).dmkit;
    return (await dmkit.app.runVectors([v])).results;
  }, { name: vector.name, text });
  if (problems.length) return { status: 'fail', detail: `browser reported: ${problems.splice(0).join('; ')}` };
  return result.status === 'pass' ? { status: 'pass', skippedStatements: result.skippedStatements } : { status: 'fail', detail: result.detail };
}

/** @param {{session: Awaited<ReturnType<typeof openDemo>>}} context */
export async function teardown(context) {
  if (context) await context.session.close();
}
