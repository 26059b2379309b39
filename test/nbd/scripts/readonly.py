# A read-only export: advertised as such, and writing commands fail with EPERM.
h = connect(EXPORT, strict=False)
assert h.is_read_only()
assert not h.can_trim() and not h.can_zero() and not h.can_fua()
data = h.pread(4096, 0)
expect_error(errno.EPERM, h.pwrite, b"\x01" * 512, 0)
expect_error(errno.EPERM, h.trim, 512, 0)
expect_error(errno.EPERM, h.zero, 512, 0)
h.flush()
assert h.pread(4096, 0) == data
h.shutdown()
print("ok")
