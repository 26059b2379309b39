// Option haggling decisions, without sockets: each option's replies and what comes next.
import { describe, it, expect } from 'vitest';
import { Negotiation, transmissionFlags, BASE_ALLOCATION_ID } from './negotiation.js';
import { OPT, REP, TFLAG } from '../protocol/constants.js';

const disk = { name: 'disk', description: 'the disk', readOnly: false, size: () => 1 << 20 };
const ro = { name: 'ro', description: 'read-only', readOnly: true, size: () => 4096 };
const exportsStub = {
  getExport: (n) => (n === '' ? disk : [disk, ro].find((e) => e.name === n) ?? null),
  listExports: () => [disk, ro],
};

function str(text) {
  const t = Buffer.from(text);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(t.length);
  return Buffer.concat([b, t]);
}
const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
/** Reply types of an outcome's replies, in order. */
const types = (o) => o.replies.map((r) => r.readUInt32BE(12));
const client = { fixedNewstyle: true, noZeroes: true };

describe('option negotiation', () => {
  it('transmission flags: everything we support, writing flags only when writable, DF with structured replies', () => {
    const rw = transmissionFlags(disk, false);
    for (const f of ['HAS_FLAGS', 'SEND_FLUSH', 'SEND_FUA', 'SEND_TRIM', 'SEND_WRITE_ZEROES', 'SEND_FAST_ZERO', 'SEND_CACHE', 'CAN_MULTI_CONN']) {
      expect(rw & TFLAG[f], f).toBeTruthy();
    }
    expect(rw & (TFLAG.READ_ONLY | TFLAG.SEND_DF | TFLAG.ROTATIONAL)).toBe(0);
    expect(transmissionFlags(disk, true) & TFLAG.SEND_DF).toBeTruthy();
    const r = transmissionFlags(ro, false);
    expect(r & TFLAG.READ_ONLY).toBeTruthy();
    expect(r & (TFLAG.SEND_FUA | TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES | TFLAG.SEND_FAST_ZERO)).toBe(0);
  });

  it('GO with no information requests (the kernel client) still gets INFO_EXPORT, then goes', () => {
    const n = new Negotiation(exportsStub, client);
    const o = n.handle(OPT.GO, Buffer.concat([str('disk'), u16(0)]));
    expect(o.next).toBe('go');
    expect(o.export).toBe(disk);
    expect(types(o)).toEqual([REP.INFO, REP.INFO, REP.ACK]); // EXPORT and BLOCK_SIZE
    expect(o.replies[0].readUInt16BE(20)).toBe(0); // NBD_INFO_EXPORT
    expect(Number(o.replies[0].readBigUInt64BE(22))).toBe(1 << 20);
  });

  it('INFO answers NAME and DESCRIPTION when asked, and NAME for the default export', () => {
    const n = new Negotiation(exportsStub, client);
    const o = n.handle(OPT.INFO, Buffer.concat([str(''), u16(2), u16(1), u16(2)]));
    expect(o.next).toBe('continue');
    const infos = o.replies.filter((r) => r.readUInt32BE(12) === REP.INFO).map((r) => [r.readUInt16BE(20), r.subarray(22).toString()]);
    expect(infos).toContainEqual([1, 'disk']);
    expect(infos).toContainEqual([2, 'the disk']);
    expect(types(n.handle(OPT.INFO, Buffer.concat([str('nope'), u16(0)])))).toEqual([REP.ERR_UNKNOWN]);
    expect(types(n.handle(OPT.GO, Buffer.from([0, 0])))).toEqual([REP.ERR_INVALID]);
  });

  it('EXPORT_NAME goes or closes (it cannot answer an error)', () => {
    const n = new Negotiation(exportsStub, client);
    expect(n.handle(OPT.EXPORT_NAME, Buffer.from('nope'))).toMatchObject({ next: 'close', reason: "no export named 'nope'" });
    const o = n.handle(OPT.EXPORT_NAME, Buffer.from('ro'));
    expect(o).toMatchObject({ next: 'go', export: ro, name: 'ro' });
    expect(o.replies[0].length).toBe(10); // no zero padding: NO_ZEROES was agreed
  });

  it('LIST, ABORT, unknown options and STARTTLS', () => {
    const n = new Negotiation(exportsStub, client);
    expect(types(n.handle(OPT.LIST, Buffer.alloc(0)))).toEqual([REP.SERVER, REP.SERVER, REP.ACK]);
    expect(types(n.handle(OPT.LIST, Buffer.from('x')))).toEqual([REP.ERR_INVALID]);
    expect(n.handle(OPT.ABORT, Buffer.alloc(0))).toMatchObject({ next: 'abort' });
    expect(types(n.handle(42, Buffer.alloc(3)))).toEqual([REP.ERR_UNSUP]);
    expect(types(n.handle(OPT.STARTTLS, Buffer.alloc(0)))).toEqual([REP.ERR_UNSUP]);
  });

  it('meta contexts need structured replies; SET selects base:allocation for one export name', () => {
    const n = new Negotiation(exportsStub, client);
    const set = Buffer.concat([str('disk'), u32(2), str('base:allocation'), str('x-other:thing')]);
    expect(types(n.handle(OPT.SET_META_CONTEXT, set))).toEqual([REP.ERR_INVALID]);
    expect(types(n.handle(OPT.STRUCTURED_REPLY, Buffer.alloc(0)))).toEqual([REP.ACK]);
    expect(types(n.handle(OPT.STRUCTURED_REPLY, Buffer.alloc(0)))).toEqual([REP.ERR_INVALID]);
    const listed = n.handle(OPT.LIST_META_CONTEXT, Buffer.concat([str('disk'), u32(0)]));
    expect(types(listed)).toEqual([REP.META_CONTEXT, REP.ACK]);
    expect(listed.replies[0].subarray(24).toString()).toBe('base:allocation');
    const o = n.handle(OPT.SET_META_CONTEXT, set);
    expect(types(o)).toEqual([REP.META_CONTEXT, REP.ACK]);
    expect(o.replies[0].readUInt32BE(20)).toBe(BASE_ALLOCATION_ID);
    expect(n.contextsFor('disk')).toEqual([{ id: BASE_ALLOCATION_ID, name: 'base:allocation' }]);
    expect(n.contextsFor('ro')).toEqual([]); // selected for another export name
    // "base:" lists, but does not select
    expect(types(n.handle(OPT.SET_META_CONTEXT, Buffer.concat([str('disk'), u32(1), str('base:')])))).toEqual([REP.ACK]);
    expect(n.contextsFor('disk')).toEqual([]);
  });

  it('a client without fixed newstyle may only send EXPORT_NAME', () => {
    const n = new Negotiation(exportsStub, { fixedNewstyle: false, noZeroes: false });
    expect(n.handle(OPT.LIST, Buffer.alloc(0)).next).toBe('close');
    expect(n.handle(OPT.EXPORT_NAME, Buffer.from('disk')).replies[0].length).toBe(134);
  });
});
