# dmkit suspend while requests are in flight: new I/O is held (not failed) until dmkit resume,
# and nothing is lost. (That suspend waits for the device's in-flight I/O is checked in
# test/nbd/suspend.test.js, where the backing I/O can be slowed down.) Needs DMKIT and CONTROL.
import subprocess
import time


def dmkit(*args):
    r = subprocess.run(DMKIT + list(args) + ["--control", CONTROL], capture_output=True, text=True)
    assert r.returncode == 0, "dmkit %s failed: %s" % (" ".join(args), r.stderr)
    return r.stdout


MiB = 1 << 20
h = connect(EXPORT)
cookies = [h.aio_pwrite(bytes([i + 1]) * MiB, i * MiB) for i in range(32)]
# Suspend with writes in flight: those the device had started are drained, the rest are held.
for _ in range(3):
    h.poll(0)
dmkit("suspend", EXPORT)
assert "State:             SUSPENDED" in dmkit("info", EXPORT)
# I/O sent now is held, not failed.
held = h.aio_pread(nbd.Buffer(MiB), 3 * MiB)
deadline = time.time() + 0.5
while time.time() < deadline:
    h.poll(50)
    assert not h.aio_command_completed(held), "a read completed while the device was suspended"
dmkit("resume", EXPORT)
assert wait_all(h, cookies + [held]) == {}
assert "State:             ACTIVE" in dmkit("info", EXPORT)
for i in range(32):
    assert h.pread(4096, i * MiB + MiB - 4096) == bytes([i + 1]) * 4096
h.shutdown()
print("ok")
