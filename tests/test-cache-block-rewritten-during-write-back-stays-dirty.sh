#!/usr/bin/env bash
# A cache block rewritten while write-back is writing it out stays dirty,
# so the next FLUSH writes its newest data: after every FLUSH the file
# holds what NBD reads, and a restarted daemon serves the last writes.
#
# One connection rewrites a 1 MiB run of blocks with random data, a few
# writes to each block in turn at queue depth 64, while a second sends
# FLUSH in a loop; each round ends with a drain, a FLUSH and a comparison
# of NBD reads with the file.  A block is left alone right after its last
# writes, which often raced with a write-back: if the cache took such a
# rewrite for the data it had just written out, the file keeps the older
# data.  The rounds go on for $SGBLK_WRITE_BACK_RACE_SECONDS (30 by
# default) or to the first difference; then SIGTERM and a restart.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

seconds=${SGBLK_WRITE_BACK_RACE_SECONDS:-30}

start_sgblkd file --create --size 16M "$tmp/disk.img"

# The FLUSH loop, until the rounds are over.
cleanup_fn "touch '$tmp/stop'"
nbdsh -u "$uri" -c '
import os
flushes = 0
while not os.path.exists("'"$tmp"'/stop"):
    h.flush()
    flushes += 1
print("%d FLUSHes from the second connection" % flushes)
' >"$tmp/flusher.out" 2>&1 &
flusher=$!

nbdsh -u "$uri" -c '
import os, struct, time
bs, nhot, writes_per_block, depth = 4096, 256, 4, 64
seconds = float("'"$seconds"'")
rnd = os.urandom(1 << 20)
# Write number seq names its block and round in its first bytes; the
# rest is random, so that no block compresses.
def data(b, rnd_no, seq):
    o = seq * 24 % (len(rnd) - bs)
    return struct.pack("<QQQ", b, rnd_no, seq) + rnd[o:o + bs - 24]
def write_no(block):
    return struct.unpack("<QQQ", block[:24])
fd = os.open("'"$tmp"'/disk.img", os.O_RDONLY)
start = time.monotonic()
rounds = seq = 0
diff = []
while not diff and time.monotonic() - start < seconds:
    rounds += 1
    for b in range(nhot):
        for _ in range(writes_per_block):
            while h.aio_in_flight() >= depth:
                h.poll(-1)
            seq += 1
            h.aio_pwrite(data(b, rounds, seq), b * bs)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.flush()
    served = h.pread(nhot * bs, 0)
    in_file = os.pread(fd, nhot * bs, 0)
    for b in range(nhot):
        got = served[b * bs:(b + 1) * bs]
        nb, nr, ns = write_no(got)
        if (nb, nr) != (b, rounds) or got != data(nb, nr, ns):
            raise AssertionError("round %d: block %d reads back as none of its writes" % (rounds, b))
        if in_file[b * bs:(b + 1) * bs] != got:
            diff.append((b, ns, write_no(in_file[b * bs:(b + 1) * bs])[2]))
print("%d rounds of %d writes in %.1f s" % (rounds, nhot * writes_per_block, time.monotonic() - start))
for b, ns, fs in diff:
    print("round %d: block %d reads write #%d over NBD, the file holds write #%d after FLUSH"
          % (rounds, b, ns, fs))
open("'"$tmp"'/last", "wb").write(served)
open("'"$tmp"'/diff", "w").write(str(len(diff)))
'
touch "$tmp/stop"
wait "$flusher"
cat "$tmp/flusher.out"

# SIGTERM writes back whatever is dirty; what is marked clean it leaves.
stop_sgblkd file
start_sgblkd again "$tmp/disk.img"
nbdsh -u "$uri" -c '
last = open("'"$tmp"'/last", "rb").read()
served = h.pread(len(last), 0)
stale = [b for b in range(len(last) // 4096) if served[b * 4096:(b + 1) * 4096] != last[b * 4096:(b + 1) * 4096]]
print("restarted: %d of %d blocks serve older data than the last writes%s"
      % (len(stale), len(last) // 4096, (", the first: %s" % stale[:8]) if stale else ""))
open("'"$tmp"'/stale", "w").write(str(len(stale)))
'
stop_sgblkd again

failures=()
[ "$(cat "$tmp/diff")" -eq 0 ] ||
  failures+=("after FLUSH the file held older data than NBD served in $(cat "$tmp/diff") of 256 blocks")
[ "$(cat "$tmp/stale")" -eq 0 ] ||
  failures+=("a clean restart served older data than the last writes in $(cat "$tmp/stale") of 256 blocks")
[ ${#failures[@]} -eq 0 ] || fail "$(printf '%s; ' "${failures[@]}" | sed 's/; $//')"
