#!/usr/bin/env bash
# An RBD image served with --cache-mode off and librbd's cache off: its
# reads and writes are in flight in librbd, not in the NBD server's
# worker threads.  With two workers for two exports:
# - 256 MiB round-trip with nbdcopy (many requests at once) and qemu's
#   rbd: driver reads the same image;
# - an aligned write of a block races a read-modify-write of a few bytes
#   of it, 400 times: the block ends as one of the two orders, never with
#   the write lost under the read-modify-write's stale copy;
# - with the only OSD stopped, 16 requests wait on the image, and the
#   memory export is copied in and out meanwhile; they fail with EIO after
#   the store timeout, and after SIGCONT the image serves again and
#   qemu's driver finds the writes made after.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires nbdcopy nbdsh qemu-img qemu-io timeout

ceph_start
rbd create --size 256M rbd/img
img="rbd:rbd/img:conf=$CEPH_CONF"
cat >"$tmp/sgblkd.conf" <<CONF
[sgblkd]
threads = 2

[ceph]
file = $img:rbd_cache=false
cache-mode = off
store-timeout = 5

[mem]
size = 64M
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
ceph_uri="nbd+unix:///ceph?socket=$tmp/cfg.sock"
mem_uri="nbd+unix:///mem?socket=$tmp/cfg.sock"

random_file "$tmp/data" 256
nbdcopy "$tmp/data" "$ceph_uri"
nbdcopy "$ceph_uri" "$tmp/out"
cmp "$tmp/data" "$tmp/out" || fail "the image read back differs from what was written"
qemu-img compare -f raw -F raw "$ceph_uri" "$img" ||
  fail "sgblkd's export and qemu's rbd: driver differ"

# Both requests are sent before either is answered; the server runs them
# at once (the aligned one in flight in librbd, the other in a worker).
nbdsh -c '
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri("'"$ceph_uri"'")
bs, base = 4096, 100 << 20
for i in range(400):
    off = base + (i % 64) * bs
    a = bytes([i % 251 + 1]) * bs
    b = bytes([255 - i % 200]) * 100
    ca = h.aio_pwrite(a, off)
    cb = h.aio_pwrite(b, off + 1000)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    assert h.aio_command_completed(ca) and h.aio_command_completed(cb)
    got = h.pread(bs, off)
    ok = got == a or got == a[:1000] + b + a[1100:]
    assert ok, "round %d: the block is neither order of the two writes (%r ...)" % (i, got[:8])
print("400 races, every block one of the two orders")
' || fail "an aligned write was lost under a read-modify-write of the same block"

kill -STOP "$ceph_osd_pid"
cleanup_fn "kill -CONT $ceph_osd_pid 2>/dev/null"
timeout 60 nbdsh -u "$ceph_uri" -c '
import errno, time
t = time.monotonic()
pending = [h.aio_pread(bytearray(65536), (i << 20)) for i in range(8)] + \
          [h.aio_pwrite(b"\x77" * 65536, (i << 20) + 65536) for i in range(8)]
while pending:
    h.poll(-1)
    for c in list(pending):
        try:
            done = h.aio_command_completed(c)
        except nbd.Error as e:
            assert e.errnum == errno.EIO, "got %s, want EIO" % e.errno
            pending.remove(c)
            continue
        assert not done, "a request succeeded while the only OSD was stopped"
took = time.monotonic() - t
assert 5 <= took < 40, "answered after %.1f s, want the timeout of 5 s or a few of them" % took
print("16 requests answered EIO after %.1f s" % took)
' >"$tmp/eio.out" 2>&1 &
eio=$!
# The workers are free for the other export meanwhile.
stalled_requests_cost_mem_uri_nothing "$eio" "$mem_uri" "$tmp/cfg.log" 5

kill -CONT "$ceph_osd_pid"
timeout 60 nbdsh -u "$ceph_uri" -c '
h.pwrite(b"\x5a" * 65536, 8 << 20)
h.flush()
assert h.pread(65536, 8 << 20) == b"\x5a" * 65536
' || fail "I/O did not resume after the OSD came back"
stop_sgblkd cfg
qemu-img convert -f raw -O raw "$img" "$tmp/image.raw"
head -c 65536 /dev/zero | tr '\0' '\132' | cmp - <(tail -c +$(((8 << 20) + 1)) "$tmp/image.raw" | head -c 65536) ||
  fail "the write made after the outage is not in the image"
echo "cache off: round trip, 400 races, 16 stalled requests held no worker"
