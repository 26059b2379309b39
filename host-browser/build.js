// @ts-check
// Bundles the demo with esbuild, in memory: the page script and the worker script (each one
// ES module with everything it imports), plus the static files and the core's .wasm.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
export const WASM_PATH = join(root, 'build', 'dmkit-core.wasm');

const TYPES = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.map': 'application/json' };

/**
 * @returns {Promise<Map<string, {type: string, body: Buffer}>>} URL path -> file
 */
export async function buildDemo() {
  if (!existsSync(WASM_PATH)) throw new Error(`${WASM_PATH} is missing: run 'npm run build' first`);
  const result = await build({
    entryPoints: { app: join(here, 'page', 'main.js'), worker: join(here, 'worker', 'worker.js') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    // dmcore.js reads the .wasm from disk only under Node, behind a dynamic import never taken here.
    external: ['node:*'],
    sourcemap: 'linked',
    write: false,
    outdir: '/',
    logLevel: 'silent',
  });
  /** @type {Map<string, {type: string, body: Buffer}>} */
  const files = new Map();
  for (const out of result.outputFiles) {
    const path = out.path.slice(out.path.lastIndexOf('/'));
    files.set(path, { type: TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream', body: Buffer.from(out.contents) });
  }
  for (const name of ['index.html', 'style.css']) {
    files.set(`/${name}`, { type: TYPES[name.slice(name.lastIndexOf('.'))], body: await readFile(join(here, 'page', name)) });
  }
  files.set('/', /** @type {any} */ (files.get('/index.html')));
  files.set('/dmkit-core.wasm', { type: TYPES['.wasm'], body: await readFile(WASM_PATH) });
  return files;
}
