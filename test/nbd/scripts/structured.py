# Structured replies: READ as OFFSET_DATA / OFFSET_HOLE chunks, DF, BLOCK_STATUS with and
# without REQ_ONE; and the same export with simple replies, as the kernel client uses it.
KiB = 1024
h = connect(EXPORT)
assert h.get_structured_replies_negotiated()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.can_df()
# 256 KiB: data, 128 KiB of zeroes, data
h.pwrite(b"\x01" * (64 * KiB), 0)
h.zero(128 * KiB, 64 * KiB)
h.pwrite(b"\x02" * (64 * KiB), 192 * KiB)
chunks = []
def chunk(subbuf, offset, status, error):
    chunks.append((offset, len(subbuf), status))
    return 0
# 96 KiB (a read that passes through memory): its 32 KiB of zeroes come back as a hole chunk
buf = h.pread_structured(96 * KiB, 0, chunk)
assert buf == b"\x01" * (64 * KiB) + b"\0" * (32 * KiB)
assert chunks == [(0, 64 * KiB, nbd.READ_DATA), (64 * KiB, 32 * KiB, nbd.READ_HOLE)], chunks
# 256 KiB: large reads of this device may go from the file to the socket (sendfile), zeroes as
# data. Whatever the chunks, they cover the range in order and a hole is zeroes.
chunks.clear()
buf = h.pread_structured(256 * KiB, 0, chunk)
assert buf == b"\x01" * (64 * KiB) + b"\0" * (128 * KiB) + b"\x02" * (64 * KiB)
at = 0
for (offset, length, status) in chunks:
    assert offset == at, chunks
    assert status == nbd.READ_DATA or buf[offset:offset + length] == b"\0" * length, chunks
    at += length
assert at == 256 * KiB, chunks
# DF: one content chunk, whatever the content
chunks.clear()
buf = h.pread_structured(256 * KiB, 0, chunk, nbd.CMD_FLAG_DF)
assert len(chunks) == 1 and chunks[0] == (0, 256 * KiB, nbd.READ_DATA), chunks
# a small read that is all zeroes comes back as one hole
chunks.clear()
assert h.pread_structured(4 * KiB, 100 * KiB, chunk) == b"\0" * (4 * KiB)
assert chunks == [(100 * KiB, 4 * KiB, nbd.READ_HOLE)], chunks
# block status: extents add up to the request, REQ_ONE gives one extent within the request
extents = []
def ext(meta, offset, entries, err):
    assert meta == nbd.CONTEXT_BASE_ALLOCATION
    extents.append(list(entries))
    return 0
h.block_status(1 << 20, 0, ext)
e = extents[-1]
assert sum(e[0::2]) >= 1 << 20 and sum(e[0:-2:2]) < 1 << 20, e
h.block_status(1 << 20, 0, ext, nbd.CMD_FLAG_REQ_ONE)
e = extents[-1]
assert len(e) == 2 and 0 < e[0] <= 1 << 20, e
h.shutdown()

# Simple replies (what nbd-client and the kernel use): the same bytes, no block status.
s = connect(EXPORT, structured=False, meta=False)
assert not s.get_structured_replies_negotiated()
assert not s.can_df()
assert s.pread(256 * KiB, 0) == buf
s.pwrite(b"\x03" * 1000, 5000)
assert s.pread(1000, 5000) == b"\x03" * 1000
s.flush()
s.shutdown()
print("ok")
