// dmsetup's verbs on a running server, through the dmkit CLI and its control socket: output in
// dmsetup's format, reload taking effect at resume (under load), suspend draining in-flight I/O
// and holding new I/O, remove refused while a client has the device open.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startServer, tempDir, ok, run, DMKIT, stopAllServers, sparseFile } from './helpers.js';

const SCRIPTS = join(import.meta.dirname, 'scripts');
const COMMON = readFileSync(join(SCRIPTS, 'common.py'), 'utf8');

describe('dmkit control verbs', () => {
  let srv, dir, a, b;
  const py = (name, vars) => ok('nbdsh', ['-n',
    '-c', `SOCKET = ${JSON.stringify(srv.socket)}; CONTROL = ${JSON.stringify(srv.control)}; DMKIT = ${JSON.stringify([process.execPath, DMKIT])}`,
    '-c', Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('; '),
    '-c', COMMON,
    '-c', readFileSync(join(SCRIPTS, `${name}.py`), 'utf8')]);

  beforeAll(async () => {
    dir = tempDir();
    a = join(dir, 'a.img');
    b = join(dir, 'b.img');
    sparseFile(a, 32 << 20);
    sparseFile(b, 32 << 20);
    srv = await startServer(['--device', 'base', `0 65536 linear ${a} 0`], { dir });
  });
  afterAll(async () => { expect((await srv.stop()).code).toBe(0); });

  it('create, ls, table, status and info print what dmsetup prints', async () => {
    const created = await srv.ctl('create', 'two', '--table', `0 1024 linear ${b} 0\n1024 1024 zero`);
    expect(created).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect((await srv.ctl('ls')).stdout).toBe('base\t(65536 sectors)\ntwo\t(2048 sectors)\n');
    expect((await srv.ctl('table', 'two')).stdout).toBe(`0 1024 linear ${b} 0\n1024 1024 zero \n`);
    expect((await srv.ctl('table')).stdout).toBe(`base: 0 65536 linear ${a} 0\ntwo: 0 1024 linear ${b} 0\ntwo: 1024 1024 zero \n`);
    expect((await srv.ctl('status', 'two')).stdout).toBe('0 1024 linear \n1024 1024 zero \n');
    expect((await srv.ctl('info', 'two')).stdout).toBe([
      'Name:              two',
      'State:             ACTIVE',
      'Tables present:    LIVE',
      'Open count:        0',
      'Event number:      0',
      'Number of targets: 2',
      'Size:              2048 sectors',
      '',
    ].join('\n'));
    // The new device is an export at once.
    expect(await ok('nbdinfo', ['--size', srv.uri('two')])).toBe(`${2048 * 512}\n`);
    expect((await srv.ctl('remove', 'two')).code).toBe(0);
    expect((await srv.ctl('ls')).stdout).toBe('base\t(65536 sectors)\n');
  });

  it('a relative image path from another directory than the server\'s is refused, naming both files', async () => {
    // The server runs in the test's directory; the caller stands in `dir`, next to b.img.
    const r = await run(process.execPath, [DMKIT, 'create', 'rel', '--table', '0 1024 linear b.img 0', '--control', srv.control], { cwd: dir, env: process.env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`'b.img' is a relative path, and the server resolves it in its own directory (${join(process.cwd(), 'b.img')}), not in yours (${b})`);
    expect((await srv.ctl('ls')).stdout).not.toMatch(/rel/);
    // An absolute path is fine from anywhere; a relative one from the server's own directory too.
    const abs = await run(process.execPath, [DMKIT, 'create', 'rel', '--table', `0 1024 linear ${b} 0`, '--control', srv.control], { cwd: dir, env: process.env });
    expect(abs.code).toBe(0);
    expect((await srv.ctl('remove', 'rel')).code).toBe(0);
    const here = await run(process.execPath, [DMKIT, 'create', 'rel', '--table', `0 1024 linear ${relative(process.cwd(), b)} 0`, '--control', srv.control], { env: process.env });
    expect(here.code).toBe(0);
    expect((await srv.ctl('remove', 'rel')).code).toBe(0);
  });

  it('errors are one line and a non-zero exit; a failed create leaves no device', async () => {
    const bad = await srv.ctl('create', 'bad', '--table', `0 100 linear ${a} 0\n50 100 zero`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('dmkit create: bad: line 2: segment starts at 50 but the previous one ends at 100 (segments must be contiguous)\n');
    expect((await srv.ctl('ls')).stdout).not.toMatch(/bad/);
    const none = await srv.ctl('status', 'nosuch');
    expect(none).toMatchObject({ code: 1, stderr: 'dmkit status: device nosuch does not exist\n' });
    const msg = await srv.ctl('message', 'base', '0', 'hello');
    expect(msg).toMatchObject({ code: 1, stderr: 'dmkit message: target linear does not take messages\n' });
    const usage = await srv.ctl('suspend');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^dmkit suspend: suspend needs a device name/);
  });

  it('extra arguments and options a verb does not take are refused, not ignored', async () => {
    const cases = [
      [['remove', 'base', 'other'], "dmkit remove: unexpected argument 'other' (see 'dmkit remove --help')"],
      [['status', 'base', 'other'], "dmkit status: unexpected argument 'other' (see 'dmkit status --help')"],
      [['ls', 'base'], "dmkit ls: unexpected argument 'base' (see 'dmkit ls --help')"],
      [['resume', 'base', '--table', '0 8 zero'], "dmkit resume: --table is for create, reload and load (see 'dmkit resume --help')"],
      [['status', 'base', '--inactive'], "dmkit status: --inactive is for table (see 'dmkit status --help')"],
      [['create', 'both', '--table', '0 8 zero', '--file', join(dir, 'x')], "dmkit create: give the table with --table or --file, not both (see 'dmkit create --help')"],
      [['wait', 'base', 'soon'], "dmkit wait: invalid event number 'soon' (see 'dmkit wait --help')"],
      [['wait', 'base', '1', '2'], "dmkit wait: unexpected argument '2' (see 'dmkit wait --help')"],
    ];
    for (const [args, stderr] of cases) expect(await srv.ctl(...args), args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: `${stderr}\n` });
    expect((await srv.ctl('ls')).stdout).toMatch(/^base\t/m);
    expect((await srv.ctl('ls')).stdout).not.toMatch(/^both\t/m);
  });

  it('a --file that cannot be read is one line naming it', async () => {
    const r = await srv.ctl('create', 'nofile', '--file', join(dir, 'missing.table'));
    expect(r).toMatchObject({ code: 1, stderr: `dmkit create: ${join(dir, 'missing.table')}: no such file\n` });
    const d = await srv.ctl('create', 'nofile', '--file', dir);
    expect(d).toMatchObject({ code: 1, stderr: `dmkit create: ${dir}: is a directory\n` });
  });

  it('create at a terminal without --table says it reads the table from standard input', async () => {
    const r = await run('script', ['-qec', `"${process.execPath}" "${DMKIT}" create fromtty --control "${srv.control}"`, '/dev/null'],
      { input: '0 8 zero\n\x04', env: process.env });
    expect(r.stdout).toContain('dmkit create: reading the table from standard input; end it with Ctrl-D (or give --table TABLE)');
    expect((await srv.ctl('table', 'fromtty')).stdout).toBe('0 8 zero \n');
    expect((await srv.ctl('remove', 'fromtty')).code).toBe(0);
  });

  it('table --inactive of all devices prints "NAME: " for a device without an inactive table, as dmsetup', async () => {
    await srv.ctl('create', 'inact', '--table', '0 8 zero');
    await srv.ctl('reload', 'inact', '--table', '0 8 error');
    const lines = (await srv.ctl('table', '--inactive')).stdout.split('\n');
    expect(lines).toContain('base: ');
    expect(lines).toContain('inact: 0 8 error ');
    expect(lines.slice(0, -1)).not.toContain('');
    await srv.ctl('clear', 'inact');
    expect((await srv.ctl('remove', 'inact')).code).toBe(0);
  });

  it('every verb has --help', async () => {
    for (const verb of ['ls', 'create', 'reload', 'suspend', 'resume', 'remove', 'status', 'table', 'info', 'message', 'serve', 'snapshot']) {
      const r = await srv.ctl(verb, '--help');
      expect(r.code, verb).toBe(0);
      expect(r.stdout, verb).toMatch(/^Usage/);
    }
  });

  it('suspend drains the requests in flight and holds new ones until resume', async () => {
    await srv.ctl('create', 'susp', '--table', `0 65536 linear ${b} 0`);
    const out = await py('suspend', { EXPORT: 'susp' });
    expect(out.trim()).toBe('ok');
  });

  it('reload under load takes effect at resume; the client sees its data throughout', async () => {
    await srv.ctl('create', 'busy', '--table', `0 32768 linear ${b} 0`);
    const out = await py('reload-load', { EXPORT: 'busy', SECTORS: 32768, IMAGE: b });
    expect(out.trim()).toBe('ok');
  });

  it('remove is refused while a client has the device open, like dmsetup\'s "device busy"', async () => {
    await srv.ctl('create', 'held', '--table', `0 2048 linear ${b} 0`);
    const out = await py('remove-busy', { EXPORT: 'held' });
    expect(out.trim()).toBe('ok');
  });

  it('remove is refused while another device stacks on it', async () => {
    await srv.ctl('create', 'lower', '--table', `0 2048 linear ${b} 0`);
    await srv.ctl('create', 'upper', '--table', '0 2048 linear lower 0');
    const r = await srv.ctl('remove', 'lower');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lower: Device or resource busy \(device lower is busy: used by 1 other table\(s\)\)/);
    expect((await srv.ctl('remove', 'upper')).code).toBe(0);
    expect((await srv.ctl('remove', 'lower')).code).toBe(0);
  });
});

describe('dmkit info on a --read-only server', () => {
  it('says ACTIVE (READ-ONLY), as dmsetup info does for a read-only device', async () => {
    const srv = await startServer(['--read-only', '--device', 'z', '0 8 zero']);
    try {
      expect((await srv.ctl('info', 'z')).stdout).toMatch(/^State: {13}ACTIVE \(READ-ONLY\)$/m);
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

describe('dmkit control verbs on a server with no device', () => {
  it('ls, table and status print "No devices found", as dmsetup', async () => {
    const srv = await startServer(['--empty']);
    try {
      for (const verb of ['ls', 'table', 'status']) expect(await srv.ctl(verb), verb).toMatchObject({ code: 0, stdout: 'No devices found\n' });
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

afterAll(stopAllServers); // servers a failed test left running
