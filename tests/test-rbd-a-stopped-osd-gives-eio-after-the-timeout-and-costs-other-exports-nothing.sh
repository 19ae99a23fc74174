#!/usr/bin/env bash
# The cluster's only OSD stops answering (SIGSTOP) under a daemon that
# serves an RBD image (--store-timeout 5) and an in-memory disk from one
# --config file.  A FLUSH of the image's dirty data and a read the cache
# cannot answer fail with EIO after about the timeout, said once in the
# log; the memory export is copied in and out while they wait.  (A
# request waiting for the cluster holds one of the NBD server's worker
# threads, which all exports share: the daemon has more than the
# stalled requests here.)  After SIGCONT the same FLUSH and read succeed, and qemu's
# rbd: driver finds every write in the image.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires nbdcopy nbdsh qemu-img qemu-io timeout

ceph_start
rbd create --size 64M rbd/img
# Data the daemon's cache has never seen (librbd answers reads of objects
# that do not exist without asking an OSD).
qemu-io -f raw -c 'write -P 0x33 32M 1M' "rbd:rbd/img:conf=$CEPH_CONF" >/dev/null
cat >"$tmp/sgblkd.conf" <<CONF
[sgblkd]
threads = 8

[ceph]
file = rbd:rbd/img:conf=$CEPH_CONF
store-timeout = 5

[mem]
size = 64M
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
ceph_uri="nbd+unix:///ceph?socket=$tmp/cfg.sock"
mem_uri="nbd+unix:///mem?socket=$tmp/cfg.sock"

random_file "$tmp/data" 4
nbdcopy "$tmp/data" "$ceph_uri"
nbdsh -u "$ceph_uri" -c 'h.flush()'

kill -STOP "$ceph_osd_pid"
# A write is taken by the cache; its FLUSH, and a read of data the cache
# does not hold, wait for the OSD, then fail.
# (Bounded: without the timeout they would wait for as long as the OSD.)
timeout 60 nbdsh -u "$ceph_uri" -c "$nbd_expect" -c '
import time
h.pwrite(b"\x5a" * 65536, 8 << 20)
t = time.monotonic()
expect(errno.EIO, h.flush)
expect(errno.EIO, h.pread, 65536, 32 << 20)
took = time.monotonic() - t
assert 5 <= took < 40, "EIO after %.1f s, want the timeout of 5 s or a few of them" % took
print("EIO after %.1f s" % took)
' >"$tmp/eio.out" 2>&1 &
eio=$!
# Meanwhile the other export serves as usual, done before they fail.
stalled_requests_cost_mem_uri_nothing "$eio" "$mem_uri" "$tmp/cfg.log" 5

kill -CONT "$ceph_osd_pid"
timeout 60 nbdsh -u "$ceph_uri" -c '
h.flush()
assert h.pread(65536, 8 << 20) == b"\x5a" * 65536
assert h.pread(65536, 32 << 20) == b"\x33" * 65536
' || fail "I/O did not resume after the OSD came back"
stop_sgblkd cfg

# Every write is in the image, read by qemu's driver.
qemu-img convert -f raw -O raw "rbd:rbd/img:conf=$CEPH_CONF" "$tmp/image.raw"
cmp -n $((4 << 20)) "$tmp/data" "$tmp/image.raw" || fail "data flushed before the outage was lost"
head -c 65536 /dev/zero | tr '\0' '\132' | cmp - <(tail -c +$(((8 << 20) + 1)) "$tmp/image.raw" | head -c 65536) ||
  fail "the write made during the outage is not in the image after it"
echo "EIO during the outage, the memory export unaffected, every write kept"
