// Power loss: `dmkit serve` over an origin image and COW files on a disk with a volatile write
// cache (lib/faulty-fs.py --volatile: writes stay in a cache of 4 KiB pages until their file is
// fsynced), killed with SIGKILL at random moments during random writes to origin and snapshots
// (and to a snapshot-merge while it merges), then the disk's power is cut: a seeded random half
// of the pages no fsync made durable is written, the rest lost. After a fresh mount and a
// restart, the COW devices must load valid, every write acknowledged before the last completed
// FLUSH (or with FUA) must be there, and no snapshot may show origin data written after it was
// taken (a snapshot's view allows only its base and its own writes): that is what a wrong order
// of origin writes and the metadata protecting them, or an fdatasync wrongly skipped, would
// break. See lib/crash-run.js (powerCut). P runs three times: with --loop-receive; with origin
// and snapshot written, where the receive threads write the origin's copied chunks; and with the
// origin alone written, where the threads also make its first writes and commit the snapshot's
// metadata themselves (seen failing with the commit's second fdatasync taken out of
// addon/src/cow_areas.cc: the snapshot then showed origin writes).
// CI runs a few cut points per setup (DMKIT_POWER_CYCLES, default 4) with a fresh seed each
// time (printed, DMKIT_POWER_SEED repeats a run); test/reliability/crash.js --power-cut is the
// long run.
import { describe, it, expect, afterAll } from 'vitest';
import { runCrashCycles } from './lib/crash-run.js';
import { unmountAllFaultyDisks } from './lib/faulty-disk.js';
import { stopAllServers } from '../nbd/helpers.js';

const CYCLES = Number(process.env.DMKIT_POWER_CYCLES ?? 4);
const SEED = Number(process.env.DMKIT_POWER_SEED ?? Date.now() % 1e9);

// Servers first (they have files open on the disks), then the disks.
afterAll(async () => { await stopAllServers(); await unmountAllFaultyDisks(); });

describe('power cut after SIGKILL: flushed writes survive, snapshots stay consistent, the COW devices load', () => {
  const setups = /** @type {const} */ ([
    ['P', [], false], ['P', ['--loop-receive'], false], ['P', [], true], ['PO', [], false], ['P+PO', [], false], ['merge', [], false],
  ]);
  setups.forEach(([setup, serveArgs, originOnly], i) => {
    const name = `${setup}${serveArgs.length ? ` ${serveArgs.join(' ')}` : ''}${originOnly ? ', origin writes only' : ''}`;
    it(`${name}: ${CYCLES} random power cuts (seed ${SEED + i})`, async () => {
      const report = await runCrashCycles({ setup, cycles: CYCLES, seed: SEED + i, powerCut: true, serveArgs: [...serveArgs], originOnly });
      console.log(`power-loss ${JSON.stringify(report)}`);
      expect(report.kills).toBe(CYCLES);
      expect(report.cuts).toBe(CYCLES);
      expect(report.writesAcked).toBeGreaterThan(0);
      if (setup === 'merge') expect(report.killsDuringMerge).toBeGreaterThan(0);
      // The threads wrote (P's origin) unless told not to.
      if (setup === 'P') expect(report.threadWrites > 0).toBe(!serveArgs.includes('--loop-receive'));
      // With the origin alone written, the threads copy and commit most first writes themselves
      // (with the snapshot device written too, its writes keep the origin's first writes on the core).
      if (originOnly) {
        expect(report.threadWrites).toBeGreaterThan(report.writesAcked / 2);
        expect(report.threadCopies).toBeGreaterThan(0);
      }
    }, 180_000);
  });
});
