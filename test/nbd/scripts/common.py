# Shared by the nbdsh scripts of test/nbd: run as `nbdsh -n -c 'SOCKET=...' -c <this> -c <script>`.
import errno
import os
import random
import nbd


def connect(export, structured=True, strict=True, meta=True, opt=False):
    """A new libnbd handle on the test server's Unix socket."""
    h = nbd.NBD()
    h.set_export_name(export)
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        # Let requests the server must refuse reach it instead of being refused by libnbd.
        h.set_strict_mode(0)
    if opt:
        h.set_opt_mode(True)
    h.connect_unix(SOCKET)
    return h


def expect_error(code, fn, *args, **kwargs):
    """fn must fail with NBD error `code` (an errno name)."""
    try:
        fn(*args, **kwargs)
    except nbd.Error as e:
        # libnbd gives the errno's name
        want = errno.errorcode[code]
        assert e.errno == want, "expected %s, got %s (%s)" % (want, e.errno, e.string)
        return e
    raise AssertionError("expected %s from %s, but it succeeded" % (errno.errorcode[code], fn.__name__))


def wait_all(h, cookies):
    """Runs the handle until every command in `cookies` completed; returns {cookie: errno} of failures."""
    errors = {}
    pending = set(cookies)
    while True:
        for c in list(pending):
            try:
                if h.aio_command_completed(c):
                    pending.discard(c)
            except nbd.Error as e:
                errors[c] = e.errno
                pending.discard(c)
        if not pending:
            return errors
        h.poll(-1)
