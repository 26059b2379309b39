// npm run bench -- browser: in one headless Chromium run, sequential 1 MiB and random 4 KiB
// reads and writes on a linear device backed by an OPFS file (core + the worker's host loop +
// a sync access handle) against the same pattern straight on the file's raw sync access handle.
// The worker side is host-browser/worker/bench.js.
import { openDemo, chromiumMissing } from '../host-browser/test/browser.js';

const TARGETS = { 'sequential 1 MiB': 0.8, 'random 4 KiB': 0.5 };

export async function run() {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const session = await openDemo();
  try {
    const passes = Number(process.env.BENCH_PASSES ?? 5);
    const r = await session.page.evaluate((p) => /** @type {any} */ (window).dmkit.call('bench', { passes: p }), passes);
    console.log(`browser benchmark: headless Chromium, ${r.fileBytes >> 20} MiB OPFS file, median of ${r.passes} alternating passes`);
    console.log('pattern            op      raw MB/s   dmkit MB/s   dmkit/raw   target');
    for (const row of r.rows) {
      const target = TARGETS[row.pattern];
      console.log(`${row.pattern.padEnd(18)} ${row.op.padEnd(6)} ${row.rawMBs.toFixed(0).padStart(9)} ${row.dmMBs.toFixed(0).padStart(12)} ${row.ratio.toFixed(2).padStart(10)}x  >= ${target}x ${row.ratio >= target ? 'ok' : 'BELOW'}`);
    }
    if (session.problems.length) console.log(`browser reported: ${session.problems.join('; ')}`);
  } finally {
    await session.close();
  }
}
