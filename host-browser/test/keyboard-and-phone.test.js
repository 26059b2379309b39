// @ts-check
// The page at phone width (390 px) driven with the keyboard only: every control it needs is
// reachable with Tab and works with Enter/typing, nothing scrolls sideways, errors are said
// in words next to the control, and the browser logs no error.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDemo } from './browser.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');

/** @type {Awaited<ReturnType<typeof openDemo>>} */
let s;
/** @type {import('playwright-core').Page} */
let page;

/** Presses Tab until the focus is on `selector` (fails if it never gets there). */
async function tabTo(selector, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

async function noSidewaysScroll() {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  expect(scroll).toBeLessThanOrEqual(width);
}

describe('the demo page with the keyboard at phone width', () => {
  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    s = await openDemo({ viewport: { width: 390, height: 844 } });
    page = s.page;
  }, 60_000);
  afterAll(async () => { if (s) await s.close(); });

  it('creates devices, reads and writes sectors, and says what went wrong', async () => {
    await noSidewaysScroll();
    expect(await page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize))).toBeGreaterThanOrEqual(14);

    // A size that is not one is refused in words.
    await tabTo('#disk-create input[name=name]');
    await page.keyboard.type('data');
    await page.keyboard.press('Tab');
    await page.keyboard.type('lots');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#disk-create output')).toBe("'lots' is not a size (examples: 4096, 64K, 16M, 1G, 2048s)");
    await page.focus('#disk-create input[name=size]');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('1M');
    await page.keyboard.press('Enter');
    await page.waitForSelector('tr[data-disk="data"]');

    await tabTo('#table-form input[name=name]');
    await page.keyboard.type('lin');
    await page.keyboard.press('Tab');
    await page.keyboard.type('0 1024 linear data 0\n1024 1024 zero');
    await expect.poll(() => page.textContent('#table-check')).toBe('✓ valid: 2048 sectors (1 MiB)');
    await tabTo('#table-form button[name=create]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('tr[data-device="lin"]');

    // The device is created over its backing device, which cannot go while it is used.
    await tabTo('button[aria-label="Delete data"]');
    page.once('dialog', (d) => d.accept());
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#disks output.msg')).toBe('backing device data is used by 1 table(s)');

    await tabTo('button[aria-label="Select lin"]');
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('device');

    // Write text over the linear part and read it back as hex and ASCII.
    await tabTo('.sectors form:nth-of-type(2) input[name=sector]');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('2');
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown'); // "text, repeated"
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('dmkit! ');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('.sectors output')).toBe('wrote sectors 0+2');
    await tabTo('.sectors form:nth-of-type(1) button');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('.sectors output')).toBe('read sectors 0+1');
    const hex = /** @type {string} */ (await page.textContent('pre[data-what=hex]'));
    expect(hex.split('\n')[0]).toBe('00000000  64 6d 6b 69 74 21 20 64  |dmkit! d|');

    // A file uploaded into a range; its last partial sector keeps the old bytes after it.
    await page.setInputFiles('.sectors form:nth-of-type(3) input[type=file]', { name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.alloc(600, 'x') });
    await page.fill('.sectors form:nth-of-type(3) input[name=sector]', '0');
    await page.focus('.sectors form:nth-of-type(3) button');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('.sectors output')).toBe('uploaded note.txt (600 bytes) into sectors 0+2');
    await page.fill('.sectors form:nth-of-type(1) input[name=count]', '3');
    await page.focus('.sectors form:nth-of-type(1) button');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('.sectors output')).toBe('read sectors 0+3');
    const rows = /** @type {string} */ (await page.textContent('pre[data-what=hex]')).split('\n');
    // 600 x's (rows of x's collapse to '*'), then the old text from byte 600 = 0x258 on.
    expect(rows.slice(0, 3)).toEqual([
      '00000000  78 78 78 78 78 78 78 78  |xxxxxxxx|',
      '*',
      '00000258  21 20 64 6d 6b 69 74 21  |! dmkit!|',
    ]);
    await page.fill('.sectors form:nth-of-type(1) input[name=count]', '1');

    // A write into the zero segment lands nowhere; past the end the core refuses it.
    await page.fill('.sectors form:nth-of-type(2) input[name=sector]', '2048');
    await page.focus('.sectors form:nth-of-type(2) button');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('.sectors output')).toBe('request for sectors 2048+2 is past the end of lin (2048 sectors)');

    await noSidewaysScroll();
    await page.screenshot({ path: join(SHOTS, 'phone-page.png'), fullPage: true });
    await page.locator('#devices-section').screenshot({ path: join(SHOTS, 'phone-devices.png') });
    await page.locator('#device .sectors').screenshot({ path: join(SHOTS, 'phone-sectors.png') });
    await page.locator('#log details').first().locator('summary').focus();
    await page.keyboard.press('Enter');
    await noSidewaysScroll();
    await page.locator('#log-section').screenshot({ path: join(SHOTS, 'phone-log.png') });
    expect(s.problems).toEqual([]);
  }, 120_000);

  it('runs every golden vector from the button and says how many passed', async () => {
    const { readdir } = await import('node:fs/promises');
    const cases = (await readdir(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'vectors', 'cases'))).filter((f) => f.endsWith('.vec'));
    await tabTo('#run-vectors');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#vectors-summary'), { timeout: 240_000 }).toMatch(/^\d+ passed, \d+ failed$/);
    const [passed, failed] = (/** @type {string} */ (await page.textContent('#vectors-summary'))).match(/\d+/g)?.map(Number) ?? [];
    expect(passed + failed).toBe(cases.length);
    expect(await page.locator('#vector-results li[data-status=pass]').count()).toBe(passed);
    await page.locator('#vectors-section').screenshot({ path: join(SHOTS, 'phone-vectors.png') });
    expect(s.problems).toEqual([]);
  }, 300_000);
});
