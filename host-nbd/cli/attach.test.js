// dmkit attach / detach as a user meets them before any kernel is involved: help, usage
// errors, a missing server, a device that is not an NBD device.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const DMKIT = join(import.meta.dirname, '..', '..', 'bin', 'dmkit.js');
const dmkit = (...args) => spawnSync(process.execPath, [DMKIT, ...args], { encoding: 'utf8' });

describe('dmkit attach and detach (command line)', () => {
  it('explain themselves with --help', () => {
    const a = dmkit('attach', '--help');
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/^Usage: dmkit attach NAME \[\/dev\/nbdN\]/);
    expect(a.stdout).toMatch(/--dead-timeout S/);
    const d = dmkit('detach', '--help');
    expect(d.status).toBe(0);
    expect(d.stdout).toMatch(/^Usage: dmkit detach \/dev\/nbdN/);
    expect(dmkit('--help').stdout).toMatch(/attach NAME \[\/dev\/nbdN\]/);
  });

  it('reject bad usage with exit status 2', () => {
    expect(dmkit('attach').status).toBe(2);
    expect(dmkit('detach').status).toBe(2);
    const m = dmkit('attach', 'disk', '--method', 'telepathy');
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/--method must be netlink or ioctl/);
    expect(dmkit('attach', 'disk', '--timeout', '1.5').stderr).toMatch(/--timeout needs a whole number/);
  });

  it('say when no server is running to attach from', () => {
    const r = dmkit('attach', 'disk', '--control', '/nonexistent/control.sock');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no dmkit server is running on control socket \/nonexistent\/control.sock/);
  });

  it('refuse to detach what is not an NBD device', () => {
    const r = dmkit('detach', '/dev/sda');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/'\/dev\/sda' is not an NBD device/);
  });
});
