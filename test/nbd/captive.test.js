// dmkit started by other people's tools as a captive server, as nbdkit is: --stdio (libnbd's
// connect_command) and systemd socket activation (nbdinfo [ ... ], connect_systemd_socket_activation).
import { describe, it, expect, beforeAll } from 'vitest';
import { openSync, ftruncateSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { tempDir, ok, nbdsh, DMKIT, testBytes } from './helpers.js';

describe('captive server', () => {
  let dir, img, serve;
  beforeAll(() => {
    dir = tempDir();
    img = join(dir, 'd.img');
    const fd = openSync(img, 'w');
    ftruncateSync(fd, 16 << 20);
    closeSync(fd);
    serve = [process.execPath, DMKIT, 'serve', '--device', 'disk', `0 32768 linear ${img} 0`];
  });

  it('nbdinfo [ dmkit serve ... ] (socket activation) prints clean JSON on stdout', async () => {
    const out = await ok('nbdinfo', ['--json', '--', '[', ...serve, ']']);
    const info = JSON.parse(out);
    expect(info.exports[0]['export-name']).toBe('disk');
    expect(info.exports[0]['export-size']).toBe(16 << 20);
  });

  it('nbdsh connect_command with --stdio: one connection on stdin/stdout', async () => {
    const cmd = JSON.stringify([...serve, '--stdio']);
    const out = await nbdsh(null, `h.connect_command(${cmd}); h.pwrite(b"s" * 4096, 8192); h.flush(); print(h.pread(4096, 8192) == b"s" * 4096, h.get_size())`);
    expect(out.trim()).toBe(`True ${16 << 20}`);
    expect(readFileSync(img).subarray(8192, 8192 + 4096).every((x) => x === 0x73)).toBe(true);
  });

  it('nbdsh connect_systemd_socket_activation, several connections to one server', async () => {
    const cmd = JSON.stringify(serve);
    const out = await nbdsh(null, [
      `h.connect_systemd_socket_activation(${cmd})`,
      'h.pwrite(b"t" * 512, 0)',
      'print(h.pread(512, 0) == b"t" * 512, h.can_multi_conn())',
    ].join('\n'));
    expect(out.trim()).toBe('True True');
  });

  it('nbdcopy copies into and out of captive servers', async () => {
    const src = join(dir, 'src.bin');
    const back = join(dir, 'back.bin');
    const data = testBytes(16 << 20, 5);
    writeFileSync(src, data);
    await ok('nbdcopy', ['--', src, '[', ...serve, ']']);
    await ok('nbdcopy', ['--', '[', ...serve, ']', back]);
    expect(Buffer.compare(readFileSync(back), data)).toBe(0);
  });

  it('--stdio refuses a terminal or file on stdin with a clear message', async () => {
    const nullFd = openSync('/dev/null', 'r');
    const r = await new Promise((resolve) => {
      const child = spawn(process.execPath, [...serve.slice(1), '--stdio'], { stdio: [nullFd, 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    closeSync(nullFd);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/dmkit serve: --stdio needs a socket or pipe on stdin/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
