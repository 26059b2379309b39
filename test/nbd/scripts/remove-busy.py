# dmkit remove while a client has the device open is refused like dmsetup's "device busy";
# once the client is gone it works.
import subprocess


def dmkit(*args):
    return subprocess.run(DMKIT + list(args) + ["--control", CONTROL], capture_output=True, text=True)


h = connect(EXPORT)
r = dmkit("remove", EXPORT)
assert r.returncode == 1, r
assert r.stderr.strip() == "dmkit remove: %s: Device or resource busy (device %s is busy: open 1 time(s))" % (EXPORT, EXPORT), r.stderr
h.pwrite(b"still here" * 100, 0)
assert h.pread(1000, 0) == b"still here" * 100
h.shutdown()
r = dmkit("remove", EXPORT)
assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
print("ok")
