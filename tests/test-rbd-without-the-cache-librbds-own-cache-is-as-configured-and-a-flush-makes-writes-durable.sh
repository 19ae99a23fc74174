#!/usr/bin/env bash
# With --cache-mode off, librbd's own cache is what the Ceph configuration
# says (its default: on, write-through until the first flush), as for
# qemu and rbd-nbd; FILE's :rbd_cache=false turns it off.  Two images of
# one daemon, each flushed once, then the only OSD is stopped:
# - on the default one, a write is acknowledged at once (from librbd's
#   cache), but a FLUSH is not: it fails with EIO after the store timeout,
#   since the write is not on the OSD;
# - on the one with :rbd_cache=false, the same write waits for the OSD
#   and fails with EIO after the timeout;
# after SIGCONT a FLUSH succeeds, and qemu's rbd: driver finds the write
# in the image.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires nbdsh qemu-img timeout

ceph_start
rbd create --size 64M rbd/on
rbd create --size 64M rbd/off
cat >"$tmp/sgblkd.conf" <<CONF
[sgblkd]
cache-mode = off
store-timeout = 5

[on]
file = rbd:rbd/on:conf=$CEPH_CONF

[off]
file = rbd:rbd/off:conf=$CEPH_CONF:rbd_cache=false
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
uri () { echo "nbd+unix:///$1?socket=$tmp/cfg.sock"; }

# Each connection writes and flushes once first: librbd's cache is
# write-through until a client has shown that it flushes.
for e in on off; do
  nbdsh -u "$(uri $e)" -c 'h.pwrite(b"\x11" * 65536, 0); h.flush()'
done

kill -STOP "$ceph_osd_pid"
cleanup_fn "kill -CONT $ceph_osd_pid 2>/dev/null"
timeout 60 nbdsh -u "$(uri on)" -c '
import errno, time
h.flush()                     # nothing dirty: answered without the OSD
t = time.monotonic()
h.pwrite(b"\x5a" * 65536, 1 << 20)
w = time.monotonic() - t
assert w < 3, "a write waited %.1f s for the stopped OSD: librbd has no cache" % w
t = time.monotonic()
try:
    h.flush()
    raise AssertionError("a FLUSH succeeded with the write only in memory")
except nbd.Error as e:
    assert e.errnum == errno.EIO, "got %s, want EIO" % e.errno
took = time.monotonic() - t
assert 5 <= took < 40, "the FLUSH failed after %.1f s, want the timeout of 5 s" % took
print("default: write acknowledged in %.3f s; FLUSH EIO after %.1f s" % (w, took))
' || fail "with --cache-mode off, librbd's cache is not as configured, or a FLUSH lied"

timeout 60 nbdsh -u "$(uri off)" -c '
import errno, time
t = time.monotonic()
try:
    h.pwrite(b"\x5a" * 65536, 1 << 20)
    raise AssertionError("a write succeeded with the librbd cache off and the OSD stopped")
except nbd.Error as e:
    assert e.errnum == errno.EIO, "got %s, want EIO" % e.errno
took = time.monotonic() - t
assert 5 <= took < 40, "the write failed after %.1f s, want the timeout of 5 s" % took
print(":rbd_cache=false: write EIO after %.1f s" % took)
' || fail ":rbd_cache=false did not turn librbd's cache off"

kill -CONT "$ceph_osd_pid"
timeout 60 nbdsh -u "$(uri on)" -c 'h.flush()' ||
  fail "the FLUSH did not succeed once the OSD was back"
stop_sgblkd cfg
qemu-img convert -f raw -O raw "rbd:rbd/on:conf=$CEPH_CONF" "$tmp/on.raw"
head -c 65536 /dev/zero | tr '\0' '\132' | cmp - <(tail -c +$(((1 << 20) + 1)) "$tmp/on.raw" | head -c 65536) ||
  fail "the write acknowledged from librbd's cache is not in the image after the FLUSH"
echo "cache off: librbd's cache as configured; a FLUSH succeeds only when the write is on the OSD"
