// The receive thread (src/receiver.cc) parses requests and writes replies with its own copies of
// the protocol's numbers (C++ cannot import them); they must be the protocol module's.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, CMD, REPLY_FLAG_DONE, REPLY_TYPE, REQUEST_BYTES } from '../protocol/constants.js';

const source = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'src', 'receiver.cc'), 'utf8');

/** The value of `constexpr <type> name = <number>;` in receiver.cc. */
function constant(name) {
  const m = new RegExp(`constexpr \\w+ ${name} = (0x[0-9a-fA-F]+|\\d+);`).exec(source);
  if (!m) throw new Error(`receiver.cc has no constexpr ${name}`);
  return Number(m[1]);
}

describe("the receive thread's protocol numbers", () => {
  it('are the protocol module\'s', () => {
    expect(constant('kRequestMagic')).toBe(REQUEST_MAGIC);
    expect(constant('kReplyMagic')).toBe(SIMPLE_REPLY_MAGIC);
    expect(constant('kStructuredMagic')).toBe(STRUCTURED_REPLY_MAGIC);
    expect(constant('kCmdRead')).toBe(CMD.READ);
    expect(constant('kCmdWrite')).toBe(CMD.WRITE);
    expect(constant('kCmdTrim')).toBe(CMD.TRIM);
    expect(constant('kCmdWriteZeroes')).toBe(CMD.WRITE_ZEROES);
    expect(constant('kFlagDone')).toBe(REPLY_FLAG_DONE);
    expect(constant('kOffsetData')).toBe(REPLY_TYPE.OFFSET_DATA);
    expect(constant('kHeader')).toBe(REQUEST_BYTES);
    expect(constant('kStructuredDataHead')).toBe(20 + 8); // chunk header, then the offset
  });
});
