// @ts-check
// "Run golden vectors": fetches the project's vectors from the demo server and runs each in the
// worker through OPFS, listing results as they arrive and ending with "N passed, M failed".
import { h, say } from './dom.js';

/** @param {import('./app-context.js').AppContext} app */
export function setupVectors(app) {
  const button = /** @type {HTMLButtonElement} */ (document.getElementById('run-vectors'));
  const summary = /** @type {HTMLElement} */ (document.getElementById('vectors-summary'));
  const results = /** @type {HTMLElement} */ (document.getElementById('vector-results'));

  app.client.on('vector', (r) => {
    results.append(h('li', { dataset: { vector: r.name, status: r.status } },
      h(r.status === 'pass' ? 'span.good' : 'span.bad', null, r.status), ` ${r.name}`,
      r.skippedStatements ? h('span.hint', null, ` (${r.skippedStatements} statement(s) skipped)`) : null,
      r.detail ? h('div.mono', null, r.detail) : null));
  });

  /** Runs the given vectors (all of the server's when none are given). */
  app.runVectors = async (vectors) => {
    results.replaceChildren();
    if (!vectors) {
      const res = await fetch('vectors.json');
      if (!res.ok) throw new Error(`cannot fetch the vectors: HTTP ${res.status}`);
      vectors = await res.json();
    }
    if (!vectors.length) throw new Error('the server has no vectors (test/vectors/cases is empty)');
    const out = await app.client.call('runVectors', { vectors });
    const passed = out.filter((r) => r.status === 'pass').length;
    return { results: out, line: `${passed} passed, ${out.length - passed} failed` };
  };

  button.addEventListener('click', () => {
    app.act(button, summary, async () => (await app.runVectors()).line).then(() => {
      summary.classList.toggle('error', /[1-9]\d* failed/.test(summary.textContent ?? ''));
    });
  });
  say(summary, '');
}
