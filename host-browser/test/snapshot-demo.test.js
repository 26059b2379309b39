// @ts-check
// The demo driven as a person would (issue 7's proof): backing devices and tables typed into the
// page, an origin and a persistent snapshot, writes through the origin watched on the chunk map
// (slow motion shows "being copied"), the snapshot still reading the old data, everything back
// after a reload, and the COW image exported as a download that `dmkit snapshot inspect` reads.
// Screenshots go to host-browser/test/screenshots/ for people to look at.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDemo } from './browser.js';
import { pattern } from '../../test/vectors/lib/pattern.js';
import { hexDump, collapseRepeats } from '../page/hex-view.js';

const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(here, 'screenshots');
const DMKIT = join(here, '..', '..', 'bin', 'dmkit.js');
const run = promisify(execFile);

/** @type {Awaited<ReturnType<typeof openDemo>>} */
let s;
/** @type {import('playwright-core').Page} */
let page;

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function createDisk(name, size) {
  await page.fill('#disk-create input[name=name]', name);
  await page.fill('#disk-create input[name=size]', size);
  await page.click('#disk-create button');
  await page.waitForSelector(`tr[data-disk="${name}"]`);
}

async function createDevice(name, table) {
  await page.fill('#table-form input[name=name]', name);
  await page.fill('#table-text', table);
  await expect.poll(() => page.textContent('#table-check')).toMatch(/^✓ valid/);
  await page.click('#table-form button[name=create]');
  await page.waitForSelector(`tr[data-device="${name}"]`);
}

/** Reads sectors of the selected device through the page and returns the hex view's text. */
async function readHex(sector, count) {
  const form = page.locator('.sectors form').nth(0);
  await form.locator('input[name=sector]').fill(String(sector));
  await form.locator('input[name=count]').fill(String(count));
  await form.locator('button').click();
  await expect.poll(() => page.textContent('.sectors output')).toBe(`read sectors ${sector}+${count}`);
  return page.$eval('pre[data-what=hex]', (p) => ({ text: p.textContent, perRow: Number(p.dataset.perRow) }));
}

async function write(sector, count, fill, value) {
  const form = page.locator('.sectors form').nth(1);
  await form.locator('input[name=sector]').fill(String(sector));
  await form.locator('input[name=count]').fill(String(count));
  await form.locator('select[name=fill]').selectOption(fill);
  await form.locator('input[name=value]').fill(value);
  await form.locator('button').click();
  await expect.poll(() => page.textContent('.sectors output')).toBe(`wrote sectors ${sector}+${count}`);
}

async function select(name) {
  await page.click(`button[aria-label="Select ${name}"]`);
  await page.waitForSelector(`#device-h:text("Device ${name}")`);
}

const chunkCounts = () => page.$eval('canvas.chunks', (c) => ({ copied: Number(c.dataset.copied), copying: Number(c.dataset.copying) }));
const copiedChunks = (dev) => page.evaluate((d) => {
  const m = /** @type {any} */ (window).dmkit.app.maps.get(d);
  return m ? Array.from(m.state).flatMap((v, i) => (v === 2 ? [i] : [])) : null;
}, dev);

/** Checks the hex view against pattern(5) at these sectors (the data from before the snapshot). */
async function expectOldData(sector, count) {
  const { text, perRow } = await readHex(sector, count);
  expect(text).toBe(collapseRepeats(hexDump(pattern(5, 64 * 512).subarray(sector * 512, (sector + count) * 512), sector, perRow)));
}

describe('the demo page with a snapshot', () => {
  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    s = await openDemo();
    page = s.page;
    page.on('dialog', (d) => d.accept());
  }, 60_000);
  afterAll(async () => { if (s) await s.close(); });

  it('creates an origin and a snapshot, and the chunk map follows writes through the origin', async () => {
    await createDisk('base', '4M');
    await createDisk('cow', '2M');
    await shot('01-disks');

    // The table editor checks as one types, with the core's own message.
    await page.fill('#table-form input[name=name]', 'origin');
    await page.fill('#table-text', '0 8192 linear base');
    await expect.poll(() => page.textContent('#table-check'))
      .toBe('origin: line 1: linear: invalid argument count: expected <dev> <offset>, got 1 arguments');
    await shot('02-validation-error');

    await createDevice('origin', '0 8192 snapshot-origin base');
    await select('origin');
    await write(0, 64, 'seed', '5'); // the data the snapshot will keep: pattern(5), no snapshot yet

    await createDevice('snap', '0 8192 snapshot base cow P 8');
    await select('snap');
    expect(await chunkCounts()).toEqual({ copied: 0, copying: 0 });

    await select('origin');
    await write(8, 16, 'byte', 'ab'); // chunks 1 and 2 (8 sectors each)
    await select('snap');
    await expect.poll(chunkCounts).toEqual({ copied: 2, copying: 0 });
    expect(await copiedChunks('snap')).toEqual([1, 2]);
    expect((await page.textContent('pre[data-what=status]'))?.trim()).toBe('0 8192 snapshot 32/4096 16');

    // The snapshot still reads what was there; the origin reads the new bytes.
    await expectOldData(8, 16);
    await select('origin');
    const now = await readHex(8, 1);
    expect(now.text).toBe(collapseRepeats(hexDump(new Uint8Array(512).fill(0xab), 8, now.perRow)));

    // In slow motion the copy of chunk 5 is seen in flight, then landed.
    await page.fill('#delay', '400');
    await page.dispatchEvent('#delay', 'input');
    await page.locator('.sectors form').nth(1).locator('input[name=sector]').fill('40');
    await page.locator('.sectors form').nth(1).locator('input[name=count]').fill('1');
    await page.locator('.sectors form').nth(1).locator('button').click();
    await select('snap');
    await expect.poll(chunkCounts, { timeout: 10_000, intervals: [50] }).toEqual({ copied: 2, copying: 1 });
    await shot('03-being-copied');
    await expect.poll(chunkCounts, { timeout: 10_000 }).toEqual({ copied: 3, copying: 0 });
    await page.fill('#delay', '0');
    await page.dispatchEvent('#delay', 'input');
    expect(await copiedChunks('snap')).toEqual([1, 2, 5]);

    // The I/O log shows the write split into the copy and the request's own data.
    const writes = page.locator('#log details[data-op="WRITE"][data-dev="origin"]');
    await expect.poll(() => writes.count()).toBe(3);
    const entry = writes.first();
    await entry.locator('summary').click();
    const roles = await entry.locator('tbody td:nth-child(4)').allTextContents();
    expect(roles).toContain('copy, read origin chunk 5');
    expect(roles).toContain('snap: copy, write to COW chunk 4');
    expect(roles.some((r) => r.startsWith('snap: metadata area 0'))).toBe(true);
    expect(roles.some((r) => r.startsWith('request data'))).toBe(true);
    await select('snap');
    await shot('04-snapshot');
    expect(s.problems).toEqual([]);
  }, 120_000);

  it('finds everything again after a reload', async () => {
    await s.reload();
    expect(await page.$$eval('tr[data-device]', (rows) => rows.map((r) => /** @type {HTMLElement} */ (r).dataset.device))).toEqual(['origin', 'snap']);
    await select('snap');
    await expect.poll(chunkCounts).toEqual({ copied: 3, copying: 0 });
    expect(await copiedChunks('snap')).toEqual([1, 2, 5]);
    await expectOldData(8, 16);
    const ids = await page.$$eval('#log details', (ds) => ds.map((d) => /** @type {HTMLElement} */ (d).dataset.entry));
    expect(new Set(ids).size).toBe(ids.length);
    await expectOldData(40, 1);
    await shot('05-after-reload');
    expect(s.problems).toEqual([]);
  }, 60_000);

  it('exports the COW image, which dmkit snapshot inspect reads, and imports it back', async () => {
    const download = page.waitForEvent('download');
    await page.click('button[aria-label="Export cow"]');
    const file = join(s.profile, 'cow-export.img');
    await (await download).saveAs(file);
    const { stdout } = await run(process.execPath, [DMKIT, 'snapshot', 'inspect', file, '--json']);
    const info = JSON.parse(stdout);
    expect(info.valid).toBe(true);
    expect(info.chunkSize).toBe(8);
    expect(info.exceptions).toEqual([{ old: 1, new: 2 }, { old: 2, new: 3 }, { old: 5, new: 4 }]);
    expect(info.usage).toEqual({ allocated: 40, total: 4096, metadata: 16 });

    // A mapped device exports as it reads: the snapshot's export holds the old data.
    await select('snap');
    const snapDownload = page.waitForEvent('download');
    await page.click('#device button:text("Export device")');
    const snapFile = join(s.profile, 'snap-export.img');
    await (await snapDownload).saveAs(snapFile);
    const snapBytes = await readFile(snapFile);
    expect(snapBytes.length).toBe(8192 * 512);
    expect(Buffer.compare(snapBytes.subarray(0, 64 * 512), Buffer.from(pattern(5, 64 * 512)))).toBe(0);

    // The image comes back in as a new backing device and opens as a snapshot of the same origin.
    await page.setInputFiles('#disk-import input[type=file]', file);
    await page.fill('#disk-import input[name=name]', 'cow2');
    await page.click('#disk-import button');
    await page.waitForSelector('tr[data-disk="cow2"]');
    await createDevice('snap2', '0 8192 snapshot base cow2 P 8');
    await select('snap2');
    await expect.poll(chunkCounts).toEqual({ copied: 3, copying: 0 });
    await expectOldData(8, 16);
    expect(s.problems).toEqual([]);
  }, 60_000);

  it("a COW device that fills up: the snapshot goes Invalid and the I/O log shows the kernel's reason under the write that did it", async () => {
    await createDisk('tiny', '8K'); // a header chunk and a metadata chunk: no room for a copy
    await createDevice('full', '0 8192 snapshot base tiny P 8');
    await select('origin');
    await write(96, 1, 'byte', 'cd'); // chunk 12: a first write for every snapshot of base
    await select('full');
    await expect.poll(async () => (await page.textContent('pre[data-what=status]'))?.trim()).toBe('0 8192 snapshot Invalid');
    const entry = page.locator('#log details[data-op="WRITE"][data-dev="origin"]').first();
    await expect.poll(() => entry.locator('[data-what=kernel-log]').allTextContents())
      .toEqual(['kernel log: full: snapshot: Invalidating snapshot: Unable to allocate exception.']);
    await shot('06-cow-full');
    expect(s.problems).toEqual([]);
  }, 60_000);
});
