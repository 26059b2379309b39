// The dmkit serve command as a user meets it: the README's example, the embedded default
// (origin + snapshot in a data folder, created on first start, reused after), TCP with the
// attach instructions it prints, clean exit on SIGINT/SIGTERM, and one-line startup errors.
import { describe, it, expect, afterAll, onTestFinished } from 'vitest';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, statSync, mkdirSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, ok, run, dmkit, nbdsh, DMKIT, ROOT, CLIENT_ENV, stopAllServers } from './helpers.js';
import { defaultSetup } from '../../host-nbd/devices/defaults.js';
import { makePki } from '../reliability/lib/pki.js';

describe('dmkit serve', () => {
  it('the README example works as written (paths moved to a private folder)', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const line = readme.split('\n').find((l) => l.startsWith('truncate -s 64M /tmp/d.img && dmkit serve'));
    expect(line).toBe("truncate -s 64M /tmp/d.img && dmkit serve --socket /tmp/s.sock --device disk '0 131072 linear /tmp/d.img 0'");
    const dir = tempDir();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(DMKIT, join(bin, 'dmkit'));
    // exec: so that our SIGINT reaches dmkit rather than bash.
    const command = /** @type {string} */ (line).replaceAll('/tmp/', `${dir}/`).replace('&& dmkit', '&& exec dmkit');
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, DMKIT_CONTROL: join(dir, 'control.sock') };
    const proc = spawn('bash', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    try {
      const t0 = Date.now();
      while (!/control: /.test(out)) {
        if (Date.now() - t0 > 20_000) throw new Error(`no start:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toContain(`uri:    nbd+unix:///disk?socket=${dir}/s.sock`);
      expect(out).toContain(`attach: nbd-client -u ${dir}/s.sock /dev/nbd0 -N disk`);
      const info = JSON.parse(await ok('nbdinfo', ['--json', `nbd+unix:///disk?socket=${dir}/s.sock`]));
      expect(info.exports[0]['export-size']).toBe(64 << 20);
    } finally {
      proc.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('with no devices serves the embedded default: an origin and its snapshot, kept across restarts', async () => {
    const dir = tempDir();
    const data = join(dir, 'data');
    const env = { ...process.env, DMKIT_DATA: data };
    let srv = await startServer([], { dir, env });
    expect(srv.stdout).toMatch(/serving 2 export\(s\)/);
    expect(srv.stdout).toMatch(/disk {2}1 GiB/);
    expect(srv.stdout).toMatch(/disk-snap {2}1 GiB/);
    // Both images are sparse files created on first start.
    expect(statSync(join(data, 'disk.img')).size).toBe(2 ** 30);
    expect(statSync(join(data, 'disk.img')).blocks).toBe(0);
    expect(statSync(join(data, 'disk-snap.cow')).size).toBe(2 ** 28);
    await nbdsh(srv.uri('disk'), 'h.pwrite(b"new!" * 1024, 65536); h.flush()');
    const check = 'assert h.pread(4096, 65536) == %s';
    await nbdsh(srv.uri('disk-snap'), check.replace('%s', 'bytes(4096)'));
    expect((await srv.ctl('status', 'disk-snap')).stdout).toMatch(/^0 2097152 snapshot \d+\/524288 \d+\n$/);
    expect((await srv.stop()).code).toBe(0);
    // Second start: the same folder, the same data, the snapshot still shows the first view.
    srv = await startServer([], { dir, env });
    await nbdsh(srv.uri('disk'), check.replace('%s', 'b"new!" * 1024'));
    await nbdsh(srv.uri('disk-snap'), check.replace('%s', 'bytes(4096)'));
    expect((await srv.stop()).code).toBe(0);
  });

  it('on TCP it prints the port it got, the NBD URI and the nbd-client command', async () => {
    const dir = tempDir();
    const srv = await startServer(['--listen', '127.0.0.1:0', '--device', 'z', '0 2048 zero'], { dir, socket: false });
    const m = /uri: {4}nbd:\/\/127\.0\.0\.1:(\d+)\/z/.exec(srv.stdout);
    expect(m).not.toBeNull();
    const port = /** @type {RegExpExecArray} */ (m)[1];
    expect(srv.stdout).toContain(`attach: nbd-client 127.0.0.1 ${port} /dev/nbd0 -N z`);
    expect(await ok('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/z`])).toBe('1048576\n');
    expect((await srv.stop('SIGINT')).code).toBe(0);
  });

  it('an IPv6 address is printed in brackets, as HOST:PORT needs it', async () => {
    const srv = await startServer(['--listen', '[::1]:0', '--device', 'z', '0 8 zero'], { socket: false });
    expect(srv.stdout).toMatch(/^dmkit: serving 1 export\(s\) on \[::1\]:\d+$/m);
    expect(srv.stdout).toMatch(/uri: {4}nbd:\/\/\[::1\]:\d+\/z/);
    expect((await srv.stop()).code).toBe(0);
  });

  it('with --tls=require the URIs it prints are TLS ones that work as printed', async () => {
    const dir = tempDir();
    const pki = makePki(dir);
    for (const creds of [['--tls-psk', pki.psk], ['--tls-certificates', pki.certs]]) {
      const srv = await startServer(['--tls=require', ...creds, '--device', 'z', '0 8 zero'], { dir });
      const uri = /uri: {4}(\S+)/.exec(srv.stdout)?.[1] ?? '';
      expect(uri, creds[0]).toMatch(/^nbds\+unix:\/\//);
      expect(await ok('nbdinfo', ['--size', uri])).toBe('4096\n');
      expect(srv.stdout).toContain('attach: nbd-client needs its TLS options');
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('with --allow-export it prints, and dmkit exports lists, only the exports clients can open', async () => {
    const srv = await startServer(['--allow-export', 'a', '--device', 'a', '0 8 zero', '--device', 'b', '0 8 zero']);
    expect(srv.stdout).toMatch(/serving 1 export\(s\)/);
    expect(srv.stdout).toContain(`uri:    ${srv.uri('a')}`);
    expect(srv.stdout).not.toContain(srv.uri('b'));
    expect((await srv.ctl('exports')).stdout).toBe('a\t0 connection(s)\t0 request(s)\t0 read(s) sent from files\t0 write(s) and 0 read(s) by receive threads\t0 of those read(s) sent from mapped images\t0 of those write(s) spliced from the socket\t0 chunk(s) copied by receive threads\n');
    expect((await srv.stop()).code).toBe(0);
  });

  it('a reader of its output that goes away (dmkit serve | head -1) does not take the server down', async () => {
    const dir = tempDir();
    const proc = spawn(process.execPath, [DMKIT, 'serve', '--socket', `${dir}/s.sock`, '--control', `${dir}/c.sock`, '--device', 'z', '0 8 zero'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.destroy(); // its first line meets a closed pipe: EPIPE
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      for (let t0 = Date.now(); !existsSync(`${dir}/c.sock`);) {
        if (Date.now() - t0 > 20_000 || proc.exitCode !== null) throw new Error(`no start:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 200)); // past the lines it prints once listening
      expect(await ok('nbdinfo', ['--size', `nbd+unix:///z?socket=${dir}/s.sock`])).toBe('4096\n');
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
  });

  it('SIGTERM with a client writing: its requests complete, files are flushed, exit 0', async () => {
    const dir = tempDir();
    const srv = await startServer(['--image', `${dir}/w.img=16M`, '--device', 'w', `0 32768 linear ${dir}/w.img 0`], { dir });
    const writer = spawn('nbdsh', ['-u', srv.uri('w'), '-c', 'while True:\n    h.pwrite(b"x" * 65536, 0)'], { env: CLIENT_ENV, stdio: 'ignore' });
    let r;
    try {
      for (let t0 = Date.now(); !/1 connection\(s\)/.test((await srv.ctl('exports')).stdout);) {
        if (Date.now() - t0 > 10_000) throw new Error('the writer did not connect');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      r = await srv.stop('SIGTERM');
    } finally {
      writer.kill();
    }
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM: stopping/);
    expect(r.stderr).toMatch(/connection \d+ \(unix\) closed: server shutting down \[export w, structured replies, \d+ request\(s\), 0 error\(s\)\]/);
    expect(r.stderr).toMatch(/flushed and closed/);
    expect(readFileSync(`${dir}/w.img`).subarray(0, 65536).every((x) => x === 0x78)).toBe(true);
  });

  it('--config: images created on first start, devices (multi-line, stacked) from their sections', async () => {
    const dir = tempDir();
    const config = join(dir, 'dmkit.conf');
    writeFileSync(config, [
      '# two images and a device on each, one stacked on the other',
      `image ${dir}/a.img 4M`,
      `image ${dir}/b.img 4M`,
      'device both',
      `  0 8192 linear ${dir}/a.img 0`,
      `  8192 8192 linear ${dir}/b.img 0   # second segment`,
      'device tail',
      '  0 8192 linear both 8192',
      '',
    ].join('\n'));
    const srv = await startServer(['--config', config], { dir });
    expect(statSync(`${dir}/a.img`).size).toBe(4 << 20);
    expect((await srv.ctl('table', 'both')).stdout).toBe(`0 8192 linear ${dir}/a.img 0\n8192 8192 linear ${dir}/b.img 0\n`);
    await nbdsh(srv.uri('tail'), 'h.pwrite(b"T" * 512, 0)');
    expect(readFileSync(`${dir}/b.img`).subarray(0, 512).every((x) => x === 0x54)).toBe(true);
    expect((await srv.stop()).code).toBe(0);
    writeFileSync(config, 'device x\nimage\n');
    const r = await dmkit(['serve', '--config', config, '--control', join(dir, 'c.sock')]);
    expect(r).toMatchObject({ code: 1, stderr: `dmkit serve: ${config}:2: expected 'image PATH SIZE'\n` });
  });

  it('usage errors are one line that points at --help', async () => {
    const r = await dmkit(['create']);
    expect(r).toMatchObject({ code: 2, stderr: "dmkit create: create needs a device name (see 'dmkit create --help')\n" });
    const u = await dmkit(['frob']);
    expect(u).toMatchObject({ code: 2, stderr: "dmkit frob: unknown command 'frob' (see 'dmkit --help')\n" });
  });

  it("'dmkit help X' prints the help of X, as 'dmkit X --help' does", async () => {
    for (const cmd of ['serve', 'status', 'snapshot']) {
      const viaHelp = await dmkit(['help', cmd]);
      const viaFlag = await dmkit([cmd, '--help']);
      expect(viaHelp.code, cmd).toBe(0);
      expect(viaHelp.stdout, cmd).toBe(viaFlag.stdout);
    }
    expect(await dmkit(['help', 'frob'])).toMatchObject({ code: 2, stderr: "dmkit frob: unknown command 'frob' (see 'dmkit --help')\n" });
  });

  it('an empty option value (an unset variable) is a usage error naming the option', async () => {
    expect(await dmkit(['ls', '--control', ''])).toMatchObject({ code: 2, stderr: "dmkit ls: --control needs a value, got an empty one\n" });
    expect(await dmkit(['serve', '--socket=', '--device', 'z', '0 8 zero'])).toMatchObject({ code: 2, stderr: "dmkit serve: --socket needs a value, got an empty one\n" });
  });

  it('an option before the command is reported as an unknown option', async () => {
    expect(await dmkit(['--frob'])).toMatchObject({ code: 2, stderr: "dmkit: unknown option --frob (see 'dmkit --help')\n" });
  });

  it('serve --help names every device of the embedded default', async () => {
    const help = (await dmkit(['serve', '--help'])).stdout;
    for (const { name } of defaultSetup('/data').devices) expect(help).toContain(`'${name}'`);
  });

  it("--stdio's refusal of a file on stdin suggests connect_command, not nbdinfo [ ] (socket activation)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in'), '');
    const f = await run('bash', ['-c', `set -o pipefail; "${process.execPath}" "${DMKIT}" serve --stdio --device z '0 8 zero' < "${dir}/in" | cat`], { env: process.env });
    expect(f.code).toBe(2);
    expect(f.stderr.trim().split('\n')).toHaveLength(1);
    expect(f.stderr).toContain(`nbdsh -c 'h.connect_command(["dmkit", "serve", "--stdio", ...])'`);
    expect(f.stderr).not.toContain('nbdinfo [ dmkit serve --stdio');
  });

  it('startup errors are one line and a non-zero exit', async () => {
    const dir = tempDir();
    const taken = net.createServer();
    await new Promise((resolve) => taken.listen(0, '127.0.0.1', () => resolve(undefined)));
    const port = /** @type {import('node:net').AddressInfo} */ (taken.address()).port;
    onTestFinished(() => { taken.close(); });
    writeFileSync(join(dir, 'a-file'), '');
    const cases = [
      [['--listen', `127.0.0.1:${port}`, '--device', 'd', '0 8 zero'], 1, `dmkit serve: cannot listen on 127.0.0.1:${port}: address already in use (another server runs there; pick another with --listen HOST:PORT)`],
      [['--socket', `${dir}/no/s.sock`, '--device', 'd', '0 8 zero'], 1, `dmkit serve: cannot listen on ${dir}/no/s.sock: no such directory ${dir}/no`],
      [['--device', 'd', `0 100 linear ${dir}/missing.img 0`], 1, `dmkit serve: d: line 1: linear: unknown device ${dir}/missing.img`],
      [['--device', 'd', '0 100 frobnicate'], 1, /^dmkit serve: d: line 1: .*frobnicate/],
      [['--listen', '10.1.2.3:10809', '--device', 'd', '0 8 zero'], 2, /^dmkit serve: refusing to listen on 10\.1\.2\.3, which is not loopback/],
      [['--listen', 'nope', '--device', 'd', '0 8 zero'], 2, "dmkit serve: --listen expects HOST:PORT, got 'nope'"],
      [['--frob'], 2, /^dmkit serve: unknown option --frob/],
      [['--listen', '127.0.0.1:99999', '--device', 'd', '0 8 zero'], 2, 'dmkit serve: --listen port must be 0-65535, got 99999'],
      [['--image', `${dir}/i.img=12Q`, '--device', 'd', '0 8 zero'], 2, `dmkit serve: --image ${dir}/i.img=12Q: invalid size '12Q' (use bytes or a number with K, M, G or T, e.g. 64M)`],
      [['--tls=bogus', '--device', 'd', '0 8 zero'], 2, "dmkit serve: --tls must be one of off, on, require, not 'bogus'"],
      [['--sync-io-max', '-1', '--device', 'd', '0 8 zero'], 2, "dmkit serve: --sync-io-max expects a number of bytes, got '-1'"],
      [['--device', 'd'], 2, 'dmkit serve: --device needs two values'],
      [['--device', 'd', `0 8 linear ${dir} 0`], 1, `dmkit serve: d: ${dir}: is a directory`],
      [['--data', `${dir}/a-file/data`], 1, `dmkit serve: cannot create the data folder ${dir}/a-file/data: a part of its path is a file (choose another with --data DIR or $DMKIT_DATA)`],
      [['--config', `${dir}/missing.conf`], 1, `dmkit serve: cannot read config ${dir}/missing.conf: no such file`],
      [['--config', dir], 1, `dmkit serve: cannot read config ${dir}: it is a directory`],
    ];
    for (const [args, code, message] of cases) {
      const r = await dmkit(['serve', '--control', join(dir, 'c.sock'), ...args]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      const first = r.stderr.split('\n')[0];
      if (typeof message === 'string') expect(first).toBe(message);
      else expect(first).toMatch(message);
    }
    expect(existsSync(join(dir, 'c.sock'))).toBe(false);
  });
});

afterAll(stopAllServers); // servers a failed test left running
