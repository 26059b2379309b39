// The binding's hot path for hosts (core-as/js/dmcore.js): takeCommandWords and
// takeCompletionWords give the same records as takeCommands / takeCompletions without an object
// per record, call into the core only when its boxes' state (dm_boxes_ptr) says there is
// something to take, keep their copy valid across later calls, and fail closed after a trap.
import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, ERRNO, COMMAND_WORDS, DONE_WORDS, CoreFault } from '../../core-as/js/dmcore.js';

/** The records of the last takeCommandWords as takeCommands returns them. */
function commandsOf(core, n) {
  const w = core.commandWords;
  return Array.from({ length: n }, (_, i) => {
    const p = i * COMMAND_WORDS;
    return { cmd: w[p], backing: w[p + 1], op: w[p + 2], flags: w[p + 3], sector: w[p + 4] + w[p + 5] * 2 ** 32, count: w[p + 6], buf: w[p + 7] };
  });
}

/** Counts calls of one guarded export. */
function countCalls(core, name) {
  const calls = { n: 0 };
  const f = core.x[name];
  core.x[name] = (...args) => { calls.n++; return f(...args); };
  return calls;
}

/** Two cores given the same requests: `a` is read with objects, `b` with words. */
async function twoHosts(table) {
  const hosts = [];
  for (let i = 0; i < 2; i++) {
    const h = await newHarness();
    h.disk('a', 1 << 20);
    h.disk('b', 1 << 20);
    hosts.push({ h, dev: h.device('d', table) });
  }
  return hosts;
}

describe('hot-path records (takeCommandWords, takeCompletionWords)', () => {
  let hosts;
  beforeEach(async () => {
    hosts = await twoHosts('0 4096 striped 2 8 a 0 b 0\n4096 4096 linear a 5000');
  });

  it('gives the same command records as takeCommands, sectors past 2^32 included', async () => {
    const [{ h: a, dev: da }, { h: b, dev: db }] = hosts;
    const requests = [[OP.WRITE, 3, 40, 1], [OP.READ, 4090, 12, 0], [OP.FLUSH, 0, 0, 0], [OP.WRITE, 8000, 8, 1]];
    for (const [op, sector, count, flags] of requests) {
      for (const [h, d] of [[a, da], [b, db]]) h.submit(d, op, sector, count, op === OP.FLUSH ? 0 : h.buffer(count * 512), flags);
    }
    const expected = a.core.takeCommands();
    const n = b.core.takeCommandWords();
    expect(n).toBe(expected.length);
    expect(n).toBeGreaterThan(8);
    expect(commandsOf(b.core, n)).toEqual(expected);

    // A device past 2^32 sectors (registered only: no command is executed): the high word is carried.
    const big = await newHarness();
    big.core.addBacking('huge', 2 ** 33 + 64);
    const d = big.device('h', '0 64 linear huge 8589934592');
    big.submit(d, OP.READ, 1, 2, big.buffer(1024));
    expect(big.core.takeCommandWords()).toBe(1);
    expect(commandsOf(big.core, 1)[0].sector).toBe(2 ** 33 + 1);
  });

  it('gives the same completion records as takeCompletions, statuses included', () => {
    const [{ h: a, dev: da }, { h: b, dev: db }] = hosts;
    const done = [];
    for (const [h, d] of [[a, da], [b, db]]) {
      const tags = [h.submit(d, OP.READ, 0, 16, h.buffer(16 * 512)), h.submit(d, OP.READ, 4100, 4, h.buffer(2048))];
      const cmds = h.core.takeCommands();
      cmds.forEach((c, i) => h.core.complete(c.cmd, i === 0 ? ERRNO.ENOSPC : 0));
      done.push(tags);
    }
    const expected = a.core.takeCompletions();
    const m = b.core.takeCompletionWords();
    expect(m).toBe(2);
    const w = b.core.completionWords;
    expect(Array.from({ length: m }, (_, i) => ({ tag: w[i * DONE_WORDS], status: w[i * DONE_WORDS + 1] | 0 }))).toEqual(expected);
    expect(expected.map((c) => c.status)).toEqual([ERRNO.ENOSPC, 0]);
    expect(b.core.takeCompletionWords()).toBe(0);
  });

  it('does not call into the core when a box is empty, and does when it is not', () => {
    const { h, dev } = hosts[1];
    const takes = countCalls(h.core, 'dm_take_commands');
    const dones = countCalls(h.core, 'dm_take_completions');
    expect(h.core.takeCommandWords()).toBe(0);
    expect(h.core.takeCompletionWords()).toBe(0);
    expect([takes.n, dones.n]).toEqual([0, 0]);
    h.submit(dev, OP.WRITE, 0, 8, h.buffer(sectorBytes(8)));
    expect(h.core.takeCommandWords()).toBe(1);
    expect(h.core.takeCommandWords()).toBe(0); // taken: the state says the outbox is empty again
    expect(takes.n).toBe(1);
    h.core.complete(h.core.commandWords[0], 0);
    expect(h.core.takeCompletionWords()).toBe(1);
    expect(h.core.takeCompletionWords()).toBe(0);
    expect(dones.n).toBe(1);
  });

  it('keeps its copy of the records while the core refills its boxes and its memory grows', () => {
    const { h, dev } = hosts[1];
    h.submit(dev, OP.READ, 8, 8, h.buffer(4096));
    expect(h.core.takeCommandWords()).toBe(1);
    const first = commandsOf(h.core, 1)[0];
    h.submit(dev, OP.WRITE, 16, 8, h.buffer(4096)); // its record lands where the first one was
    const before = h.core.memory.buffer.byteLength;
    const huge = h.core.alloc(64 << 20); // grows the memory: the old views are detached
    expect(h.core.memory.buffer.byteLength).toBeGreaterThan(before);
    expect(commandsOf(h.core, 1)[0]).toEqual(first);
    expect(h.core.memoryBytes().length).toBe(h.core.memory.buffer.byteLength);
    expect(h.core.takeCommandWords()).toBe(1);
    const second = commandsOf(h.core, 1)[0];
    // Chunks of 8 over a (id 0), b (id 1): sector 8 is b's first chunk, sector 16 a's second.
    expect([first.op, first.backing, first.sector]).toEqual([OP.READ, 1, 0]);
    expect([second.op, second.backing, second.sector]).toEqual([OP.WRITE, 0, 8]);
    for (const c of [first, second]) h.core.complete(c.cmd, 0);
    expect(h.core.takeCompletionWords()).toBe(2);
    h.core.free(huge);
  });

  it('refuses to answer after the core trapped, even with nothing to take', () => {
    const { h } = hosts[1];
    expect(() => h.core.x.dm_dev_find(h.core.memory.buffer.byteLength - 2, 64)).toThrow(CoreFault);
    expect(() => h.core.takeCommandWords()).toThrow(h.core.fault);
    expect(() => h.core.takeCompletionWords()).toThrow(h.core.fault);
  });
});

describe('command ids', () => {
  it('only ids of outstanding commands are accepted, never a request\'s or a finished command\'s', async () => {
    const h = await newHarness();
    h.disk('a', 1000);
    h.disk('b', 1000);
    const d = h.device('d', '0 64 striped 2 8 a 0 b 0');
    const tags = [h.submit(d, OP.WRITE, 0, 32, h.buffer(sectorBytes(32))), h.submit(d, OP.READ, 40, 16, h.buffer(8192))];
    const cmds = h.core.takeCommands();
    const ids = new Set(cmds.map((c) => c.cmd));
    expect(ids.size).toBe(cmds.length);
    for (let id = -1; id < 64; id++) {
      if (!ids.has(id)) expect(() => h.core.complete(id, 0), `id ${id}`).toThrow('no outstanding command');
    }
    for (const c of cmds) h.execute(c);
    h.collect();
    expect(tags.map((t) => h.done.get(t))).toEqual([0, 0]);
    for (const id of ids) expect(() => h.core.complete(id, 0)).toThrow('no outstanding command');
    expect(h.read(d, 0, 32).data).toEqual(sectorBytes(32));
  });
});
