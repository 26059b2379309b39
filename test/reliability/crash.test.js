// Crash safety of the stateful targets (issue 4's proof, issue 8's crash item): `dmkit serve` is
// killed with SIGKILL at random moments during random writes to origin and snapshots, and to a
// snapshot-merge while it merges; after each restart the COW devices load and every write
// acknowledged before the last completed FLUSH (in fact every acknowledged write) is intact.
// See lib/crash-run.js. CI runs a few kill points per setup (DMKIT_CRASH_CYCLES, default 5) with
// a fresh seed each time (printed, DMKIT_CRASH_SEED repeats a run); test/reliability/crash.js
// is the long run.
import { describe, it, expect } from 'vitest';
import { runCrashCycles } from './lib/crash-run.js';

const CYCLES = Number(process.env.DMKIT_CRASH_CYCLES ?? 5);
const SEED = Number(process.env.DMKIT_CRASH_SEED ?? Date.now() % 1e9);

describe('SIGKILL during writes: nothing acknowledged is lost, the COW devices load', () => {
  const setups = /** @type {const} */ (['P', 'PO', 'P+PO', 'merge']);
  setups.forEach((setup, i) => {
    it(`${setup}: ${CYCLES} random kill points (seed ${SEED + i})`, async () => {
      const report = await runCrashCycles({ setup, cycles: CYCLES, seed: SEED + i });
      console.log(`crash ${JSON.stringify(report)}`);
      expect(report.kills).toBe(CYCLES);
      expect(report.writesAcked).toBeGreaterThan(0);
      if (setup === 'merge') expect(report.killsDuringMerge).toBeGreaterThan(0);
    }, 180_000);
  });
});
