// The control socket's account of an internal failure: a bug (here a stack overflow inside the
// scan of a table's devices) answers the client with its message and leaves its stack in the
// error log, which `serve --quiet` keeps (the VM runners read it when a vector fails).
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, chmodSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { startControlServer } from './server.js';
import { controlRequest } from './client.js';
import { AttachError, MODULE_HINT } from '../attach/errors.js';

const cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()();
});

async function quietServer() {
  const dir = mkdtempSync(join(tmpdir(), 'dmkit-control-'));
  const registry = await DeviceRegistry.create();
  const info = [];
  const errors = [];
  const control = await startControlServer(registry, join(dir, 'control.sock'), (l) => info.push(l), {}, (l) => errors.push(l));
  cleanups.push(async () => { await control.close(); await registry.close(); rmSync(dir, { recursive: true, force: true }); });
  return { registry, path: control.path, info, errors };
}

describe('control socket: internal failures', () => {
  it('a stack overflow while opening a table\'s devices names the device and logs its stack as an error', async () => {
    const { registry, path, errors } = await quietServer();
    const recurse = () => recurse();
    registry.core.tableDeps = function tableDepsOverflowing() { return recurse(); };
    const failure = await controlRequest(path, { cmd: 'create', name: 'a', table: '0 8 zero' }).catch((e) => e);
    expect(failure.message).toBe('a: Maximum call stack size exceeded');
    const logged = errors.find((l) => l.startsWith('control: create failed: RangeError'));
    expect(logged).toBeDefined();
    expect(logged).toMatch(/tableDepsOverflowing|recurse/); // the stack says where it happened
  });

  it('a refusal by the core is an answer, not an error in the log', async () => {
    const { path, errors } = await quietServer();
    const failure = await controlRequest(path, { cmd: 'create', name: 'a', table: '0 8 nosuchtarget' }).catch((e) => e);
    expect(failure.code).toBe('EINVAL');
    expect(errors).toEqual([]);
  });
});

describe('control socket: refusals of other verbs', () => {
  it('an attach refused in words for the user is an answer, not a stack in the error log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dmkit-control-'));
    const registry = await DeviceRegistry.create();
    const errors = [];
    const verbs = { attach: async () => { throw new AttachError(MODULE_HINT); } };
    const control = await startControlServer(registry, join(dir, 'control.sock'), () => {}, verbs, (l) => errors.push(l));
    cleanups.push(async () => { await control.close(); await registry.close(); rmSync(dir, { recursive: true, force: true }); });
    const failure = await controlRequest(control.path, { cmd: 'attach', name: 'a' }).catch((e) => e);
    expect(failure.message).toBe(MODULE_HINT);
    expect(errors).toEqual([]);
  });
});

describe('control socket: its directory', () => {
  async function startIn(dir, remove = dir) {
    const registry = await DeviceRegistry.create();
    cleanups.push(async () => { await registry.close(); rmSync(remove, { recursive: true, force: true }); });
    const control = await startControlServer(registry, join(dir, 'control.sock'), () => {});
    cleanups.push(() => control.close());
    return control;
  }
  const fresh = () => mkdtempSync(join(tmpdir(), 'dmkit-control-dir-'));

  it('refuses a directory others can write to (they could swap the socket)', async () => {
    const dir = fresh();
    chmodSync(dir, 0o777);
    await expect(startIn(dir)).rejects.toThrow(`control socket directory ${dir} is writable by others (mode 0777)`);
  });

  it('refuses a directory that belongs to another user', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip(); // giving a directory away needs root
    const dir = fresh();
    chownSync(dir, 65534, 65534);
    await expect(startIn(dir)).rejects.toThrow(`belongs to uid 65534, not to you (uid 0)`);
  });

  it('accepts a private directory it creates, and a shared one with the sticky bit (as /tmp)', async () => {
    const parent = fresh();
    await startIn(join(parent, 'made'), parent);
    const sticky = fresh();
    chmodSync(sticky, 0o1777);
    const control = await startIn(sticky);
    await expect(controlRequest(control.path, { cmd: 'ls' })).resolves.toBeDefined();
  });
});

describe('control socket: dmsetup wait', () => {
  it('a client that stops waiting takes its waiter with it; one still connected is woken', async () => {
    const { registry, path, errors } = await quietServer();
    await registry.create('z', '0 8 zero');
    const { connect } = await import('node:net');
    const waitFrom = () => {
      const sock = connect(path);
      sock.write(JSON.stringify({ cmd: 'wait', name: 'z', eventNr: 0 }) + '\n');
      return sock;
    };
    const leaving = waitFrom();
    const staying = waitFrom();
    const answer = new Promise((resolve) => staying.once('data', (d) => resolve(JSON.parse(String(d)))));
    const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5)); };
    await until(() => registry.eventWaiters.length === 2);
    expect(registry.eventWaiters.length).toBe(2);
    leaving.destroy();
    await until(() => registry.eventWaiters.length === 1);
    expect(registry.eventWaiters.length).toBe(1);
    await registry.remove('z'); // wakes the one left, with the reason
    expect(await answer).toMatchObject({ ok: false, error: 'z was removed while waiting for an event' });
    expect(registry.eventWaiters.length).toBe(0);
    staying.destroy();
    expect(errors).toEqual([]);
  });
});
