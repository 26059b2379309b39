# Option haggling as libnbd's opt mode drives it: LIST, INFO on good and bad names,
# LIST_META_CONTEXT, then GO; and ABORT.
h = connect("", opt=True, meta=False)
names = []
h.opt_list(lambda name, desc: names.append((name, desc)) or 0)
assert sorted(n for n, _ in names) == sorted(EXPORTS), names
assert all(d.startswith("dmkit mapped device") for _, d in names)
h.set_export_name("no-such-export")
expect_error(errno.ENOENT, h.opt_info)
h.set_export_name(EXPORTS[0])
h.opt_info()
assert h.get_size() > 0
contexts = []
assert h.opt_list_meta_context(lambda name: contexts.append(name) or 0) == 1
assert contexts == ["base:allocation"], contexts
h.add_meta_context("base:allocation")
h.add_meta_context("x-unknown:thing")
h.opt_go()
assert h.can_meta_context("base:allocation") and not h.can_meta_context("x-unknown:thing")
h.pread(512, 0)
h.shutdown()

a = connect("", opt=True)
a.opt_abort()
assert a.aio_is_closed()
print("ok")
