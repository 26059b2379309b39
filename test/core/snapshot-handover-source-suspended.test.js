// A snapshot takes a live snapshot's store over only once the source's device is suspended
// (dm-snap.c snapshot_preresume), and a suspended snapshot-merge stops after the step in flight
// (snapshot_merge_presuspend -> stop_merge). Before, the core handed a store over while the
// source still copied or merged into it: the source's commit then wrote through the new
// snapshot's unread store (a null area) or trapped in PersistentStore#commitMerge.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, DmError, CoreFault } from '../../core-as/js/dmcore.js';

const TABLE = '0 64 snapshot base.img cow.img P 8';
const NOT_SUSPENDED = 'S: line 1: snapshot: Unable to perform snapshot handover until source is suspended.';

async function setup() {
  const h = await newHarness();
  const base = h.disk('base.img', 64);
  const cow = h.disk('cow.img', 128);
  h.disks.get(base).set(sectorBytes(64, 1));
  return { h, cow: () => h.disks.get(cow) };
}

/** The resume's error, which must be a refusal (DmError), never a trap. */
function resumeError(h, id) {
  try {
    h.core.resume(id);
  } catch (e) {
    expect(e).toBeInstanceOf(DmError);
    expect(e).not.toBeInstanceOf(CoreFault);
    return e;
  }
  return null;
}

/** Device S loads TABLE beside a source that is not suspended: its resume is refused, nothing written. */
function refusedHandover(h, cow) {
  const s = h.core.createDevice('S');
  h.load(s, TABLE);
  const cowBefore = cow().slice();
  const err = resumeError(h, s);
  expect(err?.code).toBe('EINVAL');
  expect(err?.message).toBe(NOT_SUSPENDED);
  expect(h.core.takeCommands()).toEqual([]); // the refusal wrote nothing
  expect(cow()).toEqual(cowBefore);
  return s;
}

/** A merging device M over a snapshot A with 4 exceptions, each its own merge step; A removed. */
function merging(h) {
  const a = h.device('A', TABLE);
  for (let i = 0; i < 4; i++) expect(h.write(a, i * 16, sectorBytes(1, 100 + i))).toBe(0);
  const m = h.core.createDevice('M');
  h.load(m, TABLE.replace('snapshot', 'snapshot-merge'));
  h.core.suspend(a);
  h.core.resume(m);
  h.core.removeDevice(a);
  return m;
}

describe('snapshot handover while the source is busy', () => {
  it('is refused while the source merges unsuspended, and the merge step in flight still completes', async () => {
    const { h, cow } = await setup();
    const m = merging(h);
    const step = h.core.takeCommands(); // the merge's first step, not executed yet
    expect(step.length).toBeGreaterThan(0);
    const s = refusedHandover(h, cow);
    // As dm_resume leaves it: S suspended on its new table, which has not taken the store.
    expect(h.core.info(s)).toMatchObject({ state: 'SUSPENDED', hasInactive: false });
    for (const c of step) h.execute(c);
    h.settle();
    expect(h.core.status(m)).toBe('0 64 snapshot-merge 16/128 16\n'); // merged to the end
  });

  it('is refused while the source copies a chunk unsuspended; the source write completes and a retry after suspending it hands over', async () => {
    const { h, cow } = await setup();
    const a = h.device('A', TABLE);
    const tag = h.submit(a, OP.WRITE, 0, 1, h.buffer(sectorBytes(1, 77))); // partial chunk: a copy starts
    const copy = h.core.takeCommands();
    const s = refusedHandover(h, cow);
    for (const c of copy) h.execute(c);
    h.settle();
    expect(h.done.get(tag)).toBe(0);
    expect(h.core.status(a)).toBe('0 64 snapshot 24/128 16\n');
    h.core.suspend(a);
    h.core.resume(s); // the same table, still live on S: its preresume passes now
    expect(h.core.status(s)).toBe('0 64 snapshot 24/128 16\n');
    expect(h.core.status(a)).toBe('0 64 snapshot Invalid\n');
    expect(h.read(s, 0, 1).data[0]).toBe(77);
    expect(h.read(s, 1, 1).data[0]).toBe(2); // the rest of chunk 0 was copied from the origin
  });

  it('refuses to resume the source while a handover from it waits', async () => {
    const { h } = await setup();
    const a = h.device('A', TABLE);
    h.core.suspend(a);
    const s = h.core.createDevice('S');
    h.load(s, TABLE);
    const err = resumeError(h, a);
    expect(err?.code).toBe('EINVAL');
    expect(err?.message).toBe('A: line 1: snapshot: Unable to resume snapshot source until handover completes.');
    h.core.resume(s);
    h.core.resume(a); // the handover is done: A resumes, invalid
    expect(h.core.status(a)).toBe('0 64 snapshot Invalid\n');
  });
});

describe('suspending a merging device', () => {
  it('stops the merge after the step in flight, and a handover waits for that step (EBUSY, nothing changed)', async () => {
    const { h } = await setup();
    const m = merging(h);
    const step = h.core.takeCommands(); // merge I/O outstanding
    h.core.suspend(m);
    const s = h.core.createDevice('S');
    h.load(s, TABLE);
    const err = resumeError(h, s);
    expect(err?.code).toBe('EBUSY');
    expect(err?.message).toBe('S: line 1: snapshot: Unable to perform snapshot handover while the source still has copies in flight; retry when they complete.');
    expect(h.core.info(s)).toMatchObject({ state: 'ACTIVE', hasInactive: true }); // nothing swapped
    for (const c of step) h.execute(c);
    h.settle();
    // One step merged one chunk (the last committed), then the merge stopped: 3 are left.
    expect(h.core.status(m)).toBe('0 64 snapshot-merge 40/128 16\n');
    h.core.resume(s);
    expect(h.core.status(s)).toBe('0 64 snapshot 40/128 16\n');
    expect(h.core.status(m)).toBe('0 64 snapshot-merge Invalid\n');
    for (let i = 0; i < 3; i++) expect(h.read(s, i * 16, 1).data[0]).toBe((100 + i) & 255);
  });

  it('goes on merging when the device resumes', async () => {
    const { h } = await setup();
    const m = merging(h);
    h.core.suspend(m);
    h.settle();
    expect(h.core.status(m)).toBe('0 64 snapshot-merge 40/128 16\n');
    h.core.resume(m);
    h.settle();
    expect(h.core.status(m)).toBe('0 64 snapshot-merge 16/128 16\n');
  });
});
