// @ts-check
// dmkit demo: serves the in-browser dmkit on loopback. Everything is built once at start (see
// build.js); the golden vectors are read from test/vectors/cases on each request, so the
// page's "run golden vectors" button always runs the current set.
import { createServer } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDemo } from './build.js';

const CASES = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors', 'cases');

export const DEMO_HELP = `Usage: dmkit demo [--port N] [--host ADDR]

Serve the in-browser dmkit (device-mapper in a Web Worker, devices in the browser's
Origin Private File System) and print its URL. Open it in a browser on this machine.

  --port N      TCP port (default 8080; 0 picks a free one)
  --host ADDR   loopback address to listen on (default 127.0.0.1; pages need a secure
                context for OPFS, which http://127.0.0.1 and http://localhost are)
  -h, --help    this help
`;

/** @returns {Promise<Array<{name: string, text: string}>>} */
async function readVectors() {
  let names = [];
  try { names = (await readdir(CASES)).filter((f) => f.endsWith('.vec')).sort(); } catch { return []; }
  return Promise.all(names.map(async (f) => ({ name: f.slice(0, -4), text: await readFile(join(CASES, f), 'utf8') })));
}

/**
 * Starts the server. @returns {Promise<{url: string, close: () => Promise<void>}>}
 * @param {{port?: number, host?: string}} [opts]
 */
export async function startDemo({ port = 8080, host = '127.0.0.1' } = {}) {
  if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host)) throw new Error(`--host ${host} is not a loopback address`);
  const files = await buildDemo();
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return; }
      if (path === '/vectors.json') {
        const body = JSON.stringify(await readVectors());
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
        return;
      }
      const file = files.get(path);
      if (!file) { res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`); return; }
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : file.body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e instanceof Error ? e.message : e}\n`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(undefined));
  });
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}/`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** The `dmkit demo` command. @param {string[]} argv */
export async function demoCommand(argv) {
  const { parseArgs, UsageError } = await import('../host-nbd/cli/args.js');
  const { options, positional } = parseArgs(argv, { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (options.help) { process.stdout.write(DEMO_HELP); return; }
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'\n\n${DEMO_HELP}`);
  const port = options.port === undefined ? 8080 : Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${options.port} is not a port number (0-65535)`);
  const demo = await startDemo({ port, host: options.host });
  process.stdout.write(`dmkit demo: open ${demo.url} in a browser (Ctrl-C stops it)\n`);
  await new Promise((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(undefined); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await demo.close();
}
