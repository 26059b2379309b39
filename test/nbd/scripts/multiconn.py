# CAN_MULTI_CONN: what one connection wrote and flushed, another sees; a flush on one
# connection covers writes answered on another.
a = connect(EXPORT)
b = connect(EXPORT)
assert a.can_multi_conn() and b.can_multi_conn()
a.pwrite(b"\x61" * 65536, 0)
b.flush()
assert b.pread(65536, 0) == b"\x61" * 65536
cookies = [a.aio_pwrite(bytes([i]) * 4096, i * 4096) for i in range(1, 64)]
assert wait_all(a, cookies) == {}
for i in range(1, 64):
    assert b.pread(4096, i * 4096) == bytes([i]) * 4096
a.shutdown()
b.shutdown()
print("ok")
