// @ts-check
// Walks a parsed vector's steps against a runner's host object and checks every expectation.
// Runners only say how to create a device or do an I/O; what "passed" means lives here, once.
// The host interface is documented in docs/vectors.md, "Writing a runner".
import { pattern } from './pattern.js';
import { sha256Hex } from './hash.js';
import { tableSectors } from './parse.js';

/** @typedef {import('./parse.js').Vector} Vector */
/** @typedef {import('./parse.js').Step} Step */
/** @typedef {{errno: string|null, message?: string} | null | undefined | void} Outcome */

/**
 * @typedef {object} Host
 * @property {{errnos?: boolean, messages?: boolean, outOfRange?: boolean, zeroLength?: boolean, refusedDiscards?: boolean}} [can]
 *   refusedDiscards: whether a discard the device refuses shows as EOPNOTSUPP (not through nbd.ko: docs/vectors.md)
 * @property {(dev: string, lines: import('./parse.js').TableLine[]) => Outcome | Promise<Outcome>} create
 * @property {(dev: string, lines: import('./parse.js').TableLine[]) => Outcome | Promise<Outcome>} reload
 * @property {(dev: string) => Outcome | Promise<Outcome>} suspend
 * @property {(dev: string) => Outcome | Promise<Outcome>} resume
 * @property {(dev: string) => Outcome | Promise<Outcome>} remove
 * @property {(dev: string, sector: number, words: string[]) => Outcome | Promise<Outcome>} message
 * @property {(req: IoRequest) => Promise<IoResult>} io
 * @property {(dev: string) => string | Promise<string>} status
 * @property {(dev: string) => string | Promise<string>} table
 * @property {(disk: string) => Uint8Array | {sha256: string} | Promise<Uint8Array | {sha256: string}>} disk
 * @property {(ms: number) => void | Promise<void>} [setTime]
 * @property {(dev: string) => Outcome | Promise<Outcome>} [waitMerge]
 * @property {() => string[] | Promise<string[]>} [kernelLog]  the DMERR lines logged since the
 *   last call, message text only; without it, kernel-log statements are skipped
 */

/**
 * @typedef {{op: 'read'|'write'|'flush'|'discard'|'zeroes', dev: string, sector: number, count: number,
 *   fua: boolean, data?: Uint8Array}} IoRequest
 * @typedef {{errno: string|null, data?: Uint8Array}} IoResult
 */

export class StepFailure extends Error {
  /** @param {Step} step @param {string} problem */
  constructor(step, problem) {
    super(`line ${step.line}: ${step.text}: ${problem}`);
    this.name = 'StepFailure';
    this.step = step;
  }
}

/**
 * dmsetup status/table output as vectors compare it: trailing blanks removed from each line,
 * empty trailing lines dropped, lines joined by ' | '.
 * @param {string} text
 */
export function normalizeLines(text) {
  const lines = text.split('\n').map((l) => l.replace(/[ \t\r]+$/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join(' | ');
}

/**
 * Runs one vector. Returns the number of statements skipped because the host cannot express
 * them; throws StepFailure at the first statement whose outcome differs from its expectation.
 * @param {Vector} vector
 * @param {Host} host
 * @param {{mergeTimeoutMs?: number, sleep?: (ms: number) => Promise<void>}} [options]
 * @returns {Promise<{skipped: number}>}
 */
export async function driveVector(vector, host, options = {}) {
  const can = { errnos: true, messages: true, outOfRange: true, zeroLength: true, refusedDiscards: true, ...(host.can ?? {}) };
  const sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  /** live and inactive table sizes, to recognise out-of-range requests */
  const live = new Map();
  const inactive = new Map();
  let skipped = 0;

  /** @param {Step} step @param {Outcome} outcome */
  const checkOutcome = (step, outcome) => {
    const failed = outcome && typeof outcome === 'object';
    const e = step.expect;
    if (!e || e.kind !== 'errno') {
      if (failed) throw new StepFailure(step, `expected success, got ${describe(outcome)}`);
      return;
    }
    if (!failed) throw new StepFailure(step, `expected ${e.errno}${e.message ? ' ' + e.message : ''}, got success`);
    if (can.errnos && outcome.errno !== null && outcome.errno !== e.errno) {
      throw new StepFailure(step, `expected ${e.errno}, got ${describe(outcome)}`);
    }
    if (can.messages && e.message !== null && outcome.message !== e.message) {
      throw new StepFailure(step, `expected message '${e.message}', got '${outcome.message ?? ''}'`);
    }
  };

  /** A statement the host cannot express (out-of-range or zero-length I/O on a block device)? */
  const cannotExpress = (/** @type {Step} */ step) => {
    if (!['read', 'write', 'discard', 'zeroes'].includes(step.op)) return false;
    if (step.count === 0 && !can.zeroLength) return true;
    if (step.op === 'discard' && step.expect?.kind === 'errno' && step.expect.errno === 'EOPNOTSUPP' && !can.refusedDiscards) return true;
    const size = live.get(step.dev);
    return !can.outOfRange && size !== undefined && step.sector + step.count > size;
  };

  /** Starts an I/O step; the promise checks it when it completes. @param {Step} step */
  const startIo = (step) => {
    /** @type {IoRequest} */
    const req = { op: step.op, dev: step.dev, sector: step.sector ?? 0, count: step.count ?? 0, fua: !!step.fua };
    if (step.op === 'write') req.data = pattern(step.seed, step.count * 512);
    return Promise.resolve(host.io(req)).then(async (res) => {
      const e = step.expect;
      if (res.errno !== null) {
        checkOutcome(step, { errno: res.errno });
        return;
      }
      if (e && e.kind === 'errno') throw new StepFailure(step, `expected ${e.errno}, got success`);
      if (e && e.kind === 'sha256') {
        const got = await sha256Hex(/** @type {Uint8Array} */ (res.data));
        if (got !== e.hex) throw new StepFailure(step, `expected sha256:${e.hex}, got sha256:${got}`);
      }
    });
  };

  /** @param {Step} step */
  const runControl = async (step) => {
    switch (step.op) {
      case 'create': {
        const out = await host.create(step.dev, step.table);
        checkOutcome(step, out);
        if (!out) live.set(step.dev, tableSectors(step.table));
        return;
      }
      case 'reload': {
        const out = await host.reload(step.dev, step.table);
        checkOutcome(step, out);
        if (!out) inactive.set(step.dev, tableSectors(step.table));
        return;
      }
      case 'resume': {
        const out = await host.resume(step.dev);
        checkOutcome(step, out);
        if (!out && inactive.has(step.dev)) {
          live.set(step.dev, inactive.get(step.dev));
          inactive.delete(step.dev);
        }
        return;
      }
      case 'suspend':
        checkOutcome(step, await host.suspend(step.dev));
        return;
      case 'remove': {
        const out = await host.remove(step.dev);
        checkOutcome(step, out);
        if (!out) { live.delete(step.dev); inactive.delete(step.dev); }
        return;
      }
      case 'message':
        checkOutcome(step, await host.message(step.dev, step.sector, step.words));
        return;
      case 'status':
      case 'table-is': {
        const got = normalizeLines(await (step.op === 'status' ? host.status(step.dev) : host.table(step.dev)));
        const e = /** @type {{kind:'text', text:string}} */ (step.expect);
        if (got !== e.text) throw new StepFailure(step, `expected '${e.text}', got '${got}'`);
        return;
      }
      case 'hash': {
        const d = await host.disk(step.disk);
        const got = d instanceof Uint8Array ? await sha256Hex(d) : d.sha256;
        const e = /** @type {{kind:'sha256', hex:string}} */ (step.expect);
        if (got !== e.hex) throw new StepFailure(step, `expected sha256:${e.hex}, got sha256:${got}`);
        return;
      }
      case 'wait-merge':
        if (host.waitMerge) checkOutcome(step, await host.waitMerge(step.dev));
        else checkOutcome(step, await pollMerge(step.dev, host, options.mergeTimeoutMs ?? 30_000, sleep));
        return;
      case 'time':
        if (host.setTime) await host.setTime(step.ms);
        return;
      case 'kernel-log': {
        if (!host.kernelLog) { skipped++; return; }
        const got = (await host.kernelLog()).join(' | ');
        const e = /** @type {{kind:'text', text:string}} */ (step.expect);
        if (got !== e.text) throw new StepFailure(step, `expected '${e.text}', got '${got}'`);
        return;
      }
      default:
        throw new StepFailure(step, `the driver does not know '${step.op}'`);
    }
  };

  for (const step of vector.steps) {
    if (step.op === 'group') {
      /** @type {Promise<void>[]} */
      const started = [];
      for (const inner of step.steps) {
        if (cannotExpress(inner)) { skipped++; continue; }
        if (['read', 'write', 'flush', 'discard', 'zeroes'].includes(inner.op)) started.push(startIo(inner));
        else await runControl(inner);
      }
      const results = await Promise.allSettled(started);
      const bad = results.find((r) => r.status === 'rejected');
      if (bad) throw /** @type {PromiseRejectedResult} */ (bad).reason;
      continue;
    }
    if (cannotExpress(step)) { skipped++; continue; }
    if (['read', 'write', 'flush', 'discard', 'zeroes'].includes(step.op)) await startIo(step);
    else await runControl(step);
  }
  return { skipped };
}

/** @param {Outcome} o */
function describe(o) {
  if (!o) return 'success';
  return `${o.errno ?? 'failure'}${o.message ? ' ' + o.message : ''}`;
}

/**
 * The default wait-merge: polls the status of the snapshot-merge segment at sector 0 until
 * `allocated == metadata` (merge finished).
 * @param {string} dev @param {Host} host @param {number} timeoutMs @param {(ms: number) => Promise<void>} sleep
 * @returns {Promise<Outcome>}
 */
export async function pollMerge(dev, host, timeoutMs, sleep) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const first = (await host.status(dev)).split('\n')[0] ?? '';
    const words = first.trim().split(/\s+/);
    if (words[2] !== 'snapshot-merge') return { errno: 'EINVAL', message: `${dev} has no snapshot-merge segment at sector 0: '${first}'` };
    const info = words.slice(3).join(' ');
    if (info === 'Invalid' || info === 'Merge failed') return { errno: 'EIO', message: `merge of ${dev} failed: ${info}` };
    const m = /^(\d+)\/(\d+) (\d+)$/.exec(info);
    if (!m) return { errno: 'EIO', message: `cannot read the merge progress of ${dev}: '${info}'` };
    if (m[1] === m[3]) return null;
    if (Date.now() > deadline) return { errno: 'EIO', message: `merge of ${dev} did not finish in ${timeoutMs} ms: '${info}'` };
    await sleep(5);
  }
}
