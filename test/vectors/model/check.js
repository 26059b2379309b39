// @ts-check
// Holding a vector's written expectations against the model's answers (model-agrees test), and
// writing the model's answers into `=> ?` placeholders (expect.js).
import { Model } from './index.js';

/** @typedef {import('../lib/parse.js').Step} Step */
/** @typedef {import('./index.js').Answer} Answer */

/** Every step of a vector, groups flattened, in file order. @param {import('../lib/parse.js').Vector} v */
export function flatSteps(v) {
  return v.steps.flatMap((s) => (s.op === 'group' ? s.steps : [s]));
}

/**
 * Where the vector's expectations and the model disagree, one line each (empty: they agree).
 * Error messages and kernel-log lines are not compared: they are written by hand (the core's
 * words, and Linux's DMERR lines, which the linux runner checks against Linux itself).
 * @param {import('../lib/parse.js').Vector} vector
 * @returns {string[]}
 */
export function disagreements(vector) {
  const answers = new Model(vector).run(vector);
  const out = [];
  for (const step of flatSteps(vector)) {
    const a = answers.get(step);
    if (!a) { out.push(`line ${step.line}: ${step.text}: the model never answered (held on a suspended device?)`); continue; }
    if (step.op === 'kernel-log') continue; // not the model's to derive (model/index.js)
    const want = describeExpect(step);
    const got = describeAnswer(step, a);
    if (want !== null && want !== got) out.push(`line ${step.line}: ${step.text}: the model says ${got}`);
  }
  return out;
}

/** The expectation in the model's terms, or null when it does not say (a read without a hash). @param {Step} step */
function describeExpect(step) {
  const e = step.expect;
  if (!e) return step.op === 'read' ? null : 'success';
  if (e.kind === 'errno') return e.errno;
  if (e.kind === 'sha256') return `sha256:${e.hex}`;
  if (e.kind === 'text') return `'${e.text}'`;
  return null; // unfilled
}

/** @param {Step} step @param {Answer} a */
function describeAnswer(step, a) {
  if (a.errno) return a.errno;
  if (step.op === 'status' || step.op === 'table-is') return `'${a.text}'`;
  if (a.sha256 !== undefined) return `sha256:${a.sha256}`;
  return 'success';
}

/**
 * The vector's text with every `=> ?` replaced by the model's answer. Throws when the model's
 * answer is an error where the statement cannot carry one, and for error messages (`=> ?` on a
 * failing control statement gets only the errno: add the core's message by hand).
 * @param {string} text
 * @param {import('../lib/parse.js').Vector} vector parsed from text with allowUnfilled
 * @returns {{text: string, filled: number}}
 */
export function fillIn(text, vector) {
  const answers = new Model(vector).run(vector);
  const lines = text.split('\n');
  let filled = 0;
  for (const step of flatSteps(vector)) {
    if (step.expect?.kind !== 'unfilled') continue;
    const a = answers.get(step);
    if (!a) throw new Error(`${vector.file}:${step.line}: the model never answered this statement`);
    let value;
    if (a.errno) value = a.errno;
    else if (step.op === 'status' || step.op === 'table-is') value = a.text;
    else if (a.sha256 !== undefined) value = `sha256:${a.sha256}`;
    else throw new Error(`${vector.file}:${step.line}: the model says this succeeds with nothing to write: drop the '=> ?'`);
    const i = step.line - 1;
    const at = lines[i].indexOf('=>');
    lines[i] = `${lines[i].slice(0, at)}=> ${value}`;
    filled++;
  }
  return { text: lines.join('\n'), filled };
}
