#!/usr/bin/env bash
# A client killed with 64 writes in flight while the write-back cache is
# full of dirty data: every write it saw acknowledged reads back, through
# a new connection and, after SIGTERM, straight from the file.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

start_sgblkd file --create --size 128M --cache-size 33M "$tmp/disk.img"
# Incompressible 64 KiB writes fill a 33 MiB cache (the least that holds
# one largest request) with dirty data fast.
PYTHONUNBUFFERED=1 nbdsh -u "$uri" -c '
import os, struct
bs = 65536
acked = open("'"$tmp"'/acked", "w")
issued = open("'"$tmp"'/issued", "w")
def done(label, err):
    if err.value == 0:
        acked.write(label + "\n"); acked.flush()
    return 0
n = h.get_size() // bs
rnd = 0
while True:
    rnd += 1
    for i in range(n):
        while h.aio_in_flight() >= 64:
            h.poll(-1)
        seed = os.urandom(8)
        data = (struct.pack("<Q", i) + seed) * (bs // 16)
        issued.write("%d %s\n" % (i, seed.hex())); issued.flush()
        h.aio_pwrite(data, i * bs,
                     completion=lambda err, l="%d %s" % (i, seed.hex()): done(l, err))
        if rnd > 1 and i == n // 2 and h.aio_in_flight() >= 32:
            os.kill(os.getpid(), 9)      # vanish with writes in flight
' >"$tmp/client.out" 2>&1 || true
n=$(wc -l <"$tmp/acked")
echo "$n writes acknowledged before the client vanished"
[ "$n" -gt 2048 ] || fail "the client died too early ($n)"

check='
import struct
bs = 65536
issued, acked = {}, set()
for line in open("'"$tmp"'/issued"):
    i, seed = line.split()
    issued.setdefault(int(i), []).append(seed)
for line in open("'"$tmp"'/acked"):
    acked.add(tuple(line.split()))
bad = 0
for i, seeds in issued.items():
    last = max((k for k, s in enumerate(seeds) if (str(i), s) in acked), default=None)
    if last is None:
        continue
    got = read(i * bs, bs)
    gi, gseed = struct.unpack("<Q8s", got[:16])
    # The last acknowledged write, or a later one; never older data.
    if gi != i or gseed.hex() not in seeds[last:] or got != got[:16] * (bs // 16):
        bad += 1
print(len(issued), "blocks checked,", bad, "bad")
assert bad == 0
'
# Through a new connection: each block holds the last acknowledged write
# or a later (unacknowledged) one for the same block, never older data.
nbdsh -u "$uri" -c "read = lambda off, n: h.pread(n, off)
$check"
stop_sgblkd file
# Straight from the file, after SIGTERM flushed the cache.
/usr/bin/env python3 -c "
f = open('$tmp/disk.img', 'rb')
def read(off, n):
    f.seek(off); return f.read(n)
$check"
