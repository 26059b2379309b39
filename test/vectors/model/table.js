// @ts-check
// Table validation as Linux's dm-table.c does it, then each target's own constructor.
// Every rejection is EINVAL with a reason (the model's reasons are its own words: vectors
// compare only the errno with the model, the exact message with the core).
import { targetTypes } from './targets/index.js';

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const U64_MAX = 2n ** 64n - 1n;

/**
 * @typedef {import('./blockdev.js').BlockDev} BlockDev
 * @typedef {import('./blockdev.js').Result} Result
 * @typedef {object} Target what a model target file's constructor returns
 * @property {(op: import('./blockdev.js').Op, sector: number, count: number, data?: Uint8Array) => Result} io
 *   sector is relative to the segment start; data is count*512 bytes for writes
 * @property {() => string} info      dmsetup status text after `start length type `
 * @property {() => string} table     dmsetup table text after `start length type `
 * @property {Array<{dev: BlockDev, start: number, len: number}>} [areas] device ranges it maps (checked against sizes)
 * @property {() => string|null} [preresume] before it resumes: null, or the errno refusing the resume
 * @property {() => void} [resume]    the table became live, or its suspended device resumes
 * @property {() => void} [destroy]   the table is gone (replaced, failed to load, device removed)
 * @property {(words: string[]) => string|null} [message] dmsetup message: null or an errno
 * @typedef {{begin: number, len: number, type: string, target: Target}} Segment
 * @typedef {{segments: Segment[], size: number}} Table
 * @typedef {object} TargetContext what a target constructor gets
 * @property {number} begin
 * @property {number} len
 * @property {import('./index.js').Model} model
 * @property {(name: string) => BlockDev | null} device a disk or a mapped device with a live table
 * @property {() => number} now the vector's clock in milliseconds (`time`)
 * @property {(reason: string, errno?: string) => {error: string, errno?: string}} fail a constructor
 *   returns fail('why') to reject the table (EINVAL unless errno says otherwise)
 */

/**
 * Builds a table from its lines (each the words `start length type args...`).
 * @param {string[][]} lines
 * @param {import('./index.js').Model} model
 * @returns {{table: Table} | {errno: string, why: string}}
 */
export function buildTable(lines, model) {
  /** @type {Segment[]} */
  const segments = [];
  const undo = () => { for (const s of segments) s.target.destroy?.(); };
  const reject = (/** @type {string} */ why) => { undo(); return { errno: 'EINVAL', why }; };
  if (lines.length === 0) return reject('table is empty');
  let next = 0;
  for (let i = 0; i < lines.length; i++) {
    const w = lines[i];
    const where = `line ${i + 1}`;
    if (w.length < 3) return reject(`${where}: needs start, length and target type`);
    if (!DECIMAL.test(w[0]) || BigInt(w[0]) > U64_MAX) return reject(`${where}: bad start '${w[0]}'`);
    if (!DECIMAL.test(w[1]) || BigInt(w[1]) > U64_MAX) return reject(`${where}: bad length '${w[1]}'`);
    const begin = Number(w[0]), len = Number(w[1]);
    if (len === 0) return reject(`${where}: zero-length target`);
    if (begin !== next) return reject(`${where}: gap or overlap in table (starts at ${begin}, expected ${next})`);
    const make = targetTypes.get(w[2]);
    if (!make) return reject(`${where}: unknown target type '${w[2]}'`);
    /** @type {TargetContext} */
    const ctx = {
      begin, len, model,
      device: (name) => model.blockDev(name),
      now: () => model.clock,
      fail: (why, errno) => ({ error: why, errno }),
    };
    const t = make(w.slice(3), ctx);
    if ('error' in t) {
      undo();
      return { errno: t.errno ?? 'EINVAL', why: `${where}: ${w[2]}: ${t.error}` };
    }
    segments.push({ begin, len, type: w[2], target: t });
    for (const a of t.areas ?? []) {
      if (a.start + a.len > a.dev.size()) return reject(`${where}: ${w[2]}: ${a.dev.name} too small for the target`);
    }
    next = begin + len;
  }
  return { table: { segments, size: next } };
}
