// @ts-check
// Test and runner support: the demo server plus Debian's Chromium driven by playwright-core,
// with the flags of /work/shared/notes/browser.md and a fresh profile (so a fresh OPFS) unless
// a profile folder is given to reuse (a "reload" across browser restarts).
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemo } from '../serve.js';

export const CHROMIUM = process.env.DMKIT_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function chromiumMissing() {
  return existsSync(CHROMIUM) ? '' : `${CHROMIUM} is missing (apt-get install chromium)`;
}

/**
 * Starts the demo server and a browser on a fresh profile, and opens the page.
 * @param {{viewport?: {width: number, height: number}, profile?: string}} [opts]
 */
export async function openDemo(opts = {}) {
  const demo = await startDemo({ port: 0 });
  const profile = opts.profile ?? await mkdtemp(join(tmpdir(), 'dmkit-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, acceptDownloads: true,
    viewport: opts.viewport ?? { width: 1280, height: 900 },
  });
  /** @type {string[]} */
  const problems = [];
  const watch = (page) => {
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  };
  context.on('page', watch);
  const page = context.pages()[0] ?? await context.newPage();
  watch(page);
  await page.goto(demo.url);
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
  return {
    demo, context, page, profile, problems,
    /** Reloads the page and waits for the worker to have restored everything. */
    async reload() {
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
    },
    async close({ keepProfile = false } = {}) {
      await context.close();
      await demo.close();
      if (!keepProfile && !opts.profile) await rm(profile, { recursive: true, force: true });
    },
  };
}
