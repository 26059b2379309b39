// Requests and replies of the transmission phase, byte for byte.
import { describe, it, expect } from 'vitest';
import {
  readRequest, encodeRequest, newRequest, writeSimpleReply, writeNoneChunk, writeOffsetDataHeader,
  writeOffsetHole, writeErrorChunk, errorChunkBytes, writeBlockStatusChunk, blockStatusChunkBytes,
  readExtendedRequest,
} from './transmission.js';

const hex = (b) => Buffer.from(b).toString('hex');

describe('transmission encoding', () => {
  it('reads a request header, cookie halves and 64-bit offset included', () => {
    const r = newRequest();
    expect(readRequest(encodeRequest(1, 0x11, 0x0102030405060708n, 2 ** 40 + 5, 4096), 0, r)).toBe(true);
    expect(r).toEqual({ magic: 0x25609513, flags: 0x11, type: 1, cookieHi: 0x01020304, cookieLo: 0x05060708, offsetHi: 256, offsetLo: 5, offset: 2 ** 40 + 5, length: 4096 });
    expect(readRequest(Buffer.alloc(28), 0, r)).toBe(false);
  });

  it('reads an extended request header with its 64-bit length, and refuses the compact magic', () => {
    const r = newRequest();
    expect(readExtendedRequest(encodeRequest(4, 0x20, 7n, 2 ** 33, 2 ** 36 + 3, true), 0, r)).toBe(true);
    expect(r).toMatchObject({ magic: 0x21e41c71, flags: 0x20, type: 4, cookieHi: 0, cookieLo: 7, offsetHi: 2, offsetLo: 0, offset: 2 ** 33, length: 2 ** 36 + 3 });
    expect(readExtendedRequest(Buffer.concat([encodeRequest(4, 0, 7n, 0, 0), Buffer.alloc(4)]), 0, r)).toBe(false);
  });

  it('writes extended reply headers: the request\'s offset echoed as sent, a 64-bit length', () => {
    const b = Buffer.alloc(128);
    const ext = { offsetHi: 0xffffffff, offsetLo: 0xfffffe00 }; // past 2^53: echoed exactly all the same
    expect(writeNoneChunk(b, 0, 0, 9, ext)).toBe(32);
    expect(hex(b.subarray(0, 32))).toBe('6e8a278c' + '0001' + '0000' + '0000000000000009' + 'fffffffffffffe00' + '0000000000000000');
    expect(writeOffsetDataHeader(b, 0, true, 0, 9, 4096, 100, { offsetHi: 0, offsetLo: 512 })).toBe(40);
    expect(hex(b.subarray(0, 40))).toBe('6e8a278c' + '0001' + '0001' + '0000000000000009' + '0000000000000200' + '000000000000006c' + '0000000000001000');
    const end = writeErrorChunk(b, 0, 0, 3, 5, 'bad', undefined, { offsetHi: 0, offsetLo: 0 });
    expect(end).toBe(errorChunkBytes('bad', false, { offsetHi: 0, offsetLo: 0 }));
    expect(hex(b.subarray(0, end))).toBe('6e8a278c' + '0001' + '8001' + '0000000000000003' + '0000000000000000' + '0000000000000009' + '00000005' + '0003' + '626164');
  });

  it('writes BLOCK_STATUS_EXT chunks with 64-bit extent lengths when headers are extended', () => {
    const b = Buffer.alloc(128);
    const ext = { offsetHi: 0, offsetLo: 0 };
    const end = writeBlockStatusChunk(b, 0, true, 0, 1, 1, [{ length: 2 ** 33, flags: 3 }, { length: 512, flags: 0 }], ext);
    expect(end).toBe(blockStatusChunkBytes(2, ext));
    expect(hex(b.subarray(0, end))).toBe('6e8a278c' + '0001' + '0006' + '0000000000000001' + '0000000000000000' + '0000000000000028'
      + '00000001' + '00000002' + '0000000200000000' + '00000000' + '00000003' + '0000000000000200' + '00000000' + '00000000');
  });

  it('writes simple replies and structured chunks', () => {
    const b = Buffer.alloc(64);
    expect(writeSimpleReply(b, 0, 22, 1, 2)).toBe(16);
    expect(hex(b.subarray(0, 16))).toBe('67446698' + '00000016' + '00000001' + '00000002');
    expect(writeNoneChunk(b, 0, 0, 9)).toBe(20);
    expect(hex(b.subarray(0, 20))).toBe('668e33ef' + '0001' + '0000' + '0000000000000009' + '00000000');
    expect(writeOffsetDataHeader(b, 0, false, 0, 9, 2 ** 33, 100)).toBe(28);
    expect(hex(b.subarray(0, 28))).toBe('668e33ef' + '0000' + '0001' + '0000000000000009' + '0000006c' + '0000000200000000');
    expect(writeOffsetHole(b, 0, true, 0, 9, 512, 4096)).toBe(32);
    expect(hex(b.subarray(0, 32))).toBe('668e33ef' + '0001' + '0002' + '0000000000000009' + '0000000c' + '0000000000000200' + '00001000');
  });

  it('writes error chunks with their message, with and without an offset', () => {
    const b = Buffer.alloc(64);
    const end = writeErrorChunk(b, 0, 0, 3, 5, 'bad', 1024);
    expect(end).toBe(errorChunkBytes('bad', true));
    expect(hex(b.subarray(0, end))).toBe('668e33ef' + '0001' + '8002' + '0000000000000003' + '00000011' + '00000005' + '0003' + '626164' + '0000000000000400');
    expect(writeErrorChunk(b, 0, 0, 3, 22, '')).toBe(26);
    expect(hex(b.subarray(4, 8))).toBe('00018001');
  });

  it('writes block status chunks', () => {
    const b = Buffer.alloc(64);
    const end = writeBlockStatusChunk(b, 0, true, 0, 1, 1, [{ length: 4096, flags: 3 }, { length: 512, flags: 0 }]);
    expect(end).toBe(blockStatusChunkBytes(2));
    expect(hex(b.subarray(0, end))).toBe('668e33ef' + '0001' + '0005' + '0000000000000001' + '00000014' + '00000001' + '0000100000000003' + '0000020000000000');
  });
});
