// Load: 64 clients with 32 requests in flight each, mixed verified reads, writes and flushes on
// one server for a bounded time (DMKIT_LOAD_SECONDS, default 10): no error, no data mismatch,
// every acknowledged write read back at the end, and the server's memory within its cap. The
// figures are printed, not judged (test/reliability/load.js is the run that docs/reliability.md
// quotes).
import { describe, it, expect } from 'vitest';
import { runLoad } from './lib/load-run.js';
import { DEFAULT_LIMITS } from '../../host-nbd/server/limits.js';

const SECONDS = Number(process.env.DMKIT_LOAD_SECONDS ?? 10);

describe('load', () => {
  it(`64 clients x 32 in flight for ${SECONDS} s: nothing lost, nothing wrong, memory bounded`, async () => {
    const r = await runLoad({ clients: 64, depth: 32, seconds: SECONDS });
    console.log(`load ${JSON.stringify(r)}`);
    expect(r.mismatches).toEqual([]);
    expect(r.errorReplies).toEqual([]);
    expect(r.lost).toBe(0);
    expect(r.verifiedAtEnd).toBe(true);
    expect(r.writes).toBeGreaterThan(0);
    expect(r.reads).toBeGreaterThan(0);
    // What clients can make the server hold is capped (limits.serverMemory); the rest is fixed.
    expect(r.rssPeakMiB - r.rssStartMiB).toBeLessThan(DEFAULT_LIMITS.serverMemory / 2 ** 20 + 256);
  }, (SECONDS + 120) * 1000);
});
