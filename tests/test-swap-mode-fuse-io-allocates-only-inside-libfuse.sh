#!/usr/bin/env bash
# With --swap, I/O on the FUSE file calls no allocator from sgblkd's own
# code: direct-I/O writes and reads of 4 KiB and 64 KiB, fsync, hole
# punching and fstat, counted by the shim (tests/alloc-count.c), show
# every allocator call coming from inside libfuse, which allocates its
# request objects (and the high-level API a buffer per read) whatever a
# file system does.  Their count per request is printed.  The I/O ends
# with 96 MiB of random data, more than the cache memory reserve's high
# watermark, so its refill thread maps and locks memory meanwhile (its
# calls are shown apart, and there must be some).  And libfuse starts no
# worker thread while serving: all were started up front.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires_alloc_shim
requires python3
fuse_mountpoint

LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-f \
  start_sgblkd f --swap --size 128M --mem-limit 192M --fuse "$mnt"
for i in $(seq 100); do grep -q "swap mode:" "$tmp/f.log" && break; sleep 0.1; done
grep "swap mode:" "$tmp/f.log" || fail "swap mode did not start"
for i in $(seq 100); do grep -q "FUSE worker threads started" "$tmp/f.log" && break; sleep 0.1; done
grep "swap mode: 16 FUSE worker threads started" "$tmp/f.log" || fail "the FUSE workers were not started up front"
threads_before=$(awk '/^Threads:/ {print $2}' "/proc/$pid_f/status")

START=$(alloc_count_start_file f) python3 - "$mnt" <<'EOF'
import ctypes, mmap, os, random, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
PUNCH_HOLE_KEEP_SIZE = 3
mnt = sys.argv[1]
disk = os.path.join(mnt, "disk")
fd = os.open(disk, os.O_RDWR | os.O_DIRECT)
dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
buf = mmap.mmap(-1, 1 << 16)              # page-aligned, as O_DIRECT wants
os.pwrite(fd, buf[:4096], 0)              # warm: the first worker thread runs
open(os.environ["START"], "w").close()
random.seed(3)
requests = 0
for i in range(2000):
    n = 4096 if i % 4 else 65536
    off = random.randrange(0, (128 << 20) // n) * n
    buf[:n] = random.randbytes(n)
    os.pwrite(fd, buf[:n], off)
    assert os.pread(fd, n, off) == buf[:n], "data differs at %d" % off
    requests += 2
    if i % 100 == 0:
        os.fsync(fd)
        assert libc.fallocate(fd, PUNCH_HOLE_KEEP_SIZE, ctypes.c_long(off), ctypes.c_long(n)) == 0
        assert os.pread(fd, n, off) == bytes(n)
        st = os.fstat(fd)
        assert st.st_size == 128 << 20, st
        assert stat.S_ISDIR(os.fstat(dfd).st_mode)
        requests += 5
# Eight writers and readers at once: libfuse would start workers now.
import threading
def worker(k):
    b = mmap.mmap(-1, 65536)
    for j in range(100):
        off = ((k * 100 + j) * 65536) % (128 << 20)
        b[:] = bytes([k + 1]) * 65536
        os.pwrite(fd, b, off)
        assert os.pread(fd, 65536, off) == b[:]
ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in ts: t.start()
for t in ts: t.join()
requests += 8 * 100 * 2
# More random data than the cache memory reserve holds.
big = mmap.mmap(-1, 1 << 20)
for off in range(0, 96 << 20, 1 << 20):
    big[:] = random.randbytes(1 << 20)
    os.pwrite(fd, big, off)
    requests += 1
open(os.environ["START"].replace(".start", ".stop"), "w").close()
print("requests:", requests)
with open(os.environ["START"].replace(".start", ".requests"), "w") as f:
    f.write(str(requests))
os.close(fd)
os.close(dfd)
EOF
alloc_count_end f
requests=$(cat "$tmp/alloc-f.requests")
# (The reserve's refill thread maps and locks outside the I/O path.)
own=$(grep -v "^loaded pid" "$tmp/alloc-f.log" | grep -v " thread sgblk-refill$" | grep -c " from sgblkd(" || true)
fuse=$(grep -v "^loaded pid" "$tmp/alloc-f.log" | grep -c " from libfuse3" || true)
echo "allocator calls over $requests requests: $own from sgblkd, $fuse from libfuse ($(echo "scale=1; $fuse / $requests" | bc) a request), $((alloc_calls - own - fuse)) elsewhere; $alloc_refill_calls by the refill thread"
[ "$own" -eq 0 ] || fail "sgblkd's own code allocated on the FUSE path"
[ "$alloc_refill_calls" -gt 0 ] || fail "the reserve's refill thread mapped nothing while 96 MiB were written"
threads_after=$(awk '/^Threads:/ {print $2}' "/proc/$pid_f/status")
echo "threads: $threads_before before the I/O, $threads_after after"
[ "$threads_after" -eq "$threads_before" ] || fail "threads were started while serving"
[ "$alloc_calls" -gt 0 ] || fail "no allocator call seen at all: is the shim counting?"
stop_sgblkd f
