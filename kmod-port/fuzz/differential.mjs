#!/usr/bin/env node
// @ts-check
// Differential check of the C port against the core: random snapshot scenarios (origin, one or
// two snapshots, writes and reads on every device, sometimes a merge the way LVM starts one),
// expectations from the reference model (test/vectors/model), each run through the core
// (test/vectors/runners/core.js, three orders) and the C harness (four orders).
//
//   node kmod-port/fuzz/differential.mjs [SEED] [COUNT]
//
// A scenario where the core and the C port disagree is a bug in one of them: it is printed with
// the path of its .vec file (kept in $TMPDIR/dmkit-fuzz) and the run exits 1. Scenarios where
// both disagree with the model only are counted apart (the model is simpler than Linux, e.g. it
// finishes one piece of a request before mapping the next).
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseVector } from '../../test/vectors/lib/parse.js';
import { fillIn } from '../../test/vectors/model/check.js';
import * as core from '../../test/vectors/runners/core.js';

const HARNESS = fileURLToPath(new URL('../build/dmkit-harness', import.meta.url));
let seed = Number(process.argv[2] ?? 1) >>> 0;
const count = Number(process.argv[3] ?? 50);
const rnd = (/** @type {number} */ n) => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return (seed >>> 12) % n;
};
const pick = (/** @type {any[]} */ a) => a[rnd(a.length)];
const dir = join(tmpdir(), 'dmkit-fuzz');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

/** One scenario's vector text, with `=> ?` where the model answers. @param {number} k */
function scenario(k) {
  const chunk = pick([1, 2, 4, 8, 16]);
  const size = pick([32, 64, 96, 128]);
  const store = pick(['P', 'P', 'PO', 'N']);
  const two = rnd(3) === 0;
  const L = [`about differential scenario ${k}`, 'derived model', `disk base ${size} seed ${rnd(1000) + 1}`,
    `disk cow ${pick([size / 2, size, size * 2, size * 3])}`];
  if (two) L.push(`disk cow2 ${size * 2}`);
  L.push(`table o 0 ${size} snapshot-origin base`, 'create o', `table s 0 ${size} snapshot base cow ${store} ${chunk}`, 'create s');
  if (two) L.push(`table t 0 ${size} snapshot base cow2 N ${pick([1, 2, 4, 8])}`, 'create t');
  const devs = two ? ['o', 's', 't'] : ['o', 's'];
  for (let i = 4 + rnd(12); i > 0; i--) {
    const d = pick(devs);
    const sec = rnd(size);
    const cnt = 1 + rnd(Math.min(size - sec, 24));
    if (rnd(3) === 0) L.push(`read ${d} ${sec} ${cnt} => ?`);
    else L.push(`write ${d} ${sec} ${cnt} seed ${rnd(100000)}${rnd(4) === 0 ? ' fua' : ''} => ?`);
    if (rnd(5) === 0) L.push('status s => ?');
  }
  for (const d of devs) L.push(`read ${d} 0 ${size} => ?`);
  L.push('status s => ?', 'hash cow => ?', 'hash base => ?');
  if (store !== 'N' && !two && rnd(2) === 0) {
    L.push('suspend o', 'suspend s', `table o 0 ${size} snapshot-merge base cow P ${chunk}`, 'reload o', 'resume o',
      'wait-merge o => ?', `read o 0 ${size} => ?`, 'status o => ?', 'hash base => ?', 'hash cow => ?');
  }
  return L.join('\n') + '\n';
}

/** The model's answers in place of every `=> ?` (dropping those it says plainly succeed). @param {string} text @param {string} file */
function expectations(text, file) {
  for (let tries = 0; tries < 500; tries++) {
    try {
      const filled = fillIn(text, parseVector(text, file, { allowUnfilled: true })).text;
      return { text: filled, vector: parseVector(filled, file) };
    } catch (err) {
      const m = /:(\d+): the model says this succeeds/.exec(err instanceof Error ? err.message : '');
      if (!m) throw err;
      const lines = text.split('\n');
      lines[Number(m[1]) - 1] = lines[Number(m[1]) - 1].replace(/ => \?$/, '');
      text = lines.join('\n');
    }
  }
  throw new Error('could not fill in the expectations');
}

const context = await core.setup();
let differ = 0, modelOnly = 0;
for (let k = 0; k < count; k++) {
  const name = `scenario-${seed}-${k}`;
  const file = join(dir, `${name}.vec`);
  const { text, vector } = expectations(scenario(k), file);
  writeFileSync(file, text);
  const c = await core.runVector(vector, context);
  let out;
  try { out = execFileSync(HARNESS, [file]).toString(); } catch (err) { out = String(/** @type {any} */ (err).stdout ?? err); }
  const cPass = out.startsWith(`pass  ${name}`);
  if ((c.status === 'pass') !== cPass) {
    differ++;
    console.log(`DIFFER ${file}\n  core: ${c.status} ${c.detail ?? ''}\n  C:    ${out.split('\n')[0]}`);
  } else if (!cPass) {
    modelOnly++;
  }
}
console.log(`${count} scenarios: ${differ} where the core and the C port disagree, ${modelOnly} where both disagree with the model`);
process.exit(differ ? 1 : 0);
