// @ts-check
// The page: starts the worker, keeps the panels in step with what it reports, and exposes
// window.dmkit (the state and a few calls) for the test runners that drive this page.
import { WorkerClient } from './worker-client.js';
import { AppContext } from './app-context.js';
import { h, rerender } from './dom.js';
import { setupDisks } from './disks-panel.js';
import { setupDevices } from './devices-panel.js';
import { setupDeviceView } from './device-view.js';
import { setupIoLog } from './io-log-view.js';
import { setupVectors } from './vectors-panel.js';

const client = new WorkerClient(new Worker(new URL('worker.js', import.meta.url), { type: 'module' }));
const app = /** @type {AppContext & Record<string, any>} */ (new AppContext(client));

const notices = /** @type {HTMLElement} */ (document.getElementById('notices'));
const renderNotices = () => rerender(notices, app.state.notices.map((n) => h('p.notice', { role: 'note' }, n)));
app.onChange(renderNotices);

app.select = (name, focus = false) => {
  app.selected = name;
  if (name) localStorage.setItem('dmkit-selected', name); else localStorage.removeItem('dmkit-selected');
  app.render();
  if (focus) document.getElementById('device')?.focus();
};

setupDisks(app);
setupDevices(app);
setupDeviceView(app);
setupIoLog(app);
setupVectors(app);

client.on('changed', (s) => {
  Object.assign(app.state, { disks: s.disks, devices: s.devices, notices: s.notices, stepDelayMs: s.stepDelayMs });
  if (app.selected && !app.device(app.selected)) app.selected = null;
  app.render();
});
client.on('progress', (p) => {
  for (const m of p.maps) app.maps.set(m.dev, m);
  if (p.maps.length) app.renderMap();
  app.addLogEntries(p.entries);
});

// The slow-motion control.
const delay = /** @type {HTMLInputElement} */ (document.getElementById('delay'));
const delayOut = /** @type {HTMLOutputElement} */ (document.getElementById('delay-out'));
delay.addEventListener('input', () => {
  delayOut.value = `${delay.value} ms`;
  client.call('setStepDelay', { ms: Number(delay.value) }).catch((e) => { delayOut.value = `not set: ${e.message}`; });
});

async function askPersistence() {
  const storage = /** @type {HTMLElement} */ (document.getElementById('storage'));
  let persisted = await navigator.storage.persisted();
  if (!persisted && navigator.storage.persist) persisted = await navigator.storage.persist();
  const { usage = 0, quota = 0 } = await navigator.storage.estimate();
  storage.textContent = (persisted
    ? 'Storage is persistent: the browser will not clear these devices on its own.'
    : 'Storage is best-effort (the browser did not grant persistence): under storage pressure it may clear these devices. Export what you need to keep.')
    + ` Using ${(usage / 2 ** 20).toFixed(1)} MiB of ${(quota / 2 ** 30).toFixed(1)} GiB.`;
}

const ready = new Promise((resolve, reject) => {
  client.on('ready', async () => {
    const s = await client.call('state');
    Object.assign(app.state, { disks: s.disks, devices: s.devices, notices: s.notices, stepDelayMs: s.stepDelayMs });
    for (const m of s.maps) app.maps.set(m.dev, m);
    app.addLogEntries(s.log);
    const last = localStorage.getItem('dmkit-selected');
    app.selected = last && app.device(last) ? last : null;
    app.render();
    await askPersistence().catch((e) => {
      /** @type {HTMLElement} */ (document.getElementById('storage')).textContent = `Could not check storage persistence: ${e.message}`;
    });
    document.body.dataset.ready = 'true';
    resolve(undefined);
  });
  client.on('failed', (m) => {
    rerender(notices, h('p.notice', { role: 'alert' }, m.message));
    reject(new Error(m.message));
  });
});

// For the test runners (vectors, benchmark) that drive this page from Playwright.
ready.catch(() => {}); // shown as a notice above
/** @type {any} */ (window).dmkit = { app, ready, call: (method, args) => client.call(method, args) };
