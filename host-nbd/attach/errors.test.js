// Kernel errors become sentences that say what to do.
import { describe, it, expect } from 'vitest';
import { explain, AttachError, MODULE_HINT } from './errors.js';

function sysError(code, syscall) {
  return Object.assign(new Error(`${syscall}: something`), { code, syscall });
}

describe('explain', () => {
  it('says to load the module when the netlink family is missing', () => {
    expect(explain(sysError('ENOENT', "resolve generic netlink family 'nbd'"), '').message).toBe(MODULE_HINT);
    expect(MODULE_HINT).toMatch(/modprobe nbd/);
  });

  it('says root is needed when the kernel refuses permission', () => {
    const e = explain(sysError('EPERM', 'NBD_CMD_CONNECT'), '/dev/nbd0');
    expect(e.message).toMatch(/needs root/);
    expect(e.code).toBe('EPERM');
    expect(explain(sysError('EACCES', 'open /dev/nbd0'), '/dev/nbd0').message).toMatch(/needs root/);
  });

  it('says a busy device is busy, naming it', () => {
    expect(explain(sysError('EBUSY', 'NBD_CMD_CONNECT'), '/dev/nbd3').message).toMatch(/^\/dev\/nbd3 is busy/);
  });

  it('points at the kernel log when the kernel refuses a request', () => {
    expect(explain(sysError('EINVAL', 'NBD_CMD_CONNECT'), '/dev/nbd1').message).toMatch(/dmesg/);
  });

  it('passes its own errors through unchanged', () => {
    const mine = new AttachError('already clear');
    expect(explain(mine, '/dev/nbd0')).toBe(mine);
  });
});
