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
#   qemu's driver finds the writes made after;
# - with the OSD stopped again, writes fail with EIO while librbd still
#   holds them, and more writes take their buffers from the pool: after
#   SIGCONT the failed writes' blocks hold their old data or that
#   write's, never a later write's (librbd copies a write before
#   rbd_aio_write returns, or the store bounces it).
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

# A write that failed must not take data that is not its own to the
# cluster.  With the OSD stopped, 16 MiB of writes (more than the sockets
# to the OSD hold) fail with EIO; 16 MiB more, sent on the same
# connection right after, take their buffers back from the pool and
# succeed once the OSD is back.
kill -STOP "$ceph_osd_pid"
timeout 60 nbdsh -u "$ceph_uri" -c '
import errno
mib = 1 << 20
first = [h.aio_pwrite(b"\x77" * mib, (16 + i) * mib) for i in range(16)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in first:
    try:
        h.aio_command_completed(c)
        assert False, "a write succeeded while the only OSD was stopped"
    except nbd.Error as e:
        assert e.errnum == errno.EIO, "got %s, want EIO" % e.errno
second = [h.aio_pwrite(b"\x99" * mib, (32 + i) * mib) for i in range(16)]
for i in range(20):
    h.poll(50)
open("'"$tmp"'/second-sent", "w").close()
while h.aio_in_flight() > 0:
    h.poll(-1)
assert all(h.aio_command_completed(c) for c in second)
h.flush()
print("16 writes failed with EIO; the 16 sent after them succeeded")
' >"$tmp/reuse.out" 2>&1 &
reuse=$!
for i in $(seq 300); do [ -f "$tmp/second-sent" ] || ! kill -0 "$reuse" 2>/dev/null && break; sleep 0.1; done
kill -CONT "$ceph_osd_pid"
wait "$reuse" || { cat "$tmp/reuse.out"; fail "the writes after the failed ones did not succeed"; }
cat "$tmp/reuse.out"
stop_sgblkd cfg
qemu-img convert -f raw -O raw "$img" "$tmp/image.raw"
head -c 65536 /dev/zero | tr '\0' '\132' | cmp - <(tail -c +$(((8 << 20) + 1)) "$tmp/image.raw" | head -c 65536) ||
  fail "the write made after the outage is not in the image"
# The failed writes of 16-31 MiB reached the OSD after SIGCONT: each MiB
# holds what it held before or what its write sent, never the data of
# the later writes to 32-47 MiB, which took the failed writes' buffers
# while those still waited in librbd to be sent.
head -c $((1 << 20)) /dev/zero | tr '\0' '\167' >"$tmp/x77"
head -c $((1 << 20)) /dev/zero | tr '\0' '\231' >"$tmp/x99"
for mib in $(seq 16 47); do
  tail -c +$(((mib << 20) + 1)) "$tmp/image.raw" | head -c $((1 << 20)) >"$tmp/got"
  if [ "$mib" -ge 32 ]; then
    cmp -s "$tmp/got" "$tmp/x99" || fail "MiB $mib does not hold its acknowledged write"
  else
    cmp -s "$tmp/got" "$tmp/x77" ||
      cmp -s "$tmp/got" <(tail -c +$(((mib << 20) + 1)) "$tmp/data" | head -c $((1 << 20))) ||
      fail "MiB $mib, written by a write that failed, holds neither its old data nor that write's"
  fi
done
echo "cache off: round trip, 400 races, 16 stalled requests held no worker"
