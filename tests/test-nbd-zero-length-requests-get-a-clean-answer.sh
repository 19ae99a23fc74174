#!/usr/bin/env bash
# A zero-length request of every command, with and without structured
# replies, at the start and at the very end of the disk: each gets a
# clean error (EINVAL) or succeeds, its reply is one the client accepts,
# and the connection goes on serving reads and writes.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

start_sgblkd zl --size 16M
for structured in True False; do
  nbdsh -c '
import errno
h.set_request_structured_replies('"$structured"')
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
# Let zero-length requests reach the server instead of refusing them here.
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ZERO_SIZE)
h.connect_uri("'"$uri"'")
size = h.get_size()
assert h.get_structured_replies_negotiated() == '"$structured"'
def answer(name, f):
    try:
        f()
        return "ok"
    except nbd.Error as e:
        assert e.errno == "EINVAL", "%s: %s" % (name, e)
        return "EINVAL"
def status_cb(meta, off, entries, err):
    return 0
calls = {
    "read": lambda off: h.pread(0, off),
    "write": lambda off: h.pwrite(b"", off),
    "trim": lambda off: h.trim(0, off),
    "write_zeroes": lambda off: h.zero(0, off),
    "cache": lambda off: h.cache(0, off),
    "flush": lambda off: h.flush(),
}
if '"$structured"':
    calls["block_status"] = lambda off: h.block_status(0, off, status_cb)
for off in (0, 4096, size):
    for name, f in calls.items():
        what = answer(name, lambda: f(off))
        # The connection still works after each one.
        h.pwrite(b"x" * 512, 512)
        assert h.pread(512, 512) == b"x" * 512, "connection broken after %s" % name
        print("structured=%s zero-length %s at %d: %s" % ('"$structured"', name, off, what))
h.shutdown()
'
done
stop_sgblkd zl
