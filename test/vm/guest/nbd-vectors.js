#!/usr/bin/env node
// @ts-check
// Every golden vector through `dmkit serve` and the kernel's own NBD client: devices are made
// over dmkit's control socket, each one is attached with nbd-client as /dev/nbdN, and the
// vector's I/O goes through that block device with O_DIRECT. Runs as root in the qemu guest
// (test/vm/suites/nbd.sh); prints the same lines and tally as test/vectors/run.js.
//   node test/vm/guest/nbd-vectors.js [name-filter]
//
// One server serves every vector. It runs in a scratch folder where each vector's disks are
// files named exactly like the disks, so tables, status lines and messages carry the vector's
// own names and are compared as the core runner compares them. The kernel cannot tell errors
// apart (every failed I/O is EIO), so errnos are not compared.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm, readFile, truncate } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVectorFiles } from '../../vectors/lib/load.js';
import { driveVector } from '../../vectors/lib/drive.js';
import { formatTable } from '../../vectors/lib/parse.js';
import { pattern } from '../../vectors/lib/pattern.js';
import { controlRequest } from '../../../host-nbd/control/client.js';
import { DirectDevice } from './direct-io.js';
import { directVectorIo } from './vector-io.js';
import { InflightIo } from '../../vectors/lib/inflight.js';
import { serverKernelLog } from '../../vectors/lib/kernel-log.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TIMEOUT_MS = Number(process.env.VECTOR_TIMEOUT_MS) || 120_000;
const IDLE_DEVICE = 'vm-idle'; // dmkit serve needs one device to start with

/** @param {string} cmd @param {string[]} args @returns {Promise<string>} */
function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

// DMKIT_VM_ATTACH=dmkit: the server attaches and detaches each device itself (control verbs
// attach/detach, host-nbd/attach) instead of nbd-client (test/vm/suites/attach.sh).
const ATTACH_WITH_DMKIT = process.env.DMKIT_VM_ATTACH === 'dmkit';

/** The kernel's NBD devices, handed out one per attached export. */
class NbdPool {
  constructor() {
    /** @type {Set<string>} */
    this.used = new Set();
  }

  async attach(/** @type {Server} */ server, /** @type {string} */ name) {
    for (let i = 0; existsSync(`/dev/nbd${i}`); i++) {
      const path = `/dev/nbd${i}`;
      if (this.used.has(path)) continue;
      this.used.add(path);
      try {
        if (ATTACH_WITH_DMKIT) await server.request({ cmd: 'attach', name, device: path });
        else await run('nbd-client', ['-u', server.socket, path, '-N', name, '-b', '512']);
      } catch (e) {
        this.used.delete(path);
        throw e;
      }
      return path;
    }
    throw new Error('no free /dev/nbdN left');
  }

  async detach(/** @type {Server} */ server, /** @type {string} */ path) {
    // force: a vector may leave a device whose FLUSH fails (nbd-client -d does not flush at all).
    if (ATTACH_WITH_DMKIT) await server.request({ cmd: 'detach', device: path, force: true });
    else await run('nbd-client', ['-d', path]);
    this.used.delete(path);
  }
}

/** The running server: its folder, sockets and process. */
class Server {
  static async start() {
    const dir = await mkdtemp(join(tmpdir(), 'dmkit-nbd-vectors-'));
    const s = new Server(dir);
    const args = [join(REPO, 'bin', 'dmkit.js'), 'serve', '--quiet', '--socket', s.socket, '--control', s.control,
      '--device', IDLE_DEVICE, '0 8 zero'];
    // execArgv: the guest's node flags (--no-liftoff, test/vm/guest/suite.sh) reach the server too.
    s.child = spawn(process.execPath, [...process.execArgv, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    s.child.stderr?.on('data', (b) => { s.log += b; });
    s.exited = new Promise((resolve) => s.child?.once('exit', (code, signal) => resolve(code ?? signal)));
    for (let i = 0; i < 600; i++) {
      if (existsSync(s.socket) && existsSync(s.control)) return s;
      if (s.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    s.child.kill();
    throw new Error(`dmkit serve did not start: ${s.log.trim()}`);
  }

  constructor(/** @type {string} */ dir) {
    this.dir = dir;
    this.socket = join(dir, 'nbd.sock');
    this.control = join(dir, 'control.sock');
    this.log = '';
    /** @type {import('node:child_process').ChildProcess|null} */
    this.child = null;
    /** @type {Promise<unknown>} */
    this.exited = Promise.resolve(0);
  }

  request(/** @type {object} */ req) { return controlRequest(this.control, req); }

  /** SIGTERM; a clean stop (every file flushed and closed) exits 0. */
  async stop() {
    this.child?.kill('SIGTERM');
    const code = await this.exited;
    await rm(this.dir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`dmkit serve stopped with ${code}: ${this.log.trim()}`);
  }
}

/** The driver's host: one vector's devices on the shared server. */
class NbdHost {
  /** @param {import('../../vectors/lib/parse.js').Vector} vector @param {Server} server @param {NbdPool} pool */
  constructor(vector, server, pool) {
    this.vector = vector;
    this.server = server;
    this.pool = pool;
    // refusedDiscards: nbd.ko sends every discard (the export takes TRIM), and a discard the
    // server refuses with EOPNOTSUPP comes back to BLKDISCARD as success (seen on Linux 6.1).
    this.can = { errnos: false, messages: true, outOfRange: false, zeroLength: false, refusedDiscards: false };
    /** @type {Map<string, {path: string, sectors: number}>} device -> its /dev/nbdN */
    this.attached = new Map();
    /** @type {Map<string, Promise<DirectDevice>>} one open per device, shared by concurrent I/O */
    this.open = new Map();
    /** @type {string[]} */
    this.created = [];
    /** @type {number|null} */
    this.t0 = null;
    /** @type {Set<string>} devices suspended now */
    this.suspended = new Set();
    /** how much of the shared server's log came before this vector, or kernelLog has read */
    this.logSeen = server.log.length;
    /** I/O started and not finished, per device (a suspend waits for it) */
    this.inflight = new InflightIo();
  }

  async start() {
    for (const d of this.vector.disks) {
      const file = join(this.server.dir, d.name);
      await writeFile(file, d.seed === null ? new Uint8Array(0) : pattern(d.seed, d.sectors * 512));
      await truncate(file, d.sectors * 512);
    }
  }

  /** A control request as an outcome (the server's message is the core's). @param {object} req */
  async control(req) {
    try {
      await this.server.request(req);
      return null;
    } catch (e) {
      return { errno: null, message: e instanceof Error ? e.message : String(e) };
    }
  }

  async sizeOf(/** @type {string} */ dev) {
    const out = await this.server.request({ cmd: 'ls' });
    const m = new RegExp(`^${dev}\\t\\((\\d+) sectors\\)$`, 'm').exec(out);
    return m ? Number(m[1]) : 0;
  }

  /** Attaches; with nbd-client, re-attaches when its size changed (nbd.ko learns it only then; dmkit attach devices are resized by the server at resume). */
  async attach(/** @type {string} */ dev) {
    const sectors = await this.sizeOf(dev);
    const now = this.attached.get(dev);
    if (now && (ATTACH_WITH_DMKIT || now.sectors === sectors)) return;
    if (now) await this.detach(dev);
    if (sectors === 0) return;
    this.attached.set(dev, { path: await this.pool.attach(this.server, dev), sectors });
  }

  async detach(/** @type {string} */ dev) {
    const d = this.open.get(dev);
    this.open.delete(dev);
    if (d) await d.then((dev) => dev.close(), () => {}); // a failed open has nothing to close
    const a = this.attached.get(dev);
    this.attached.delete(dev);
    if (a) await this.pool.detach(this.server, a.path);
  }

  async create(/** @type {string} */ dev, /** @type {any} */ lines) {
    this.t0 ??= Date.now();
    const out = await this.control({ cmd: 'create', name: dev, table: formatTable(lines) });
    if (out) return out;
    this.created.push(dev);
    await this.attach(dev);
    return null;
  }

  reload(/** @type {string} */ dev, /** @type {any} */ lines) {
    return this.control({ cmd: 'reload', name: dev, table: formatTable(lines) });
  }

  /** I/O this host started on `dev` before a suspend is, for the vector, in flight at the suspend;
   * over NBD it may not have reached the server yet, so let it arrive first (suspend would wait
   * for it to drain anyway). */
  async suspend(/** @type {string} */ dev) {
    if (!this.suspended.has(dev)) await this.settled(dev);
    const out = await this.control({ cmd: 'suspend', name: dev });
    if (!out) this.suspended.add(dev);
    return out;
  }

  async resume(/** @type {string} */ dev) {
    const out = await this.control({ cmd: 'resume', name: dev });
    if (!out) this.suspended.delete(dev);
    if (!out) await this.attach(dev);
    return out;
  }

  async remove(/** @type {string} */ dev) {
    await this.detach(dev); // an attached export is an open device: the server would refuse
    const out = await this.control({ cmd: 'remove', name: dev });
    if (out) await this.attach(dev);
    else this.created = this.created.filter((d) => d !== dev);
    return out;
  }

  message(/** @type {string} */ dev, /** @type {number} */ sector, /** @type {string[]} */ words) {
    return this.control({ cmd: 'message', name: dev, sector, message: words.join(' ') });
  }

  /** @param {import('../../vectors/lib/drive.js').IoRequest} req */
  io(req) {
    return this.inflight.track(req.dev, this.runIo(req));
  }

  /** Waits for the I/O started on `dev` so far. */
  settled(/** @type {string} */ dev) {
    return this.inflight.settled(dev);
  }

  /** @param {any} req */
  async runIo(req) {
    let opening = this.open.get(req.dev);
    if (!opening) {
      const a = this.attached.get(req.dev);
      if (!a) return { errno: 'ENXIO' };
      // Stored before it resolves: I/O submitted together (begin ... end) must not each open
      // the device, leaving all but one descriptor open and the device held after detach.
      opening = DirectDevice.open(a.path);
      this.open.set(req.dev, opening);
    }
    return directVectorIo(opening, req);
  }

  status(/** @type {string} */ dev) { return this.server.request({ cmd: 'status', name: dev }); }
  table(/** @type {string} */ dev) { return this.server.request({ cmd: 'table', name: dev }); }

  /** The kernel-log lines the server logged since the last call (vectors/lib/kernel-log.js). */
  async kernelLog() {
    const { texts, seen } = await serverKernelLog(() => this.server.request({ cmd: 'exports' }), () => this.server.log, this.logSeen);
    this.logSeen = seen;
    return texts;
  }

  async disk(/** @type {string} */ name) {
    return new Uint8Array(await readFile(join(this.server.dir, name)));
  }

  async setTime(/** @type {number} */ ms) {
    const wait = (this.t0 ?? Date.now()) + ms - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  /** Detaches and removes everything; returns what could not be undone ('' when all went). */
  async cleanUp() {
    const problems = [];
    for (const dev of [...this.attached.keys()]) await this.detach(dev).catch((e) => problems.push(e.message));
    for (const dev of this.created.slice().reverse()) {
      await this.server.request({ cmd: 'resume', name: dev }).catch(() => {});
      await this.server.request({ cmd: 'remove', name: dev }).catch((e) => problems.push(`remove ${dev}: ${e.message}`));
    }
    for (const d of this.vector.disks) await rm(join(this.server.dir, d.name), { force: true });
    return problems.join('; ');
  }
}

/** Whether nbd.ko sends WRITE_ZEROES at all (its queue says so once an export is attached). */
async function probeWriteZeroes(/** @type {Server} */ server, /** @type {NbdPool} */ pool) {
  const path = await pool.attach(server, IDLE_DEVICE);
  try {
    return Number(readFileSync(`/sys/block/${path.slice(5)}/queue/write_zeroes_max_bytes`, 'utf8')) > 0;
  } finally {
    await pool.detach(server, path);
  }
}

/** @param {any[]} steps */
function flatSteps(steps) {
  return steps.flatMap((s) => (s.op === 'group' ? s.steps : [s]));
}

async function main() {
  const filter = process.argv[2];
  if (process.getuid?.() !== 0 || !existsSync('/dev/nbd0')) {
    console.error('needs root and the nbd module (it runs in the VM: npm run test:vm -- nbd)');
    process.exit(2);
  }
  const entries = await loadVectorFiles({ filter });
  if (entries.length === 0) {
    console.error(`no vector matches '${filter}'`);
    process.exit(1);
  }
  let passed = 0, failed = 0;
  for (const e of entries.filter((x) => x.error)) {
    failed++;
    console.log(`FAIL  ${e.name}: ${e.error?.message}`);
  }
  const server = await Server.start();
  const pool = new NbdPool();
  const writeZeroes = await probeWriteZeroes(server, pool);
  let skipped = 0;
  for (const { vector } of entries) {
    if (!vector) continue;
    if (!writeZeroes && flatSteps(vector.steps).some((s) => s.op === 'zeroes')) {
      skipped++;
      console.log(`skip  ${vector.name}: this kernel's nbd driver has no WRITE_ZEROES (Linux 6.1 has none), so 'zeroes' cannot be sent`);
      continue;
    }
    const host = new NbdHost(vector, server, pool);
    let detail = '', note = '';
    let timer;
    try {
      await host.start();
      const { skipped } = await Promise.race([
        driveVector(vector, host),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS); }),
      ]);
      if (skipped) note = ` (${skipped} statement(s) skipped)`;
    } catch (err) {
      detail = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
    const leftovers = await host.cleanUp();
    if (leftovers) detail = [detail, `cleaning up: ${leftovers}`].filter(Boolean).join('; ');
    if (detail) { failed++; console.log(`FAIL  ${vector.name}: ${detail}`); }
    else { passed++; console.log(`pass  ${vector.name}${note}`); }
  }
  if (failed) {
    // The server's own account of what went wrong (its errors and internal failures' stacks).
    const lines = server.log.split('\n').filter((l) => /error|failed|^\s+at /i.test(l));
    console.log(`server log, errors (${lines.length} lines; the first 60):\n${lines.slice(0, 60).join('\n')}`);
  }
  try {
    await server.stop();
  } catch (e) {
    failed++;
    console.log(`FAIL  (server): ${e instanceof Error ? e.message : e}`);
  }
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed ? 1 : 0);
}

await main();
