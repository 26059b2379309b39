# Snapshots taken while a client keeps writing their origin: every snapshot must hold the origin
# as it was when it was created. Writes acknowledged before `dmkit create` began must be in it,
# writes sent after it returned must not, and a write in flight meanwhile may be either way. Every
# write carries its own id, so each block of a snapshot names the one write it holds. Overwrites of
# chunks every snapshot has copied go by the receive thread (host-nbd/engine/origin-marks.js): a
# new snapshot must still get its copies of them.
# Set by the test: ORIGIN (export), IMAGE (origin image), COWS (one COW image per snapshot),
# BLOCKS (4 KiB blocks written, from 0), SEED.
import struct
import subprocess

BLOCK = 4096
SECTORS = BLOCK * BLOCKS // 512
QD = 16
rng = random.Random(SEED)
h = connect(ORIGIN)
next_id = 1
acked = [0] * BLOCKS          # the id of the last acknowledged write of each block (0: never written)
inflight = {}                 # cookie -> (block, id)


def payload(wid):
    return struct.pack("<Q", wid) + bytes([wid % 251]) * (BLOCK - 8)


def reap():
    for c in list(inflight):
        if h.aio_command_completed(c):
            block, wid = inflight.pop(c)
            acked[block] = max(acked[block], wid)  # writes to one block are never in flight together


def write_some(n, issued=None):
    """Keeps QD writes in flight until n more were sent; records (block, id) of each in `issued`."""
    global next_id
    sent = 0
    while sent < n:
        while len(inflight) >= QD:
            h.poll(-1)
            reap()
        busy = {b for b, _ in inflight.values()}
        # Mostly blocks written before (their chunks are copied: the thread's), some new ones.
        block = rng.randrange(BLOCKS // 4) if rng.random() < 0.8 else rng.randrange(BLOCKS)
        if block in busy:
            continue
        wid = next_id
        next_id += 1
        inflight[h.aio_pwrite(payload(wid), block * BLOCK)] = (block, wid)
        if issued is not None:
            issued.append((block, wid))
        sent += 1


def drain():
    while inflight:
        h.poll(-1)
        reap()


def held(data):
    wid = struct.unpack("<Q", data[:8])[0]
    expect = bytes(BLOCK) if wid == 0 else payload(wid)
    assert data == expect, "a block mixes two writes (id %d)" % wid
    return wid


write_some(3000)
expected = []   # per snapshot: per block, the set of ids it may hold
for i, cow in enumerate(COWS):
    name = "under-load-%d" % i
    reap()
    allowed = [{acked[b]} for b in range(BLOCKS)]
    for block, wid in inflight.values():
        allowed[block].add(wid)
    table = "0 %d snapshot %s %s N 8" % (SECTORS, IMAGE, cow)
    proc = subprocess.Popen(DMKIT + ["create", name, "--table", table, "--control", CONTROL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    during = []
    while proc.poll() is None:
        write_some(QD, during)
    out, err = proc.communicate()
    assert proc.returncode == 0, "dmkit create failed: %s" % err
    for block, wid in during:
        allowed[block].add(wid)
    expected.append((name, allowed))
    write_some(1500)
drain()

# Each snapshot, read through its own export, holds one allowed write per block.
for name, allowed in expected:
    s = connect(name)
    for b in range(BLOCKS):
        wid = held(s.pread(BLOCK, b * BLOCK))
        assert wid in allowed[b], "%s block %d holds write %d, not one of %s" % (name, b, wid, sorted(allowed[b]))
    s.shutdown()
# And the origin holds the last write of each block.
for b in range(BLOCKS):
    assert held(h.pread(BLOCK, b * BLOCK)) == acked[b], "origin block %d" % b
h.shutdown()
print("ok %d writes" % (next_id - 1))
