// The NBD protocol fuzzer (lib/nbd-fuzzer.js) for a bounded time: every corpus case once, then
// generated and mutated traffic, against a real `dmkit serve` while a second client does
// verified I/O. DMKIT_FUZZ_SECONDS sets the budget (default 45), DMKIT_FUZZ_SEED repeats a run;
// test/fuzz/nbd-fuzz.js is the long run.
import { describe, it, expect } from 'vitest';
import { fuzzServer } from './lib/nbd-fuzzer.js';

const SECONDS = Number(process.env.DMKIT_FUZZ_SECONDS ?? 45);
const SEED = Number(process.env.DMKIT_FUZZ_SEED ?? Date.now() % 1e9);

describe('NBD protocol fuzzing', () => {
  it(`${SECONDS} s of hostile traffic: no crash, no hang, bounded memory and descriptors, correct data for the healthy client (seed ${SEED})`, async () => {
    const report = await fuzzServer({ seconds: SECONDS, seed: SEED });
    console.log(`fuzz ${JSON.stringify({ ...report, failures: report.failures.length })}`);
    expect(report.failures).toEqual([]);
    expect(report.replayed).toBe(report.corpusStart);
    expect(report.cases).toBeGreaterThan(report.corpusStart);
    expect(report.verifier.reads).toBeGreaterThan(0);
    expect(report.probes).toBeGreaterThan(0);
    // Memory: what hostile clients can make the server hold is capped per connection (4 fuzz
    // connections, each at most a few maximum-size requests), not growing with the cases sent.
    expect(report.rssPeak - report.rssStart).toBeLessThan(768 << 20);
  }, (SECONDS + 90) * 1000);
});
