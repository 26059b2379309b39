# Unaligned reads and writes against a byte-exact model, and concurrent unaligned writes that
# share sectors (each must survive: the server read-modify-writes under a range lock).
SIZE = 4 << 20
h = connect(EXPORT)
assert h.get_size() >= SIZE
model = bytearray(h.pread(SIZE, 0))
rng = random.Random(1234)
for i in range(300):
    off = rng.randrange(0, SIZE - 20000)
    n = rng.choice([1, 7, 511, 512, 513, 1000, 4096, 4097, 12345])
    if rng.random() < 0.5:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        h.pwrite(data, off)
        model[off:off + n] = data
    else:
        got = h.pread(n, off)
        assert got == bytes(model[off:off + n]), "read %d at %d differs from the model" % (n, off)
assert h.pread(SIZE, 0) == bytes(model)

# 256 writes of 37 bytes each, side by side, all in flight at once: every sector is shared by
# several writes, so any lost read-modify-write shows as a missing piece.
base = 1 << 20
pieces = []
cookies = []
for i in range(256):
    data = bytes([(i * 7 + j) & 0xff or 1 for j in range(37)])
    pieces.append(data)
    cookies.append(h.aio_pwrite(data, base + 37 * i))
assert wait_all(h, cookies) == {}
got = h.pread(37 * 256, base)
assert got == b"".join(pieces), "a concurrent unaligned write was lost"

# Aligned writes racing with unaligned ones in the same sectors.
cookies = []
for i in range(64):
    cookies.append(h.aio_pwrite(b"\xaa" * 512, 2 << 20 | (i * 1024)))
    cookies.append(h.aio_pwrite(b"\xbb" * 100, (2 << 20 | (i * 1024)) + 600))
assert wait_all(h, cookies) == {}
for i in range(64):
    s = h.pread(1024, 2 << 20 | (i * 1024))
    assert s[:512] == b"\xaa" * 512 and s[600:700] == b"\xbb" * 100, "sector pair %d mixed up" % i
h.shutdown()
print("ok")
