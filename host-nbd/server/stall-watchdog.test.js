// The stall checks against a stand-in connection: which clients are cut, and which are left alone.
import { describe, it, expect } from 'vitest';
import { checkStall } from './stall-watchdog.js';
import { TRANSMISSION, CLOSED } from './connection-phases.js';

const STALL = 1000;

/** A connection in transmission; times are how many ms ago. */
function fakeConn({ midRequest = false, stash = /** @type {any} */ (null), inputAgo = 0, outputAgo = 0, queued = 0, lastQueued = 0, threadMidMs = -1 } = {}) {
  const now = performance.now();
  const closed = /** @type {Array<[string, boolean]>} */ ([]);
  return {
    closed, phase: TRANSMISSION, stash, tx: /** @type {any} */ ({ reader: { midRequest } }),
    threadInput: threadMidMs < 0 ? null : { midRequestMs: () => threadMidMs },
    lastInput: now - inputAgo, lastOutput: now - outputAgo, lastOutputLength: lastQueued,
    output: { writableLength: queued },
    close(reason, bad) { closed.push([reason, bad]); },
  };
}

const check = (conn) => { checkStall(/** @type {any} */ (conn), STALL); return conn.closed; };

describe('checkStall', () => {
  it('cuts a request that stopped arriving half-way, on the event loop or in the receive thread', () => {
    const halfWay = [['a request stopped arriving half-way: nothing for 1000 ms', true]];
    expect(check(fakeConn({ midRequest: true, inputAgo: 2 * STALL }))).toEqual(halfWay);
    expect(check(fakeConn({ threadMidMs: 2 * STALL }))).toEqual(halfWay);
    expect(check(fakeConn({ midRequest: true, inputAgo: STALL / 2, threadMidMs: STALL / 2 }))).toEqual([]);
    // Requests wait in the stash: the server stopped reading, not the client sending.
    expect(check(fakeConn({ midRequest: true, inputAgo: 2 * STALL, stash: [Buffer.alloc(1), 0] }))).toEqual([]);
  });

  it('cuts a client whose replies wait unread, not one that takes them slowly or has none waiting', () => {
    expect(check(fakeConn({ queued: 100, lastQueued: 100, outputAgo: 2 * STALL }))).toEqual([
      ['the client stopped reading replies: none taken for 1000 ms', true],
    ]);
    const slow = fakeConn({ queued: 50, lastQueued: 100, outputAgo: 2 * STALL });
    expect(check(slow)).toEqual([]);
    expect(slow.lastOutputLength).toBe(50);
    expect(check(fakeConn({ queued: 0, outputAgo: 2 * STALL, inputAgo: 2 * STALL }))).toEqual([]); // idle
  });

  it('checks nothing outside the transmission phase', () => {
    const closed = fakeConn({ midRequest: true, inputAgo: 2 * STALL });
    closed.phase = CLOSED;
    expect(check(closed)).toEqual([]);
    const handshake = fakeConn({ queued: 100, lastQueued: 100, outputAgo: 2 * STALL });
    handshake.tx = null;
    expect(check(handshake)).toEqual([]);
  });
});
