// @ts-check
// What the `linux` and `kernel` runners share: a vector run through a real kernel's
// device-mapper with dmsetup, disks as loop devices over files, I/O with O_DIRECT on
// /dev/mapper/NAME. The two runners differ only in the target names they load (Linux's own, or
// the kmod-port's `dmkit-*`) and in whether the kernel log's error messages are compared.
// They run as root inside the qemu guest (npm run test:vm); anywhere else they skip, unless
// DMKIT_REQUIRE_KERNEL=1 (set by the VM suites) turns "cannot run" into a failure.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { driveVector } from '../lib/drive.js';
import { formatTable } from '../lib/parse.js';
import { pattern } from '../lib/pattern.js';
import { DirectDevice } from '../../vm/guest/direct-io.js';
import { directVectorIo } from '../../vm/guest/vector-io.js';
import * as dm from '../../vm/guest/dmsetup.js';
import { LoopPool, diskBytes } from '../../vm/guest/loop-disks.js';
import { InflightIo } from '../lib/inflight.js';

/**
 * @typedef {object} KernelRunnerOptions
 * @property {string} prefix  mapped device names are PREFIX + the vector's device name
 * @property {string[]} targets  the dmkit targets this kernel has (as vectors name them)
 * @property {string[]} lacks  dmkit targets this kernel does not have: vectors loading them are
 *   skipped (a target dmkit does not know either, like mirror, is passed through: both refuse it)
 * @property {(target: string) => string} targetName  the name to load for a vector's target
 * @property {boolean} compareMessages  compare a refused table's message with the kernel log
 * @property {string} kernelLogPrefix  how the targets' DMERR lines begin in the kernel log (the
 *   `kernel-log` statement compares what follows)
 * @property {() => Promise<string|null>} [unavailable]  why the targets cannot run here (null: they can)
 * @property {Record<string, string>} [cannotCheck]  vectors this kernel cannot judge, by name, and why
 * @property {boolean} [rangeCheckedAtResume]  the kernel checks that a table fits its devices when
 *   it is resumed (Linux: device_area_is_invalid), not when it is loaded (dmkit): a reload the
 *   vector expects refused for a too-small device is checked by the resume that must then fail
 * @property {RegExp[]} [acceptedHere]  refusals (by the vector's message) of tables this kernel
 *   accepts: a documented divergence, so the statement is counted as skipped
 */

/** Builds a runner module's exports (docs/vectors.md, "Writing a runner"). @param {KernelRunnerOptions} opts */
export function kernelRunner(opts) {
  return {
    timeoutMs: 120_000,

    async setup() {
      let why = null;
      if (process.getuid?.() !== 0) why = 'needs root (run it in the VM: npm run test:vm)';
      else if (!existsSync('/dev/mapper/control')) why = 'this kernel has no device-mapper (run it in the VM: npm run test:vm)';
      else why = opts.unavailable ? await opts.unavailable() : null;
      if (why && process.env.DMKIT_REQUIRE_KERNEL === '1') throw new Error(`cannot run: ${why}`);
      // One pool of loop devices for the whole run (losetup is slow to start in the guest).
      const pool = why ? null : new LoopPool(await mkdtemp(join(tmpdir(), `dmkit-${opts.prefix}disks-`)));
      return { why, pool };
    },

    /** @param {{pool: LoopPool|null}} context */
    async teardown(context) {
      if (!context?.pool) return;
      await context.pool.close();
      await rm(context.pool.dir, { recursive: true, force: true });
    },

    /** @param {import('../lib/parse.js').Vector} vector @param {{why: string|null, pool: LoopPool}} context */
    async runVector(vector, context) {
      if (context.why) return { status: 'skip', detail: context.why };
      const missing = targetsOf(vector).filter((t) => opts.lacks.includes(t));
      if (missing.length) return { status: 'skip', detail: `uses ${missing.join(', ')}, which this kernel does not have` };
      const cannot = opts.cannotCheck?.[vector.name] ?? RACY_IN_A_KERNEL[vector.name];
      if (cannot) return { status: 'skip', detail: cannot };
      // Devices an earlier vector (or run) could not remove would make every create fail.
      const stale = await removeStale(opts.prefix);
      if (stale) return { status: 'fail', detail: `devices left from before cannot be removed: ${stale}` };
      const host = new KernelHost(vector, opts, context.pool);
      let result;
      let timer;
      try {
        await host.start();
        // Our own deadline, inside the dispatcher's: I/O stuck on a suspended device must be
        // released by cleanUp (it resumes), or the next vector would find the device busy.
        const { skipped } = await Promise.race([
          driveVector(vector, host),
          new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no progress for ${OWN_DEADLINE_MS} ms`)), OWN_DEADLINE_MS); }),
        ]);
        result = { status: 'pass', skippedStatements: skipped + host.acceptedHere };
      } catch (err) {
        result = { status: 'fail', detail: err instanceof Error ? err.message : String(err) };
      } finally {
        clearTimeout(timer);
      }
      const leftovers = await host.cleanUp();
      if (leftovers) return { status: 'fail', detail: [result.detail, `cleaning up: ${leftovers}`].filter(Boolean).join('; ') };
      return result;
    },
  };
}

const OWN_DEADLINE_MS = 100_000;

/**
 * Vectors whose outcome a real kernel leaves to timing, for Linux's own targets and the module
 * alike (docs/vectors.md, divergences): the core, the model and the C harness (with its stall
 * orders) check them.
 * @type {Record<string, string>}
 */
export const RACY_IN_A_KERNEL = {
  'snap-area-fills-mid-origin-write': 'timing-dependent in a kernel: a vCPU descheduled between two pieces of one request lets the other commit the first piece\'s copy first (seen through Linux\'s own snapshot, 1 run in 6)',
};

/** Removes devices named PREFIX*; returns the names that would not go ('' when none). A few
 * passes, since a device under another one goes only after the one above it. */
async function removeStale(/** @type {string} */ prefix) {
  for (let pass = 0; pass < 3; pass++) {
    const left = dm.listDevices(prefix);
    if (left.length === 0) return '';
    for (const name of left) {
      await dm.resume(name).catch(() => {});
      await dm.remove(name).catch(() => dm.dmsetup(['remove', '--force', name])).catch(() => {});
    }
  }
  return dm.listDevices(prefix).join(', ');
}

/** Target types a vector loads. @param {import('../lib/parse.js').Vector} vector */
function targetsOf(vector) {
  const found = new Set();
  const visit = (/** @type {any[]} */ steps) => {
    for (const s of steps) {
      if (s.op === 'group') visit(s.steps);
      if (s.table) for (const tl of s.table) if (tl.words[2]) found.add(tl.words[2]);
    }
  };
  visit(vector.steps);
  return [...found];
}

/** The driver's host over the running kernel (one per vector). */
class KernelHost {
  /** @param {import('../lib/parse.js').Vector} vector @param {KernelRunnerOptions} opts @param {LoopPool} pool */
  constructor(vector, opts, pool) {
    this.vector = vector;
    this.opts = opts;
    this.pool = pool;
    this.can = { errnos: false, messages: opts.compareMessages, outOfRange: false, zeroLength: false };
    /** @type {Map<string, import('../../vm/guest/loop-disks.js').LoopDisk>} */
    this.disks = new Map();
    /** @type {string[]} devices created, in order (removed in reverse) */
    this.created = [];
    /** @type {Set<string>} devices suspended now */
    this.suspended = new Set();
    /** @type {Map<string, Promise<DirectDevice>>} open /dev/mapper nodes (a promise, so I/O
     * started together opens a device once) */
    this.open = new Map();
    /** @type {Map<string, string>} "major:minor" -> the vector's disk or device name */
    this.names = new Map();
    /** statements refusing a table this kernel accepts (opts.acceptedHere) */
    this.acceptedHere = 0;
    /** @type {number|null} when the first create ran (for `time`) */
    this.t0 = null;
    /** I/O started and not finished, per device (a suspend waits for it) */
    this.inflight = new InflightIo();
    /** the kernel log's last record before what the `kernel-log` statement looks at */
    this.logMark = -1;
    /** control statements in file order, to find the message each one expects */
    this.controls = flatten(vector.steps).filter((s) => CONTROL_OPS.includes(s.op));
  }

  async start() {
    this.logMark = dm.kernelLogMark();
    for (const d of this.vector.disks) {
      const bytes = d.seed === null ? null : pattern(d.seed, d.sectors * 512);
      const disk = await this.pool.take(d.name, d.sectors, bytes);
      this.disks.set(d.name, disk);
      this.names.set(dm.devNumber(disk.path), d.name);
    }
  }

  mapped(/** @type {string} */ dev) { return this.opts.prefix + dev; }
  path(/** @type {string} */ dev) { return `/dev/mapper/${this.mapped(dev)}`; }

  /** @param {import('../lib/parse.js').TableLine[]} lines */
  tableText(lines) {
    return formatTable(lines, {
      disk: (n) => /** @type {any} */ (this.disks.get(n)).path,
      device: (n) => this.path(n),
      target: this.opts.targetName,
    });
  }

  /** @param {string} dev @param {import('../lib/parse.js').TableLine[]} lines */
  async create(dev, lines) {
    this.t0 ??= Date.now();
    return this.load('create', dev, lines, async () => {
      await dm.create(this.mapped(dev), this.tableText(lines));
      this.created.push(dev);
      this.names.set(dm.devNumber(this.path(dev)), dev);
    }, () => dm.remove(this.mapped(dev)).then(() => { this.created = this.created.filter((d) => d !== dev); }));
  }

  /** @param {string} dev @param {import('../lib/parse.js').TableLine[]} lines */
  reload(dev, lines) {
    return this.load('reload', dev, lines, async (/** @type {string|null} */ expected) => {
      await dm.reload(this.mapped(dev), this.tableText(lines));
      // Linux's range check runs at resume: the resume fails, the old table stays live and the
      // device suspended (do_resume), as the vector's next `resume` expects after a refusal.
      const resumeFollows = this.controls.some((s) => s.op === 'resume' && s.dev === dev);
      if (this.opts.rangeCheckedAtResume && / is too small: /.test(expected ?? '') && resumeFollows) {
        const mark = dm.kernelLogMark();
        const resumed = await dm.resume(this.mapped(dev)).then(() => true, () => false);
        if (resumed) throw new Error('the kernel resumed a table that maps past the end of a device');
        const log = dm.kernelLog(mark).map((r) => this.named(r.text)).filter((t) => t.startsWith('device-mapper:'));
        this.suspended.add(dev);
        throw new Error(`refused at resume: ${log.join(' / ') || 'EINVAL'}`);
      }
    }, () => dm.dmsetup(['clear', this.mapped(dev)]));
  }

  /**
   * A table load; on failure, the outcome carries the kernel's message. dmsetup only says
   * "Invalid argument": the target's own message is in the kernel log.
   * @param {'create'|'reload'} op @param {string} dev @param {import('../lib/parse.js').TableLine[]} lines
   * @param {(expected: string|null) => Promise<unknown>} run  given the refusal the vector expects
   * @param {() => Promise<unknown>} undo  takes back a table this kernel accepted where dmkit refuses it
   */
  async load(op, dev, lines, run, undo) {
    const step = this.nextControl(op, dev);
    const mark = dm.kernelLogMark();
    const expected = expectedMessage(step);
    try {
      await run(expected);
      if (expected !== null && this.opts.acceptedHere?.some((re) => re.test(expected))) {
        await undo();
        this.acceptedHere++;
        return { errno: null, message: expected };
      }
      return null;
    } catch (err) {
      const log = dm.kernelLog(mark).map((r) => this.named(r.text)).filter((t) => t.startsWith('device-mapper:'));
      return { errno: null, message: this.refusal(lines, log, expectedMessage(step), err) };
    }
  }

  /**
   * The message to report for a refused table. With compareMessages, the target's message from
   * the kernel log ("device-mapper: table: 254:0: dmkit-striped: MSG (-EINVAL)") must be how the
   * vector's message ends ("DEV: line N: striped: MSG"); when the kernel refused the table itself
   * (a gap, a bad length) no target message exists and there is nothing to compare.
   * @param {import('../lib/parse.js').TableLine[]} lines @param {string[]} log
   * @param {string|null} expected @param {unknown} err
   */
  refusal(lines, log, expected, err) {
    const raw = `${log.join(' / ') || (err instanceof Error ? err.message : String(err))}`;
    if (!this.opts.compareMessages) return raw;
    const targets = new Set(lines.map((tl) => this.opts.targetName(tl.words[2] ?? '')));
    for (const text of log) {
      const m = /^device-mapper: table: \d+:\d+: (\S+): (.*?)(?: \(-E[A-Z]+\))?$/.exec(text);
      if (!m || !targets.has(m[1]) || DM_CORE_REFUSALS.some((r) => m[2].startsWith(r))) continue;
      const said = `${lines.find((tl) => this.opts.targetName(tl.words[2]) === m[1])?.words[2]}: ${m[2]}`;
      if (expected === null || !expected.endsWith(said)) return `kernel log: ${text}`;
      return expected;
    }
    return expected ?? raw;
  }

  /** Kernel text with our paths (/dev/loopN, /dev/mapper/PREFIX-X) back to the vector's names. */
  named(/** @type {string} */ text) {
    let out = text;
    for (const [name, disk] of this.disks) out = out.replace(new RegExp(`${disk.path}(?![0-9])`, 'g'), name);
    return out.replace(new RegExp(`/dev/mapper/${this.opts.prefix}([a-z][a-z0-9-]*)`, 'g'), '$1');
  }

  /** The next control statement `op DEV` (the driver runs control statements in file order). */
  nextControl(/** @type {string} */ op, /** @type {string} */ dev) {
    const i = this.controls.findIndex((s) => s.op === op && s.dev === dev);
    return i < 0 ? null : this.controls.splice(i, 1)[0];
  }

  /**
   * suspend, resume, remove, message as an outcome. Their refusals have no text to compare:
   * dmsetup says only "Invalid argument" and the kernel's dm core, not the target, logs why; so a
   * refusal the vector expects is reported with the vector's own message (only failure is checked).
   * @param {string} op @param {string} dev @param {() => Promise<unknown>} run
   */
  async verb(op, dev, run) {
    const step = this.nextControl(op, dev);
    try {
      await run();
      return null;
    } catch (err) {
      return { errno: null, message: expectedMessage(step) ?? (err instanceof Error ? err.message : String(err)) };
    }
  }

  /** I/O this host started on `dev` before a suspend is, for the vector, in flight at the suspend;
   * it may still sit in Node's thread pool, so let it reach the kernel first (dm's suspend would
   * wait for it to drain anyway). */
  async suspend(/** @type {string} */ dev) {
    if (!this.suspended.has(dev)) await this.settled(dev);
    const out = await this.verb('suspend', dev, () => dm.suspend(this.mapped(dev)));
    if (!out) this.suspended.add(dev);
    return out;
  }

  async resume(/** @type {string} */ dev) {
    const out = await this.verb('resume', dev, () => dm.resume(this.mapped(dev)));
    if (!out) this.suspended.delete(dev);
    return out;
  }
  message(/** @type {string} */ dev, /** @type {number} */ sector, /** @type {string[]} */ words) {
    return this.verb('message', dev, () => dm.message(this.mapped(dev), sector, words));
  }

  async remove(/** @type {string} */ dev) {
    await this.closeDevice(dev); // our own open descriptor would make the kernel say EBUSY
    const out = await this.verb('remove', dev, () => dm.remove(this.mapped(dev)));
    if (!out) this.created = this.created.filter((d) => d !== dev);
    return out;
  }

  device(/** @type {string} */ dev) {
    let d = this.open.get(dev);
    if (!d) {
      d = DirectDevice.open(this.path(dev));
      this.open.set(dev, d);
      d.catch(() => this.open.delete(dev));
    }
    return d;
  }

  async closeDevice(/** @type {string} */ dev) {
    const d = this.open.get(dev);
    this.open.delete(dev);
    if (d) await (await d).close();
  }

  /** @param {import('../lib/drive.js').IoRequest} req */
  io(req) {
    return this.inflight.track(req.dev, this.runIo(req));
  }

  /** Waits for the I/O started on `dev` so far. */
  settled(/** @type {string} */ dev) {
    return this.inflight.settled(dev);
  }

  /** @param {any} req */
  runIo(req) {
    return directVectorIo(this.device(req.dev), req);
  }

  async status(/** @type {string} */ dev) { return this.readable(await dm.statusLines(this.mapped(dev))); }
  async table(/** @type {string} */ dev) { return this.readable(await dm.tableLines(this.mapped(dev))); }

  /** The kernel prints devices as major:minor and our targets under their loaded names: map
   * both back to the vector's names. @param {string[]} lines */
  readable(lines) {
    const plain = new Map(this.opts.targets.map((t) => [this.opts.targetName(t), t]));
    return lines.map((line) => line.split(' ').map((w, k) => {
      if (k === 2) return plain.get(w) ?? w;
      return this.names.get(w) ?? w;
    }).join(' ')).join('\n');
  }

  async disk(/** @type {string} */ name) {
    return new Uint8Array(await diskBytes(/** @type {any} */ (this.disks.get(name))));
  }

  /** The targets' DMERR lines since the last call (or the vector's start), text only. */
  kernelLog() {
    const records = dm.kernelLog(this.logMark);
    if (records.length) this.logMark = records[records.length - 1].seq;
    const prefix = this.opts.kernelLogPrefix;
    return records.filter((r) => r.text.startsWith(prefix)).map((r) => this.named(r.text.slice(prefix.length)));
  }

  /** `time MS`: real time, counted from the vector's first create. */
  async setTime(/** @type {number} */ ms) {
    const wait = (this.t0 ?? Date.now()) + ms - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  /** Removes everything the vector made; returns what could not be removed ('' when all went).
   * Resumes first: I/O held by a suspended device keeps its descriptor busy until released. */
  async cleanUp() {
    const problems = [];
    for (const dev of this.suspended) await dm.resume(this.mapped(dev)).catch(() => {});
    for (const dev of [...this.open.keys()]) await this.closeDevice(dev).catch((e) => problems.push(String(e)));
    // One dmsetup for all (upper devices first); one by one only to say which would not go.
    const names = this.created.slice().reverse().map((d) => this.mapped(d));
    if (names.length && await dm.remove(...names).then(() => false, () => true)) {
      for (const name of names) await dm.remove(name).catch((e) => problems.push(e.message));
    }
    // A disk goes back to the pool only when no device of ours can still hold it.
    for (const disk of this.disks.values()) {
      if (problems.length) await this.pool.discard(disk);
      else this.pool.give(disk);
    }
    return problems.join('; ');
  }
}

const CONTROL_OPS = ['create', 'reload', 'suspend', 'resume', 'remove', 'message'];

/** What the kernel's dm core (dm-table.c), not a target, says when it refuses a table line; it
 * logs them in the same "TYPE: MESSAGE" form as a target's own refusals. */
const DM_CORE_REFUSALS = ['Gap in table', 'unknown target type', "couldn't split parameters"];

/** The message a control statement expects when it fails (null: none, or success expected). */
function expectedMessage(/** @type {any} */ step) {
  return step?.expect?.kind === 'errno' ? step.expect.message : null;
}

/** @param {any[]} steps */
function flatten(steps) {
  return steps.flatMap((s) => (s.op === 'group' ? s.steps : [s]));
}
