#!/usr/bin/env bash
# With --swap, serving I/O calls no allocator: the daemon runs under the
# counting shim (tests/alloc-count.c), and between the moment two NBD
# connections are up and the moment they are done, mixed reads, writes
# (512 B to 2 MiB, up to 64 in flight), flushes, trims, zeroes and block
# status, on the in-memory disk (with every third command allocation
# failing, so the reserve serves too) and on a file behind a write-back
# cache small enough to write back and evict, make no malloc-family call
# and none that maps, locks or advises memory.  They write several times
# the cache memory reserve's high watermark, so its refill thread maps
# and locks memory meanwhile, outside the I/O path: its calls are shown
# apart, and it must have made some.  The data reads back as written,
# and the export tells clients its 2 MiB payload limit and refuses more
# with EINVAL.  A third run holds the in-memory disk to 16 MiB with a
# spill file: blocks go to the file and come back, with no allocator
# call either, and the idle pass (--recompress-idle 1) recompresses
# blocks meanwhile.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh nbdinfo jq
requires_test_hooks
requires_alloc_shim
[ "$(id -u)" -eq 0 ] || [ "$(ulimit -l)" = unlimited ] || skip "mlockall needs root or an unlimited RLIMIT_MEMLOCK"

# exercise NAME: the I/O, counted; fails unless no allocator call was made.
exercise ()
{
  local name=$1
  for i in $(seq 100); do grep -q "swap mode:" "$tmp/$name.log" && break; sleep 0.1; done
  grep "swap mode:" "$tmp/$name.log" || fail "$name: swap mode did not start"
  max=$(nbdinfo --json "$uri" | jq '.exports[0]["block_size_maximum"]')
  [ "$max" -eq $((2 << 20)) ] || fail "$name: maximum payload $max, not 2 MiB"
  # The script starts the count itself, once its connections are up.
  START=$(alloc_count_start_file "$name") nbdsh -c - <<EOF
import os, random
random.seed(7)
START = os.environ["START"]
SIZE = 256 << 20
h2 = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h2.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_unix("$sock")
h2.connect_unix("$sock")
model = {}                            # 4 KiB block -> its bytes

def data(n, seed):
    # Half compressible, half not, like most pages.
    r = random.Random(seed)
    return r.randbytes(n // 2) + bytes([seed % 251]) * (n - n // 2)

def write(hh, off, buf):
    hh.pwrite(buf, off)
    for i in range(0, len(buf), 4096):
        model[(off + i) // 4096] = buf[i:i + 4096]

write(h, 0, data(1 << 20, 1))         # both connections warm
h2.pread(4096, 0)
open(START, "w").close()

for step in range(300):
    hh = h if step % 2 else h2
    n = random.choice([4096, 8192, 16384, 65536, 131072, 1 << 20, 2 << 20])
    off = random.randrange(0, (SIZE - n) // 4096) * 4096
    if random.random() < 0.6:
        write(hh, off, data(n, step))
    else:
        hh.pread(n, off)
    if step % 40 == 0:
        hh.flush()
        t = random.randrange(0, SIZE // 65536) * 65536
        hh.trim(65536, t)
        for b in range(t // 4096, t // 4096 + 16): model[b] = bytes(4096)
        z = random.randrange(0, SIZE // 65536) * 65536
        hh.zero(65536, z)
        for b in range(z // 4096, z // 4096 + 16): model[b] = bytes(4096)
        hh.block_status(1 << 20, 0, lambda *a: 0)
    if step % 7 == 0:
        hh.pwrite(b"x" * 512, off + 512)          # sub-page: read-modify-write
        blk = model.get(off // 4096, bytes(4096))
        model[off // 4096] = blk[:512] + b"x" * 512 + blk[1024:]

# 64 writes in flight on one connection.
for i in range(64):
    buf = data(16384, 1000 + i)
    h.aio_pwrite(buf, (100 << 20) + i * 16384)
    for j in range(4): model[((100 << 20) + i * 16384) // 4096 + j] = buf[j * 4096:(j + 1) * 4096]
while h.aio_in_flight() > 0:
    h.poll(-1)
h.flush()
for b, want in sorted(model.items()):
    got = h2.pread(4096, b * 4096)
    assert got == want, "block %d differs" % b
open(START.replace(".start", ".stop"), "w").close()
print("blocks verified:", len(model))

try:
    h.pwrite(bytes(4 << 20), 0)
    raise SystemExit("a 4 MiB write was accepted")
except nbd.Error as e:
    assert e.errno == "EINVAL", e
h.shutdown()
h2.shutdown()
EOF
  alloc_count_end "$name"
  echo "$name: allocator calls while serving: $alloc_calls"
  [ "$alloc_calls" -eq 0 ] || fail "$name: the I/O path called the allocator (callers above)"
  kill -USR1 "$(eval echo \$pid_$name)"
  sleep 0.5
  grep -E "cmd pool:|sgv pool:|cache " "$tmp/$name.log" | tail -n 4
  # The memory came through the reserve, which the refill thread refilled.
  local initial line mapped waits
  initial=$(sed -nE 's/.*locked reserve of ([0-9]+) bytes.*/\1/p' "$tmp/$name.log")
  line=$(grep 'cache reserve:' "$tmp/$name.log" | tail -n 1)
  mapped=$(echo "$line" | sed -nE 's/.* mapped ([0-9]+) B .*/\1/p')
  waits=$(echo "$line" | sed -nE 's/.* waits ([0-9]+) .*/\1/p')
  [ -n "$initial" ] && [ -n "$mapped" ] && [ -n "$waits" ] || fail "$name: no word on the cache memory reserve"
  [ "$mapped" -gt "$initial" ] || fail "$name: the reserve was never refilled ($mapped bytes mapped)"
  [ "$alloc_refill_calls" -gt 0 ] || fail "$name: the refill thread mapped nothing while serving"
}

LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-mem SGBLK_TEST_CMD_FAIL_EVERY=3 \
  start_sgblkd mem --swap --size 256M --mem-limit 96M
exercise mem
grep 'cmd pool:' "$tmp/mem.log" | tail -n 1 | grep -qE 'allocated 256 .* fallbacks [1-9]' ||
  fail "mem: the reserve did not serve or the pool grew"
stop_sgblkd mem

LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-spill \
  start_sgblkd spill --swap --size 256M --mem-limit 16M --spill "$tmp/spill" --recompress-idle 1
exercise spill
bd=$(grep 'cache bd_stat:' "$tmp/spill.log" | tail -n 1)
echo "$bd"
[ "$(echo "$bd" | sed -E 's/.* bd_writes ([0-9]+).*/\1/')" -gt 0 ] || fail "spill: nothing was spilled"
[ "$(echo "$bd" | sed -E 's/.* bd_reads ([0-9]+).*/\1/')" -gt 0 ] || fail "spill: nothing was read back"
grep 'cache recompression:' "$tmp/spill.log" | tail -n 1
stop_sgblkd spill

LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-file \
  start_sgblkd file --swap --create --size 256M --cache-size 8M "$tmp/disk.img"
exercise file
grep 'cache writeback' "$tmp/file.log" | tail -n 1 | grep -qE 'written back [1-9]' ||
  fail "file: nothing was written back"
stop_sgblkd file
