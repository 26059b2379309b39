// Every golden vector through a real NBD connection (`npm run vectors -- nbd`): the runner
// starts dmkit serve per vector and drives all I/O through libnbd (test/vectors/runners/nbd.js).
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { run, ROOT } from './helpers.js';

describe('golden vectors over NBD', () => {
  it('every vector passes through the nbd runner', async () => {
    const r = await run(process.execPath, [join(ROOT, 'test/vectors/run.js'), 'nbd'], { env: process.env, timeout: 600_000 });
    const summary = r.stdout.trim().split('\n').pop();
    const failures = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    expect(failures, r.stdout + r.stderr).toEqual([]);
    expect(summary).toMatch(/^\d+ passed, 0 failed/);
    expect(r.code).toBe(0);
  }, 600_000);
});
