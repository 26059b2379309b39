// The flush before a detach: what it refuses, and what it does when the caller insists.
import { describe, it, expect } from 'vitest';
import { flushBeforeDetach } from './flush.js';

const sysError = (code, syscall) => Object.assign(new Error(`${syscall}: failed`), { code, syscall });

/** A native addon whose flushDevice answers from `results` in order (an Error rejects). */
function fakeNative(results) {
  const calls = [];
  return {
    calls,
    flushDevice: async (path, exclusive) => {
      calls.push(['flush', path, exclusive]);
      const r = results.shift();
      if (r instanceof Error) throw r;
    },
    syncAll: async () => { calls.push(['sync']); },
  };
}

describe('flushBeforeDetach', () => {
  it('flushes with an exclusive open', async () => {
    const n = fakeNative([undefined]);
    await flushBeforeDetach(/** @type {any} */ (n), '/dev/nbd0', false, () => {});
    expect(n.calls).toEqual([['flush', '/dev/nbd0', true]]);
  });

  it('refuses a device in use unless insisted on, then syncs and flushes it shared', async () => {
    await expect(flushBeforeDetach(/** @type {any} */ (fakeNative([sysError('EBUSY', 'open /dev/nbd0')])), '/dev/nbd0', false, () => {}))
      .rejects.toThrow(/is in use .*unmount it first, or detach with --force/);
    const n = fakeNative([sysError('EBUSY', 'open /dev/nbd0'), undefined]);
    const said = [];
    await flushBeforeDetach(/** @type {any} */ (n), '/dev/nbd0', true, (l) => said.push(l));
    expect(n.calls).toEqual([['flush', '/dev/nbd0', true], ['sync'], ['flush', '/dev/nbd0', false]]);
    expect(said[0]).toMatch(/in use; writing back every filesystem/);
  });

  it('refuses when the flush fails unless insisted on, then reports it and goes on', async () => {
    const eio = () => sysError('EIO', 'fsync /dev/nbd1');
    await expect(flushBeforeDetach(/** @type {any} */ (fakeNative([eio()])), '/dev/nbd1', false, () => {}))
      .rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/flush before detaching failed.*--force/) });
    const said = [];
    await flushBeforeDetach(/** @type {any} */ (fakeNative([eio()])), '/dev/nbd1', true, (l) => said.push(l));
    expect(said).toEqual([expect.stringMatching(/flush before detaching \/dev\/nbd1 failed, detaching anyway/)]);
  });
});
