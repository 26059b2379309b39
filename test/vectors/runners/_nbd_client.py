#!/usr/bin/python3
# The NBD client of the `nbd` vector runner (test/vectors/runners/nbd.js): one long-lived
# process using libnbd (Debian's python3-libnbd), so the I/O of every vector goes through a
# real, independent NBD client rather than the server's own code.
#
# It reads one JSON request per line on stdin and answers each with one JSON line on stdout,
# in completion order (requests run concurrently: a vector's begin/end groups need that):
#   {"id": 1, "op": "socket", "path": "/tmp/x/nbd.sock"}     closes every handle, uses this socket
#   {"id": 2, "op": "io", "dev": "a", "kind": "read", "offset": 0, "count": 4096, "fua": false}
#   {"id": 3, "op": "io", "dev": "a", "kind": "write", "offset": 0, "count": 4096, "data": "<base64>"}
#   {"id": 4, "op": "close", "dev": "a"}                     disconnects from export a (before remove)
# Answers: {"id": 2, "errno": null, "data": "<base64>"} or {"id": 3, "errno": "EIO", "error": "..."}.
# kind is read, write, flush, discard or zeroes. One handle per export, connected on first use,
# with libnbd's client-side checks off so that out-of-range requests reach the server.
import base64
import json
import os
import select
import sys

import nbd

socket_path = None
handles = {}  # export name -> nbd.NBD
pending = []  # [request id, handle, cookie, nbd.Buffer or None]


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def handle_for(dev):
    h = handles.get(dev)
    if h is None:
        h = nbd.NBD()
        h.set_export_name(dev)
        h.set_strict_mode(0)
        h.connect_unix(socket_path)
        handles[dev] = h
    return h


def close(dev):
    h = handles.pop(dev, None)
    if h is None:
        return
    try:
        if not (h.aio_is_dead() or h.aio_is_closed()):
            h.shutdown()
    except nbd.Error:
        pass  # the server went away first: nothing left to close


def start_io(req):
    h = handle_for(req["dev"])
    kind, offset, count = req["kind"], req["offset"], req["count"]
    flags = nbd.CMD_FLAG_FUA if req.get("fua") else 0
    buf = None
    if kind == "read":
        buf = nbd.Buffer(count)
        cookie = h.aio_pread(buf, offset)
    elif kind == "write":
        buf = nbd.Buffer.from_bytearray(bytearray(base64.b64decode(req["data"])))
        cookie = h.aio_pwrite(buf, offset, flags=flags)
    elif kind == "flush":
        cookie = h.aio_flush()
    elif kind == "discard":
        cookie = h.aio_trim(count, offset, flags=flags)
    elif kind == "zeroes":
        cookie = h.aio_zero(count, offset, flags=flags)
    else:
        raise ValueError("unknown io kind %r" % kind)
    pending.append([req["id"], h, cookie, buf if kind == "read" else None])


def run(req):
    global socket_path
    op = req["op"]
    if op == "socket":
        for dev in list(handles):
            close(dev)
        socket_path = req["path"]
        answer({"id": req["id"], "errno": None})
    elif op == "close":
        close(req["dev"])
        answer({"id": req["id"], "errno": None})
    elif op == "io":
        start_io(req)
    else:
        raise ValueError("unknown op %r" % op)


def reap():
    """Answers every finished request."""
    for entry in list(pending):
        rid, h, cookie, buf = entry
        if h.aio_is_dead() or h.aio_is_closed():
            answer({"id": rid, "errno": "ECONNRESET", "error": "the server closed the connection"})
            pending.remove(entry)
            continue
        try:
            if not h.aio_command_completed(cookie):
                continue
            data = base64.b64encode(bytes(buf.to_bytearray())).decode() if buf is not None else None
            answer({"id": rid, "errno": None, "data": data})
        except nbd.Error as e:
            answer({"id": rid, "errno": e.errno, "error": e.string})
        pending.remove(entry)


def main():
    inbuf = b""
    while True:
        # A connection the server closed answers nothing more: forget it (fail what waited on it).
        for dev, h in list(handles.items()):
            if h.aio_is_dead() or h.aio_is_closed():
                reap()
                close(dev)
        rlist, wlist = [0], []
        for h in handles.values():
            d = h.aio_get_direction()
            if d & nbd.AIO_DIRECTION_READ:
                rlist.append(h.aio_get_fd())
            if d & nbd.AIO_DIRECTION_WRITE:
                wlist.append(h.aio_get_fd())
        r, w, _ = select.select(rlist, wlist, [])
        for h in list(handles.values()):
            fd = h.aio_get_fd()
            if fd in r:
                h.aio_notify_read()
            if fd in w:
                h.aio_notify_write()
        if 0 in r:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return
            inbuf += chunk
            while b"\n" in inbuf:
                line, inbuf = inbuf.split(b"\n", 1)
                req = json.loads(line)
                try:
                    run(req)
                except nbd.Error as e:
                    answer({"id": req["id"], "errno": e.errno, "error": e.string})
                except Exception as e:  # a bug in the runner: say so, keep serving
                    answer({"id": req["id"], "errno": "EPROTO", "error": "%s: %s" % (type(e).__name__, e)})
        reap()


main()
