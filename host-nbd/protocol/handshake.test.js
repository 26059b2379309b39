// The handshake's wire format, byte for byte, and how malformed option data is refused.
import { describe, it, expect } from 'vitest';
import {
  greeting, parseClientFlags, parseOptionHeader, optionReply, optionError, exportNameReply,
  parseInfoRequest, parseMetaContextRequest, serverReplyData, infoExport, infoString, infoBlockSize,
  metaContextReplyData, encodeString,
} from './handshake.js';

const hex = (b) => Buffer.from(b).toString('hex');

function str(text) {
  const t = Buffer.from(text);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(t.length);
  return Buffer.concat([b, t]);
}

describe('handshake encoding', () => {
  it('greets with NBDMAGIC, IHAVEOPT and the fixed-newstyle and no-zeroes flags', () => {
    expect(hex(greeting())).toBe('4e42444d41474943' + '49484156454f5054' + '0003');
  });

  it('takes the two known client flags and refuses any other bit', () => {
    expect(parseClientFlags(Buffer.from([0, 0, 0, 3]))).toEqual({ ok: true, fixedNewstyle: true, noZeroes: true });
    expect(parseClientFlags(Buffer.from([0, 0, 0, 0]))).toEqual({ ok: true, fixedNewstyle: false, noZeroes: false });
    expect(parseClientFlags(Buffer.from([0x80, 0, 0, 1]))).toEqual({ ok: false, error: 'client flags 0x80000001 include unknown bits' });
  });

  it('reads option headers and refuses a bad magic', () => {
    const h = Buffer.concat([Buffer.from('IHAVEOPT'), Buffer.from([0, 0, 0, 7, 0, 0, 1, 0])]);
    expect(parseOptionHeader(h)).toEqual({ ok: true, option: 7, length: 256 });
    expect(parseOptionHeader(Buffer.alloc(16)).ok).toBe(false);
  });

  it('writes option replies with the reply magic, and error text', () => {
    expect(hex(optionReply(7, 1))).toBe('0003e889045565a9' + '00000007' + '00000001' + '00000000');
    const e = optionError(99, 0x80000001, 'no');
    expect(hex(e.subarray(12, 20))).toBe('80000001' + '00000002');
    expect(e.subarray(20).toString()).toBe('no');
  });

  it('ends NBD_OPT_EXPORT_NAME with 124 zero bytes unless no-zeroes was agreed', () => {
    expect(exportNameReply(1 << 20, 0x0d, false).length).toBe(134);
    expect(hex(exportNameReply(1 << 20, 0x0d, true))).toBe('0000000000100000' + '000d');
  });

  it('encodes the information replies', () => {
    expect(hex(infoExport(2 ** 40, 0x1ff))).toBe('0000' + '0000010000000000' + '01ff');
    expect(hex(infoString(1, 'ab'))).toBe('0001' + '6162');
    expect(hex(infoBlockSize(1, 4096, 32 << 20))).toBe('0003' + '00000001' + '00001000' + '02000000');
    expect(hex(serverReplyData('ab', 'cd'))).toBe('00000002' + '6162' + '6364');
    expect(hex(metaContextReplyData(1, 'x'))).toBe('00000001' + '78');
  });

  it('cuts strings at 4096 bytes without splitting a character', () => {
    expect(encodeString('é'.repeat(3000)).length).toBe(4096);
    expect(encodeString('a' + 'é'.repeat(3000)).length).toBe(4095);
  });
});

describe('option data parsing', () => {
  it('NBD_OPT_GO / INFO: name and information requests', () => {
    const data = Buffer.concat([str('disk'), Buffer.from([0, 2, 0, 1, 0, 3])]);
    expect(parseInfoRequest(data)).toEqual({ ok: true, name: 'disk', requests: [1, 3] });
    expect(parseInfoRequest(Buffer.concat([str(''), Buffer.from([0, 0])]))).toEqual({ ok: true, name: '', requests: [] });
  });

  it('NBD_OPT_GO / INFO: every malformation is an error, not a guess', () => {
    expect(parseInfoRequest(Buffer.from([0, 0, 0, 9, 0x61]))).toEqual({ ok: false, error: 'export name: 9 bytes run past the option data' });
    expect(parseInfoRequest(str('x'))).toEqual({ ok: false, error: 'missing the number of information requests' });
    expect(parseInfoRequest(Buffer.concat([str('x'), Buffer.from([0, 2, 0, 1])]))).toEqual({ ok: false, error: '2 information requests need 4 bytes, got 2' });
    expect(parseInfoRequest(Buffer.concat([Buffer.from([0, 0, 0, 1, 0xff]), Buffer.from([0, 0])])).ok).toBe(false);
    expect(parseInfoRequest(Buffer.concat([str('a\0b'), Buffer.from([0, 0])]))).toEqual({ ok: false, error: 'export name contains a NUL character' });
    expect(parseInfoRequest(Buffer.concat([str('a'.repeat(4097)), Buffer.from([0, 0])])).ok).toBe(false);
  });

  it('meta context requests: name, count, queries', () => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(2);
    const data = Buffer.concat([str('disk'), n, str('base:allocation'), str('x:y')]);
    expect(parseMetaContextRequest(data)).toEqual({ ok: true, name: 'disk', queries: ['base:allocation', 'x:y'] });
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff);
    expect(parseMetaContextRequest(Buffer.concat([str('d'), huge]))).toEqual({ ok: false, error: '4294967295 queries do not fit in the option data' });
    expect(parseMetaContextRequest(Buffer.concat([data, Buffer.from([1])]))).toEqual({ ok: false, error: '1 bytes after the last query' });
  });
});
