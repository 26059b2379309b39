# TRIM, WRITE_ZEROES (with NO_HOLE and FAST_ZERO) and CACHE. EXPORT is a linear device over a
# sparse image that nothing wrote before this script.
MiB = 1 << 20
h = connect(EXPORT)
assert h.can_trim() and h.can_zero() and h.can_fast_zero() and h.can_cache()
h.pwrite(b"\x5a" * (2 * MiB), 0)
# write-zeroes, including partial sectors at both edges
h.zero(100000, 1000)
assert h.pread(100000, 1000) == b"\0" * 100000
assert h.pread(1000, 0) == b"\x5a" * 1000 and h.pread(1, 100999) == b"\0" and h.pread(1, 101000) == b"\x5a"
# NO_HOLE: zeroes must read back as zeroes just the same
h.zero(65536, 300000, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(65536, 300000) == b"\0" * 65536
# FAST_ZERO where the device holds data: refused at once with ENOTSUP, nothing changed
expect_error(errno.ENOTSUP, h.zero, 4096, MiB, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(4096, MiB) == b"\x5a" * 4096
# FAST_ZERO where the image was never written: known zero, succeeds
h.zero(MiB, 8 * MiB, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(MiB, 8 * MiB) == b"\0" * MiB
# trim: whole sectors are discarded (read back as zero here), partial edge sectors kept
h.pwrite(b"\x5a" * 4096, 0)
h.trim(1998, 1124)  # bytes 1124..3121: sectors 3-5 whole, sectors 2 and 6 in part
got = h.pread(4096, 0)
assert got[:1536] == b"\x5a" * 1536 and got[1536:3072] == b"\0" * 1536 and got[3072:] == b"\x5a" * 1024
# CACHE succeeds and changes nothing
h.cache(MiB, 0)
assert h.pread(4096, MiB + 4096) == b"\x5a" * 4096
# FUA on every writing command
h.pwrite(b"\x77" * 4096, 3 * MiB, nbd.CMD_FLAG_FUA)
h.zero(4096, 3 * MiB + 4096, nbd.CMD_FLAG_FUA)
h.trim(4096, 3 * MiB + 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 3 * MiB) == b"\x77" * 4096
h.shutdown()
print("ok")
