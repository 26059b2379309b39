// ReplyWriter with a file sender: what a native send could not place goes through Node's
// writes, and buffers queued with a release (payloads in core memory) are released only once
// Node is done with them: a released buffer is reused at once.
import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ReplyWriter } from './reply-writer.js';
import { tempDir, testBytes } from '../../test/nbd/helpers.js';

/** A socket that takes bytes by reference and lets them leave only when told (like libuv). */
class SlowSocket extends Writable {
  constructor() {
    super({ highWaterMark: 1 << 30 });
    /** @type {Array<[Buffer, () => void]>} */
    this.waiting = [];
    /** @type {Buffer[]} */
    this.sent = [];
  }
  _write(chunk, _enc, cb) { this.waiting.push([chunk, cb]); }
  /** The kernel takes everything queued now (reading the bytes only at this point). */
  drain() {
    const w = this.waiting;
    this.waiting = [];
    for (const [chunk, cb] of w) { this.sent.push(Buffer.from(chunk)); cb(); }
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('reply writer with a file sender', () => {
  it('spills what the native send left, in order, and releases payloads after Node wrote them', async () => {
    const dir = tempDir();
    const file = join(dir, 'f');
    const bytes = testBytes(64 * 1024, 3);
    const fd = openSync(file, 'w+');
    writeSync(fd, bytes);
    const out = new SlowSocket();
    // A send that places nothing (a client that does not read): everything spills.
    const sender = { fd: -1, min: 1, checkReadable: (_pieces, done) => setImmediate(() => done(null)), sendPieces: (_fd, _pieces, _wait, done) => setImmediate(() => done(null, 0)) };
    const w = new ReplyWriter(out, sender);
    let fileDone = /** @type {any} */ (undefined);
    w.fileReply(false, 0, 1, 0, [[fd, 0, 65536]], (e) => { fileDone = e; });
    // A payload from "core memory" after it: released means reused.
    const payload = Buffer.from(testBytes(32768, 9));
    const want = Buffer.from(payload);
    let released = false;
    w.simple(0, 0, 2);
    w.payload(payload, 0, payload.length, () => { released = true; payload.fill(0xee); });
    for (let i = 0; i < 20 && fileDone === undefined; i++) await tick();
    expect(fileDone).toBe(null);
    expect(released).toBe(false); // Node has not written it yet
    for (let i = 0; i < 10; i++) { out.drain(); await tick(); } // a Writable hands over one chunk at a time
    expect(released).toBe(true);
    const got = Buffer.concat(out.sent);
    expect(got.length).toBe(16 + 65536 + 16 + 32768);
    expect(got.subarray(16, 16 + 65536).equals(bytes)).toBe(true);
    expect(got.subarray(16 + 65536 + 16).equals(want)).toBe(true);
    closeSync(fd);
  });
});
