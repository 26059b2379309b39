# Requests the server must refuse, and refuses with the spec's error while the connection
# (and the data) stay fine: past the end, larger than the maximum, unknown flags, zero length.
h = connect(EXPORT, strict=False)
size = h.get_size()
h.pwrite(b"\x11" * 4096, 0)
expect_error(errno.EINVAL, h.pread, 1024, size - 512)
expect_error(errno.EINVAL, h.pread, 512, size)
expect_error(errno.EINVAL, h.pread, 512, (1 << 63) - 512)
expect_error(errno.ENOSPC, h.pwrite, b"\x22" * 1024, size - 512)
expect_error(errno.EINVAL, h.trim, 1024, size - 512)
expect_error(errno.ENOSPC, h.zero, 1024, size - 512)
expect_error(errno.EINVAL, h.cache, 1024, size - 512)
expect_error(errno.EINVAL, h.block_status, 1024, size - 512, lambda *a: 0)
# Over the 32 MiB maximum request: refused; a WRITE's payload is skipped, not parsed as requests.
big = (32 << 20) + 512
if size >= big:
    expect_error(errno.EINVAL, h.pread, big, 0)
    expect_error(errno.EINVAL, h.pwrite, b"\x33" * big, 0)
    expect_error(errno.EINVAL, h.cache, big, 0)
# Flags not valid for the command, or unknown.
expect_error(errno.EINVAL, h.pread, 512, 0, nbd.CMD_FLAG_NO_HOLE)
expect_error(errno.EINVAL, h.pwrite, b"\x44" * 512, 0, nbd.CMD_FLAG_REQ_ONE)
expect_error(errno.EINVAL, h.pread, 512, 0, 1 << 9)
# Zero-length requests succeed and change nothing.
assert h.pread(0, 0) == b""
h.pwrite(b"", 100)
h.trim(0, 4096)
h.zero(0, 4096)
h.cache(0, 0)
h.flush()
# Nothing above changed the data or broke the stream.
assert h.pread(4096, 0) == b"\x11" * 4096
assert h.pread(512, size - 512) is not None
h.shutdown()
print("ok")
