// @ts-check
// The `nbd` runner: every vector through a real NBD connection to `dmkit serve`.
//
// Per vector: a fresh folder holding one image file per disk (named as the disk, so tables and
// the core's messages read exactly as in the vector), and a fresh `dmkit serve --empty
// --test-clock` started in that folder. Tables, suspend/resume, status and the clock go
// through its control socket (the dmsetup side); all I/O goes through libnbd, in one
// long-lived python3 process (_nbd_client.py), a client that shares no code with the server.
// Disks are hashed by reading the image files directly.
//
// Statements NBD cannot express are skipped and counted, never passed: a DISCARD or
// WRITE_ZEROES the target refuses with EOPNOTSUPP (NBD has no such answer for them: the server
// treats trim as advisory and writes zeroes itself where a target cannot, as the kernel's block
// layer does), so those statements are not sent at all.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { driveVector } from '../lib/drive.js';
import { formatTable } from '../lib/parse.js';
import { pattern } from '../lib/pattern.js';
import { serverKernelLog } from '../lib/kernel-log.js';
import { controlRequest } from '../../../host-nbd/control/client.js';

export const timeoutMs = 60_000;

const here = dirname(fileURLToPath(import.meta.url));
const DMKIT = join(here, '..', '..', '..', 'bin', 'dmkit.js');
const CLIENT = join(here, '_nbd_client.py');
/** Debian's python3, which has python3-libnbd. */
const PYTHON_ENV = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH}` };

/** The libnbd helper process: one JSON line per request, answers matched by id. */
class NbdClient {
  constructor() {
    this.proc = spawn('python3', [CLIENT], { env: PYTHON_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    this.nextId = 1;
    /** @type {Map<number, (answer: any) => void>} */
    this.waiting = new Map();
    this.stderr = '';
    this.proc.stderr.setEncoding('utf8').on('data', (d) => { this.stderr += d; });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const answer = JSON.parse(line);
      const resolve = this.waiting.get(answer.id);
      this.waiting.delete(answer.id);
      resolve?.(answer);
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => {
      for (const r of this.waiting.values()) r({ errno: 'EPIPE', error: `the libnbd helper exited (${code}): ${this.stderr}` });
      this.waiting.clear();
      resolve(code);
    }));
  }

  /** @returns {Promise<{errno: string | null, data?: string, error?: string}>} */
  send(req) {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin.write(JSON.stringify({ ...req, id }) + '\n');
    });
  }

  async close() {
    this.proc.stdin.end();
    await this.exited;
  }
}

/** Servers running now: killed if this process is stopped, so none is left behind. */
const live = new Set();
function killLive() { for (const p of live) p.kill('SIGKILL'); }
process.on('exit', killLive);
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { killLive(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });

/** `dmkit serve` for one vector, in its folder. */
async function startServer(dir) {
  const proc = spawn(process.execPath, [DMKIT, 'serve', '--empty', '--test-clock', '--socket', 'nbd.sock', '--control', 'control.sock'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let stdout = '', stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(signal ?? code)));
  await new Promise((resolve, reject) => {
    const check = () => { if (/^control: .*\n/m.test(stdout)) resolve(undefined); };
    proc.stdout.on('data', check);
    exited.then(() => reject(new Error(`dmkit serve exited at start: ${stderr}`)));
  });
  return {
    control: join(dir, 'control.sock'),
    socket: join(dir, 'nbd.sock'),
    get stderr() { return stderr; },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Removes the statements NBD cannot express (see the top of the file); returns how many. */
function withoutInexpressible(steps) {
  let dropped = 0;
  const keep = (s) => {
    const refusedZeroing = (s.op === 'discard' || s.op === 'zeroes') && s.expect?.kind === 'errno' && s.expect.errno === 'EOPNOTSUPP';
    if (refusedZeroing) dropped++;
    return !refusedZeroing;
  };
  const out = steps.filter(keep).map((s) => (s.op === 'group' ? { ...s, steps: s.steps.filter(keep) } : s));
  return { steps: out, dropped };
}

/** The driver's host (docs/vectors.md, "Writing a runner") over one server and the libnbd helper. */
class NbdHost {
  constructor(server, client, dir) {
    this.server = server;
    this.client = client;
    this.dir = dir;
    /** @type {Map<string, number>} requests sent per export */
    this.sent = new Map();
    /** how much of the server's log kernelLog has read */
    this.logSeen = 0;
  }

  async ctl(request) {
    try {
      await controlRequest(this.server.control, request);
      return null;
    } catch (e) {
      return { errno: /** @type {any} */ (e).code ?? null, message: /** @type {Error} */ (e).message };
    }
  }

  text(request) { return controlRequest(this.server.control, request); }

  async create(dev, lines) {
    const out = await this.ctl({ cmd: 'create', name: dev, table: formatTable(lines) });
    if (!out) this.sent.set(dev, 0); // a new export counts from zero
    return out;
  }
  reload(dev, lines) { return this.ctl({ cmd: 'reload', name: dev, table: formatTable(lines) }); }
  /**
   * I/O the driver started before a suspend is in flight at the device in the vector's terms.
   * Over NBD it may still be on its way when the control request overtakes it, so first wait
   * until the server has started every request sent to this export.
   */
  async suspend(dev) {
    const want = this.sent.get(dev) ?? 0;
    const t0 = Date.now();
    for (;;) {
      const line = (await this.text({ cmd: 'exports' })).split('\n').find((l) => l.startsWith(`${dev}\t`));
      const started = line ? Number(/(\d+) request\(s\)/.exec(line)?.[1]) : want;
      if (started >= want) break;
      if (Date.now() - t0 > 10_000) throw new Error(`the server started ${started} of ${want} requests to ${dev}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return this.ctl({ cmd: 'suspend', name: dev });
  }
  resume(dev) { return this.ctl({ cmd: 'resume', name: dev }); }
  message(dev, sector, words) { return this.ctl({ cmd: 'message', name: dev, sector, message: words.join(' ') }); }

  /** Our own connection would keep the device open: disconnect first, as a user would. */
  async remove(dev) {
    const closed = await this.client.send({ op: 'close', dev });
    if (closed.errno) throw new Error(`closing the connection to ${dev}: ${closed.error}`);
    return this.ctl({ cmd: 'remove', name: dev });
  }

  /** @param {import('../lib/drive.js').IoRequest} req */
  async io(req) {
    this.sent.set(req.dev, (this.sent.get(req.dev) ?? 0) + 1);
    const answer = await this.client.send({
      op: 'io', dev: req.dev, kind: req.op, offset: req.sector * 512, count: req.count * 512, fua: req.fua,
      data: req.data ? Buffer.from(req.data).toString('base64') : undefined,
    });
    if (answer.errno === 'EPROTO' || answer.errno === 'EPIPE') throw new Error(`libnbd helper: ${answer.error}`);
    return { errno: answer.errno, data: answer.data !== undefined && answer.data !== null ? new Uint8Array(Buffer.from(answer.data, 'base64')) : undefined };
  }

  /** The kernel-log lines the server logged since the last call (lib/kernel-log.js). */
  async kernelLog() {
    const { texts, seen } = await serverKernelLog(() => this.text({ cmd: 'exports' }), () => this.server.stderr, this.logSeen);
    this.logSeen = seen;
    return texts;
  }

  status(dev) { return this.text({ cmd: 'status', name: dev }); }
  table(dev) { return this.text({ cmd: 'table', name: dev }); }
  disk(name) { return new Uint8Array(readFileSync(join(this.dir, name))); }
  async setTime(ms) {
    const out = await this.ctl({ cmd: 'set-time', ms });
    if (out) throw new Error(`set-time: ${out.message}`);
  }
}

export async function setup() {
  return { client: new NbdClient() };
}

/**
 * @param {import('../lib/parse.js').Vector} vector
 * @param {{client: NbdClient}} context
 */
export async function runVector(vector, context) {
  const dir = mkdtempSync(join(tmpdir(), `dmkit-vec-nbd-${vector.name}-`));
  for (const d of vector.disks) {
    const path = join(dir, d.name);
    if (d.seed === null) {
      const fd = openSync(path, 'w');
      ftruncateSync(fd, d.sectors * 512);
      closeSync(fd);
    } else {
      writeFileSync(path, pattern(d.seed, d.sectors * 512));
    }
  }
  const server = await startServer(dir);
  let result;
  try {
    const switched = await context.client.send({ op: 'socket', path: server.socket });
    if (switched.errno) throw new Error(`libnbd helper: ${switched.error}`);
    const { steps, dropped } = withoutInexpressible(vector.steps);
    const { skipped } = await driveVector({ ...vector, steps }, new NbdHost(server, context.client, dir));
    result = { status: 'pass', skippedStatements: skipped + dropped };
  } catch (e) {
    const log = server.stderr.trim().split("\n").slice(-3).join(" | ");
    result = { status: 'fail', detail: `${e instanceof Error ? e.message : e}${log ? ` [server: ${log}]` : ''}` };
  }
  const disconnected = await context.client.send({ op: 'socket', path: '' }); // before stopping the server
  if (disconnected.errno && result.status === 'pass') result = { status: 'fail', detail: `disconnecting: ${disconnected.error}` };
  const exit = await server.stop();
  if (result.status === 'pass' && exit !== 0) result = { status: 'fail', detail: `dmkit serve exited with ${exit}: ${server.stderr}` };
  rmSync(dir, { recursive: true, force: true });
  return result;
}

export async function teardown(context) {
  await context?.client.close();
}
