// @ts-check
// The golden vector parser (format: docs/vectors.md). Text in, a plain object out; no file
// system access here, so the same file runs in Node, in a browser bundle and in the qemu guest.
// Every error names file:line. The parsed shape is documented in docs/vectors.md, "Writing a runner".

export const ERRNOS = ['EPERM', 'EIO', 'ENXIO', 'ENODEV', 'EBUSY', 'EEXIST', 'EINVAL', 'ENOSPC', 'EOPNOTSUPP'];
export const IO_OPS = ['write', 'read', 'flush', 'discard', 'zeroes'];
export const CONTROL_OPS = ['create', 'reload', 'suspend', 'resume', 'remove', 'message'];

const NAME = /^[a-z][a-z0-9-]*$/;
const NUMBER = /^(0|[1-9][0-9]*)$/;
const SHA256 = /^sha256:[0-9a-f]{64}$/;
const UNFILLED = '?';
const MAX_COUNT = 0xffffffff;

export class VectorSyntaxError extends Error {
  /** @param {string} file @param {number} line @param {string} problem */
  constructor(file, line, problem) {
    super(`${file}:${line}: ${problem}`);
    this.name = 'VectorSyntaxError';
    this.file = file;
    this.line = line;
  }
}

/**
 * @typedef {{kind:'sha256', hex:string} | {kind:'errno', errno:string, message:string|null}
 *   | {kind:'text', text:string} | {kind:'unfilled'}} Expect
 * @typedef {{line:number, words:string[], refs:Array<'disk'|'device'|null>}} TableLine
 * @typedef {{name:string, sectors:number, seed:number|null, aligned:number|null, line:number}} Disk
 * @typedef {{op:string, line:number, text:string, expect:Expect|null, [field:string]:any}} Step
 * @typedef {{name:string, file:string, about:string, derived:'hand'|'model', disks:Disk[],
 *   devices:string[], steps:Step[]}} Vector
 */

/**
 * Parses one vector.
 * @param {string} text the file's contents
 * @param {string} file its path, for messages; the vector's name is its base name without `.vec`
 * @param {{allowUnfilled?: boolean}} [options] accept `=> ?` (only expect.js fills those in)
 * @returns {Vector}
 */
export function parseVector(text, file, options = {}) {
  const name = file.replace(/^.*[\\/]/, '').replace(/\.vec$/, '');
  /** @type {Vector} */
  const v = { name, file, about: '', derived: /** @type {any} */ (''), disks: [], devices: [], steps: [] };
  const diskByName = new Map();
  const deviceNames = new Set();
  /** @type {Map<string, TableLine[]>} */
  const pending = new Map();
  /** @type {Step|null} */
  let group = null;
  let sawOther = false;
  let lastTime = 0;
  const lines = text.split(/\r?\n/);

  // Device names are collected first: a table may refer to a device created further down
  // (a reload onto a device made later is still a reference, not a literal word).
  for (const raw of lines) {
    const m = /^\s*(table|create)\s+([^\s#]+)/.exec(raw);
    if (m && NAME.test(m[2])) deviceNames.add(m[2]);
  }

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const fail = (/** @type {string} */ problem) => { throw new VectorSyntaxError(file, lineNo, problem); };
    const st = splitStatement(lines[i]);
    if (st === null) continue;
    const { words, expectText, text: stText } = st;
    const op = words[0];
    const args = words.slice(1);
    const num = (/** @type {string|undefined} */ w, /** @type {string} */ what, max = Number.MAX_SAFE_INTEGER) => {
      if (w === undefined) fail(`${op}: missing ${what}`);
      if (!NUMBER.test(/** @type {string} */ (w))) fail(`${op}: ${what} '${w}' is not an unsigned decimal number`);
      const n = Number(w);
      if (n > max) fail(`${op}: ${what} ${w} is larger than ${max}`);
      return n;
    };
    const arity = (/** @type {number} */ min, /** @type {number} */ max = min) => {
      if (args.length < min || args.length > max) {
        fail(`${op}: expected ${min === max ? min : `${min} to ${max}`} argument(s), got ${args.length}`);
      }
    };
    const device = (/** @type {string} */ w) => {
      if (!deviceNames.has(w)) fail(`${op}: '${w}' is not a device of this vector (no table or create names it)`);
      return w;
    };
    const disk = (/** @type {string} */ w) => {
      if (!diskByName.has(w)) fail(`${op}: '${w}' is not a declared disk`);
      return w;
    };
    /** @type {Expect|null} */
    let expect = null;
    if (expectText !== null) expect = parseExpect(expectText, op, fail, !!options.allowUnfilled);
    const allow = (/** @type {string[]} */ kinds) => {
      if (expect && !kinds.includes(expect.kind)) fail(`${op}: an expectation of this kind is not allowed here (${expectText})`);
      if (expect && expect.kind === 'errno' && expect.message !== null && !kinds.includes('message')) {
        fail(`${op}: only control statements carry an error message`);
      }
    };
    const need = () => { if (!expect) fail(`${op}: needs an expectation '=> ...'`); };
    /** @type {Step} */
    const step = { op, line: lineNo, text: stText, expect };

    if (op !== 'disk' && op !== 'about' && op !== 'derived' && op !== 'aligned') sawOther = true;
    switch (op) {
      case 'about':
        if (v.about) fail('about: given twice');
        v.about = st.rest;
        if (!v.about) fail('about: needs a text');
        continue;
      case 'derived':
        arity(1);
        if (v.derived) fail('derived: given twice');
        if (args[0] !== 'hand' && args[0] !== 'model') fail(`derived: must be 'hand' or 'model', not '${args[0]}'`);
        v.derived = /** @type {'hand'|'model'} */ (args[0]);
        continue;
      case 'disk': {
        if (sawOther) fail('disk: disks are declared before any other statement');
        if (args.length !== 2 && !(args.length === 4 && args[2] === 'seed')) fail('disk: expected NAME SECTORS [seed S]');
        const dname = args[0];
        if (!NAME.test(dname)) fail(`disk: name '${dname}' does not match [a-z][a-z0-9-]*`);
        if (diskByName.has(dname)) fail(`disk: '${dname}' declared twice`);
        if (deviceNames.has(dname)) fail(`disk: '${dname}' is also a device name`);
        const d = { name: dname, sectors: num(args[1], 'size in sectors'), seed: args.length === 4 ? num(args[3], 'seed', 0xffffffff) : null, aligned: null, line: lineNo };
        diskByName.set(dname, d);
        v.disks.push(d);
        continue;
      }
      case 'aligned': {
        arity(2);
        const d = diskByName.get(disk(args[0]));
        if (d.aligned !== null) fail(`aligned: given twice for '${args[0]}'`);
        d.aligned = num(args[1], 'alignment in sectors');
        if (d.aligned === 0) fail('aligned: alignment must be at least 1 sector');
        continue;
      }
      case 'table': {
        if (args.length < 1) fail('table: missing device name');
        const dev = args[0];
        if (!NAME.test(dev)) fail(`table: device name '${dev}' does not match [a-z][a-z0-9-]*`);
        const words = args.slice(1);
        if (words.length === 0) fail('table: missing the table line');
        /** @type {TableLine} */
        const tl = { line: lineNo, words, refs: words.map((w, k) => (k < 3 ? null : diskByName.has(w) ? 'disk' : deviceNames.has(w) ? 'device' : null)) };
        if (!pending.has(dev)) pending.set(dev, []);
        /** @type {TableLine[]} */ (pending.get(dev)).push(tl);
        if (expect) fail('table: takes no expectation (put it on the create or reload)');
        continue;
      }
      case 'create':
      case 'reload':
        arity(1);
        allow(['errno', 'message', 'unfilled']);
        step.dev = device(args[0]);
        step.table = pending.get(args[0]) ?? [];
        pending.delete(args[0]);
        if (step.table.length === 0 && op === 'reload') fail('reload: no table lines for this device');
        break;
      case 'suspend':
      case 'resume':
      case 'remove':
        arity(1);
        allow(['errno', 'message', 'unfilled']);
        step.dev = device(args[0]);
        break;
      case 'message':
        if (args.length < 3) fail('message: expected DEV SECTOR WORDS...');
        allow(['errno', 'message', 'unfilled']);
        step.dev = device(args[0]);
        step.sector = num(args[1], 'sector');
        step.words = args.slice(2);
        break;
      case 'write':
        if (args.length !== 5 && !(args.length === 6 && args[5] === 'fua')) fail('write: expected DEV SECTOR COUNT seed S [fua]');
        if (args[3] !== 'seed') fail(`write: expected 'seed', got '${args[3]}'`);
        allow(['errno', 'unfilled']);
        step.dev = device(args[0]);
        step.sector = num(args[1], 'sector');
        step.count = num(args[2], 'count', MAX_COUNT);
        step.seed = num(args[4], 'seed', 0xffffffff);
        step.fua = args.length === 6;
        break;
      case 'read':
        arity(3);
        allow(['sha256', 'errno', 'unfilled']);
        step.dev = device(args[0]);
        step.sector = num(args[1], 'sector');
        step.count = num(args[2], 'count', MAX_COUNT);
        break;
      case 'flush':
        arity(1);
        allow(['errno', 'unfilled']);
        step.dev = device(args[0]);
        break;
      case 'discard':
      case 'zeroes':
        if (args.length !== 3 && !(op === 'zeroes' && args.length === 4 && args[3] === 'fua')) {
          fail(`${op}: expected DEV SECTOR COUNT${op === 'zeroes' ? ' [fua]' : ''}`);
        }
        allow(['errno', 'unfilled']);
        step.dev = device(args[0]);
        step.sector = num(args[1], 'sector');
        step.count = num(args[2], 'count', MAX_COUNT);
        step.fua = args.length === 4;
        break;
      case 'status':
      case 'table-is':
        arity(1);
        need();
        allow(['text', 'unfilled']);
        step.dev = device(args[0]);
        break;
      case 'hash':
        arity(1);
        need();
        allow(['sha256', 'unfilled']);
        step.disk = disk(args[0]);
        break;
      case 'wait-merge':
        arity(1);
        allow(['errno', 'unfilled']);
        step.dev = device(args[0]);
        break;
      case 'kernel-log':
        arity(0);
        need();
        allow(['text']);
        break;
      case 'time': {
        arity(1);
        allow([]);
        step.ms = num(args[0], 'milliseconds');
        if (step.ms < lastTime) fail(`time: ${step.ms} is earlier than the previous time ${lastTime}`);
        lastTime = step.ms;
        break;
      }
      case 'begin':
        arity(0);
        allow([]);
        if (group) fail(`begin: the block opened at line ${group.line} is still open (blocks do not nest)`);
        group = { op: 'group', line: lineNo, text: stText, expect: null, steps: [] };
        v.steps.push(group);
        continue;
      case 'end':
        arity(0);
        allow([]);
        if (!group) fail('end: no open begin');
        if (group.steps.length === 0) fail('end: empty begin/end block');
        group.endLine = lineNo;
        group = null;
        continue;
      default:
        fail(`unknown statement '${op}'`);
    }
    if (group) {
      if (['hash', 'wait-merge', 'time', 'kernel-log'].includes(op)) fail(`${op}: not allowed inside a begin/end block`);
      group.steps.push(step);
    } else {
      v.steps.push(step);
    }
  }

  const endFail = (/** @type {number} */ line, /** @type {string} */ problem) => { throw new VectorSyntaxError(file, line, problem); };
  if (group) endFail(group.line, 'begin: block is never closed with end');
  for (const [dev, tls] of pending) endFail(tls[0].line, `table: lines for '${dev}' are never used by a create or reload`);
  if (!v.about) endFail(1, "missing 'about TEXT'");
  if (!v.derived) endFail(1, "missing 'derived hand' or 'derived model'");
  for (const d of deviceNames) if (diskByName.has(d)) endFail(diskByName.get(d).line, `'${d}' is both a disk and a device`);
  v.devices = [...deviceNames];
  return v;
}

/**
 * One line → its words before `=>`, the expectation text after it (or null) and the free text
 * of `about`. `#` starts a comment except in `about` text and in text expectations.
 * @param {string} raw
 */
function splitStatement(raw) {
  const line = raw.replace(/^\s+/, '');
  if (line === '' || line.startsWith('#')) return null;
  const first = /^\S+/.exec(line)?.[0] ?? '';
  if (first === 'about') {
    const rest = line.slice(5).trim();
    return { words: ['about'], expectText: null, rest, text: line.trimEnd() };
  }
  const hashAt = line.indexOf('#');
  const arrowAt = line.indexOf('=>');
  let head = line;
  /** @type {string|null} */
  let expectText = null;
  if (arrowAt >= 0 && (hashAt < 0 || arrowAt < hashAt)) {
    head = line.slice(0, arrowAt);
    expectText = line.slice(arrowAt + 2);
  } else if (hashAt >= 0) {
    head = line.slice(0, hashAt);
  }
  const words = head.trim().split(/[ \t]+/).filter((w) => w !== '');
  if (words.length === 0) return null;
  return { words, expectText, rest: '', text: line.trimEnd() };
}

/**
 * @param {string} raw text after `=>`
 * @param {string} op
 * @param {(problem: string) => never} fail
 * @param {boolean} allowUnfilled
 * @returns {Expect}
 */
function parseExpect(raw, op, fail, allowUnfilled) {
  const text = raw.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
  const first = /^\S*/.exec(text)?.[0] ?? '';
  const after = text.slice(first.length).replace(/^[ \t]+/, '');
  const noComment = (/** @type {string} */ what) => {
    if (after !== '' && !after.startsWith('#')) fail(`${op}: unexpected text after ${what}: '${after}'`);
  };
  if (first === UNFILLED) {
    if (!allowUnfilled) fail(`${op}: expectation not filled in yet (run node test/vectors/expect.js)`);
    noComment("'?'");
    return { kind: 'unfilled' };
  }
  if (op === 'status' || op === 'table-is' || op === 'kernel-log') return { kind: 'text', text };
  if (first.startsWith('sha256:')) {
    if (!SHA256.test(first)) fail(`${op}: '${first}' is not sha256: followed by 64 lowercase hex digits`);
    noComment('the hash');
    return { kind: 'sha256', hex: first.slice(7) };
  }
  if (ERRNOS.includes(first)) {
    if (CONTROL_OPS.includes(op)) return { kind: 'errno', errno: first, message: after === '' ? null : after };
    noComment('the error');
    return { kind: 'errno', errno: first, message: null };
  }
  if (first === '') fail(`${op}: empty expectation after '=>'`);
  return fail(`${op}: unknown expectation '${first}' (sha256:HEX, one of ${ERRNOS.join(' ')}, or text for status/table-is/kernel-log)`);
}

/**
 * A table as text for a host: `start length target args`, one line per segment. `resolve`
 * maps the words that name this vector's disks and devices to the host's paths; `target`
 * renames target types (the kernel runner's `dmkit-<name>`).
 * @param {TableLine[]} lines
 * @param {{disk?: (name: string) => string, device?: (name: string) => string, target?: (name: string) => string}} [map]
 */
export function formatTable(lines, map = {}) {
  return lines.map((tl) => tl.words.map((w, k) => {
    if (k === 2 && map.target) return map.target(w);
    if (tl.refs[k] === 'disk' && map.disk) return map.disk(w);
    if (tl.refs[k] === 'device' && map.device) return map.device(w);
    return w;
  }).join(' ')).join('\n');
}

/** Sum of a table's lengths in sectors, or null when a length is not a number (a table error). */
export function tableSectors(/** @type {TableLine[]} */ lines) {
  let total = 0;
  for (const tl of lines) {
    if (!NUMBER.test(tl.words[1] ?? '')) return null;
    total += Number(tl.words[1]);
  }
  return total;
}
