// Image locks (image-locks.js): one dmkit process per image file, however often that process
// has it open. Another process is a child trying the addon's lockFile on the same file.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDON_PATH } from '../addon/build.js';
import { loadImageLocks } from './image-locks.js';
import { FileBacking } from './file-backing.js';
import { tempDir } from '../../test/nbd/helpers.js';

// The rule every addon user follows (addon/built.js): an addon missing or older than its sources
// is not loaded. The tests that need it skip, saying why, rather than try a stale one.
const { locks, why } = loadImageLocks();
const needsAddon = `needs the native addon: ${why}`;

/** Whether another process could lock `path` now (called only once the addon was found usable). */
function otherProcessCanLock(path) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON_PATH)}).lockFile(${JSON.stringify(path)})`], { encoding: 'utf8' });
  if (r.status !== 0 && !/EWOULDBLOCK|EAGAIN|Resource temporarily unavailable/.test(r.stderr)) throw new Error(r.stderr);
  return r.status === 0;
}

function image() {
  const path = join(tempDir(), 'd.img');
  writeFileSync(path, Buffer.alloc(64 * 1024));
  return path;
}

describe('image locks', () => {
  it('are available (the addon is built by npm install; without it images are not locked)', () => {
    expect(why).toBe(null);
  });

  it('a file open twice in this process is locked once: a file closed after its last command does not lock out its reopening', (ctx) => {
    ctx.skip(!locks, needsAddon);
    const path = image();
    const retiring = FileBacking.open(path, { locks });
    const reopened = FileBacking.open(path, { locks }); // a new table, before the old file's last command ended
    expect(otherProcessCanLock(path)).toBe(false);
    retiring.close();
    expect(otherProcessCanLock(path)).toBe(false); // still held for the file open now
    reopened.close();
    expect(otherProcessCanLock(path)).toBe(true);
  });

  it('read-only opens take no lock, and a file another process locked is refused with its name', (ctx) => {
    ctx.skip(!locks, needsAddon);
    const path = image();
    const ro = FileBacking.open(path, { locks, readOnly: true });
    expect(otherProcessCanLock(path)).toBe(true);
    ro.close();
    // flock(1) holds the lock while a second process tries to open the image for writing.
    const url = (f) => JSON.stringify(new URL(f, import.meta.url).href);
    const held = spawnSync('flock', ['-n', path, process.execPath, '--input-type=module', '-e',
      `import { FileBacking } from ${url('./file-backing.js')}; import { loadImageLocks } from ${url('./image-locks.js')};
       try { FileBacking.open(${JSON.stringify(path)}, { locks: loadImageLocks().locks }); console.log('opened'); }
       catch (e) { console.log(e.message); }`], { encoding: 'utf8' });
    expect(held.stdout).toMatch(/d\.img: in use by another process, which holds a lock on it/);
  });
});
