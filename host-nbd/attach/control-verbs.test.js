// What reaches the attach manager from the control socket and from `serve --attach`: checked
// arguments only, and the manager's answers passed back as the CLI prints them.
import { describe, it, expect } from 'vitest';
import { attachVerbs } from './control-verbs.js';
import { parseAttachSpec } from './serve-hooks.js';

function fakeManager() {
  const calls = [];
  const attached = { path: '/dev/nbd2', detach: async (o) => calls.push(['detach', o]) };
  return {
    calls,
    attach: async (name, opts) => { calls.push(['attach', name, opts]); return attached; },
    get: (device) => (device === '/dev/nbd2' ? attached : null),
    list: () => [{ device: '/dev/nbd2', export: 'disk', method: 'netlink', connections: 2 }],
  };
}

describe('attach control verbs', () => {
  it('pass attach options through and answer with the device', async () => {
    const m = fakeManager();
    const verbs = attachVerbs(/** @type {any} */ (m));
    expect(await verbs.attach({ name: 'disk', device: '/dev/nbd2', connections: 1, timeout: 5 })).toBe('/dev/nbd2');
    expect(m.calls[0]).toEqual(['attach', 'disk',
      { device: '/dev/nbd2', method: undefined, connections: 1, blockSize: undefined, timeout: 5, deadTimeout: undefined }]);
    await expect(verbs.attach({ name: 'disk', connections: '2' })).rejects.toThrow(/connections must be a number/);
    await expect(verbs.attach({})).rejects.toThrow(/needs a device name/);
  });

  it('detach only devices this server attached, and list them', async () => {
    const m = fakeManager();
    const verbs = attachVerbs(/** @type {any} */ (m));
    expect(await verbs.detach({ device: '/dev/nbd2' })).toBe('/dev/nbd2: flushed and detached');
    await expect(verbs.detach({ device: '/dev/nbd3' })).rejects.toThrow(/not attached by this server/);
    expect(await verbs.attachments()).toBe('/dev/nbd2\tdisk\tnetlink, 2 connections');
  });
});

describe('serve --attach', () => {
  it('takes NAME or NAME=/dev/nbdN', () => {
    expect(parseAttachSpec('disk')).toEqual({ name: 'disk', device: undefined });
    expect(parseAttachSpec('disk=/dev/nbd4')).toEqual({ name: 'disk', device: '/dev/nbd4' });
    expect(() => parseAttachSpec('=/dev/nbd4')).toThrow(/expects NAME or NAME=\/dev\/nbdN/);
    expect(() => parseAttachSpec('disk=')).toThrow(/expects NAME or NAME=\/dev\/nbdN/);
  });
});
