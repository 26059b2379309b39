# Reload under load: a client keeps writing and reading back while the device's table is
# reloaded and swapped in at resume. The new table maps the same image in two segments, so the
# data must stay exactly what the client wrote, through the swap.
import subprocess


def dmkit(*args):
    r = subprocess.run(DMKIT + list(args) + ["--control", CONTROL], capture_output=True, text=True)
    assert r.returncode == 0, "dmkit %s failed: %s" % (" ".join(args), r.stderr)
    return r.stdout


SIZE = SECTORS * 512
h = connect(EXPORT)
model = bytearray(h.pread(SIZE, 0))
rng = random.Random(99)
old = dmkit("table", EXPORT)
new = "0 %d linear %s 0\n%d %d linear %s %d\n" % (SECTORS // 2, IMAGE, SECTORS // 2, SECTORS // 2, IMAGE, SECTORS // 2)
stage = 0
for i in range(4000):
    # A burst of writes in flight, each read back once the burst completes.
    if i % 8 == 0:
        burst = []
    off = rng.randrange(0, SIZE - 8192) & ~511
    data = bytes([rng.randrange(1, 256)]) * 8192
    burst.append((off, data, h.aio_pwrite(data, off)))
    if len(burst) == 8:
        assert wait_all(h, [c for _, _, c in burst]) == {}
        for off, data, _ in burst:
            model[off:off + len(data)] = data
        for off, data, _ in burst:
            assert h.pread(len(data), off) == bytes(model[off:off + len(data)])
    if i == 1000:
        dmkit("reload", EXPORT, "--table", new)
        # Loaded, not live yet.
        assert dmkit("table", EXPORT) == old
        assert dmkit("table", EXPORT, "--inactive").strip() == new.strip()
        assert "LIVE & INACTIVE" in dmkit("info", EXPORT)
    if i == 2500:
        dmkit("resume", EXPORT)
        assert dmkit("table", EXPORT).strip() == new.strip()
assert h.pread(SIZE, 0) == bytes(model)
h.shutdown()
print("ok")
