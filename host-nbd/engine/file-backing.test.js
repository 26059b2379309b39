// When a flush of a file backing really calls fdatasync: whenever a write completed since the
// last fdatasync that succeeded began, on the first flush after opening and after any failure;
// never when such an fdatasync already covers every completed write (that one is shared).
// Receive threads' writes count as completed from the addon's count of them (threadWrites).
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { FileBacking } from './file-backing.js';
import { tempDir } from '../../test/temp-dir.js';

const KiB = 1024;
/** @type {FileBacking[]} */
let open = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const f of open) f.close();
  open = [];
});

/** @param {{threadWrites?: {count: () => number} | null}} [opts] */
function backing(opts = {}) {
  const dir = tempDir('dmkit-file-backing-');
  const path = join(dir, 'img');
  fs.writeFileSync(path, Buffer.alloc(256 * KiB));
  const f = FileBacking.open(path, opts);
  open.push(f);
  return f;
}

/** Counts fdatasync calls; `hold` keeps their completions until release() is called. */
function watchSyncs({ hold = false, fail = false } = {}) {
  const calls = { n: 0, held: /** @type {Array<() => void>} */ ([]) };
  const real = fs.fdatasync;
  vi.spyOn(fs, 'fdatasync').mockImplementation((fd, cb) => {
    calls.n++;
    const finish = (/** @type {NodeJS.ErrnoException | null} */ e) => cb(fail ? Object.assign(new Error('EIO (test)'), { code: 'EIO' }) : e);
    if (hold) real(fd, (e) => calls.held.push(() => finish(e)));
    else real(fd, finish);
  });
  return calls;
}

const flush = (f) => new Promise((resolve) => f.flush(resolve));
const write = (f, at, bytes) => new Promise((resolve, reject) => {
  const buf = Buffer.alloc(bytes, 7);
  f.write(buf, 0, bytes, at, (e) => (e ? reject(e) : resolve(undefined)));
});
const until = async (cond) => { while (!cond()) await new Promise((r) => setTimeout(r, 1)); };
/** A flush whose fdatasync (the nth held by watchSyncs) is let go as soon as it starts. */
const flushLetGo = async (f, calls, nth) => {
  const done = flush(f);
  await until(() => calls.held.length === nth);
  calls.held[nth - 1]();
  await done;
};

describe('file backing flushes', () => {
  it('the first flush after opening syncs; a second with nothing written since does not', async () => {
    const f = backing();
    const calls = watchSyncs();
    expect(await flush(f)).toBe(null);
    expect(calls.n).toBe(1);
    expect(await flush(f)).toBe(null);
    expect(calls.n).toBe(1);
  });

  it('a write completed since the last fdatasync makes the next flush sync', async () => {
    const f = backing();
    const calls = watchSyncs();
    await flush(f);
    await write(f, 0, 4 * KiB);
    await flush(f);
    expect(calls.n).toBe(2);
    await write(f, 128 * KiB, 128 * KiB); // a large write: through the thread pool
    await flush(f);
    await flush(f);
    expect(calls.n).toBe(3);
  });

  it('a flush while an fdatasync covering every write runs waits for that one', async () => {
    const f = backing();
    const calls = watchSyncs({ hold: true });
    await write(f, 0, 4 * KiB);
    const done = [];
    f.flush((e) => done.push(['first', e]));
    f.flush((e) => done.push(['second', e]));
    await until(() => calls.held.length === 1);
    expect(calls.n).toBe(1);
    expect(done).toEqual([]); // neither completes before the fdatasync does
    calls.held[0]();
    expect(done).toEqual([['first', null], ['second', null]]);
  });

  it('a write completed while an fdatasync runs is not covered by it', async () => {
    const f = backing();
    const calls = watchSyncs({ hold: true });
    await write(f, 0, 4 * KiB);
    const first = flush(f);
    await until(() => calls.held.length === 1);
    await write(f, 4 * KiB, 4 * KiB); // lands after that fdatasync began
    calls.held[0]();
    await first;
    await flushLetGo(f, calls, 2);
    await flush(f); // the second one covered both writes
    expect(calls.n).toBe(2);
  });

  it('after a failed fdatasync every flush syncs and reports what fdatasync says', async () => {
    const f = backing();
    const failing = watchSyncs({ fail: true });
    await write(f, 0, 4 * KiB);
    expect(/** @type {any} */ (await flush(f))?.code).toBe('EIO');
    vi.restoreAllMocks();
    const calls = watchSyncs();
    expect(await flush(f)).toBe(null);
    expect(await flush(f)).toBe(null);
    expect(failing.n + calls.n).toBe(3);
  });
});

describe('file backing flushes with receive threads writing the file', () => {
  /** A file threads may write, and the addon's count of their writes (here in the test's hands). */
  function threadWritable(counted = true) {
    const threads = { n: 0, count: () => threads.n };
    const f = backing({ threadWrites: counted ? threads : null });
    f.threadWritable = true;
    return { f, threads };
  }

  it('a flush syncs when a thread completed a write since the last fdatasync began, else not', async () => {
    const { f, threads } = threadWritable();
    const calls = watchSyncs();
    await flush(f);
    threads.n++; // a thread wrote and replied
    await flush(f);
    expect(calls.n).toBe(2);
    await flush(f);
    expect(calls.n).toBe(2);
    threads.n++;
    await flush(f);
    expect(calls.n).toBe(3);
  });

  it('a thread write counted while an fdatasync runs is not covered by it', async () => {
    const { f, threads } = threadWritable();
    const calls = watchSyncs({ hold: true });
    const first = flush(f);
    await until(() => calls.held.length === 1);
    threads.n++;
    calls.held[0]();
    await first;
    await flushLetGo(f, calls, 2);
    expect(calls.n).toBe(2);
  });

  it('the event loop hearing of a thread write it counted already (DeviceExport.threadWrote) costs no fdatasync', async () => {
    const { f, threads } = threadWritable();
    const calls = watchSyncs();
    threads.n++;
    await flush(f);
    f.threadWriteHeard(); // as threadWrote does
    expect(f.writesDone).toBe(1);
    await flush(f);
    expect(calls.n).toBe(1);
  });

  it('without the addon\'s count every flush syncs, and after a failed fdatasync too', async () => {
    const { f } = threadWritable(false);
    const calls = watchSyncs();
    await flush(f);
    await flush(f);
    expect(calls.n).toBe(2);
    f.threadWriteHeard(); // threadWrote: counted here then
    expect(f.writesDone).toBe(1);
    vi.restoreAllMocks();
    const counted = threadWritable();
    const failing = watchSyncs({ fail: true });
    expect(/** @type {any} */ (await flush(counted.f))?.code).toBe('EIO');
    expect(/** @type {any} */ (await flush(counted.f))?.code).toBe('EIO');
    expect(failing.n).toBe(2);
  });
});
