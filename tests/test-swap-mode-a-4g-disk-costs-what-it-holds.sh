#!/usr/bin/env bash
# A swap-mode disk costs what it holds, as zram does, not its size: a
# 4 GiB --swap disk (its memory limit is 4 GiB, or half of RAM) starts
# with at most 128 MiB resident, all of it locked.  256 MiB of random
# data written with nbdcopy makes it grow by about as much, locked too,
# through the cache memory reserve, which its refill thread refilled.
# Trimming three in four blocks leaves chunks a quarter full; compaction
# (every 10 s) empties them and the refill thread gives back what is
# above the reserve's high watermark: the daemon shrinks to what it
# holds, and the blocks left read back.  Trimming the rest brings it
# back to where it started.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy nbdsh
[ "$(id -u)" -eq 0 ] || [ "$(ulimit -l)" = unlimited ] || skip "mlockall needs root or an unlimited RLIMIT_MEMLOCK"

status_kb () { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid_disk/status"; }
# stats: SIGUSR1, then the newest "cache reserve:" and cache lines.
stats ()
{
  usr1_wait disk 'cache reserve:'
  reserve=$(grep 'cache reserve:' "$tmp/disk.log" | tail -n 1)
  cache=$(grep 'cache in-memory' "$tmp/disk.log" | tail -n 1)
}
field () { echo "$1" | sed -nE "s/.* $2 ([0-9]+).*/\\1/p"; }
show ()
{
  echo "$1: VmRSS $(status_kb VmRSS) kB, VmLck $(status_kb VmLck) kB; original $(field "$cache" original) B" \
    "memory used $(field "$cache" used) B; ${reserve#*info: }"
}

start_sgblkd disk --swap --size 4G
for i in $(seq 100); do grep -q "swap mode:" "$tmp/disk.log" && break; sleep 0.1; done
grep "swap mode:" "$tmp/disk.log" || fail "swap mode did not start"
rss0=$(status_kb VmRSS); lck0=$(status_kb VmLck)
stats
show "at start"
high=$(field "$reserve" high)
[ "$rss0" -le $((128 * 1024)) ] || fail "a 4G disk holding nothing has $rss0 kB resident"
[ "$lck0" -ge $((rss0 - 4096)) ] || fail "its memory is not locked ($lck0 of $rss0 kB)"

# 256 MiB of random data: stored raw, 256 MiB of chunks.
random_file "$tmp/in" 256
nbdcopy "$tmp/in" "$uri"
stats
show "after 256 MiB"
rss1=$(status_kb VmRSS); lck1=$(status_kb VmLck)
[ "$rss1" -ge $((rss0 + 240 * 1024)) ] || fail "256 MiB written, but the daemon grew by $((rss1 - rss0)) kB only"
[ "$lck1" -ge $((rss1 - 4096)) ] || fail "the memory it took is not locked ($lck1 of $rss1 kB)"
[ "$(field "$reserve" mapped)" -ge $((256 << 20)) ] || fail "the refill thread did not map what the data took"
[ -n "$(field "$reserve" waits)" ] || fail "no count of the writes that waited for the reserve"

# Three in four blocks go; the rest must survive compaction.
nbdsh -u "$uri" -c - <<'EOF'
for b in range(0, 256 << 20, 16384):
    h.trim(12288, b + 4096)
EOF
compacted0=$(field "$cache" compacted)
for i in $(seq 250); do
  [ "$(status_kb VmRSS)" -le $((rss0 + (64 + 16) * 1024)) ] && break
  sleep 0.1
done
# Compaction hands the chunks it frees to the reserve, and the refill
# thread returns what is above the high watermark on its next pass.
for i in $(seq 20); do
  stats
  [ "$(field "$reserve" level)" -le $((high + (2 << 20))) ] && break
  sleep 0.5
done
show "after trimming 3/4 and compaction"
rss2=$(status_kb VmRSS)
[ "$(field "$cache" compacted)" -gt "$compacted0" ] || fail "compaction moved nothing"
[ "$(field "$reserve" returned)" -gt $((128 << 20)) ] || fail "the refill thread gave little back"
[ "$(field "$reserve" level)" -le $((high + (2 << 20))) ] || fail "the reserve stays above its high watermark"
[ "$rss2" -le $((rss0 + (64 + 16) * 1024)) ] ||
  fail "holding 64 MiB, the daemon still has $rss2 kB resident (from $rss0 kB at start)"
IN=$tmp/in nbdsh -u "$uri" -c - <<'EOF'
import os
data = open(os.environ["IN"], "rb").read()
zero = bytes(12288)
for off in range(0, 256 << 20, 2 << 20):
    got = h.pread(2 << 20, off)
    for b in range(0, 2 << 20, 16384):
        assert got[b:b + 4096] == data[off + b:off + b + 4096], "block at %d lost" % (off + b)
        assert got[b + 4096:b + 16384] == zero, "trimmed blocks at %d read back data" % (off + b + 4096)
print("the blocks left read back; the trimmed ones read zeroes")
EOF

# The rest goes too: back to where it started.
nbdsh -u "$uri" -c 'h.trim(256 << 20, 0)'
for i in $(seq 250); do
  [ "$(status_kb VmRSS)" -le $((rss0 + 16 * 1024)) ] && break
  sleep 0.1
done
stats
show "after trimming all"
rss3=$(status_kb VmRSS)
[ "$rss3" -le $((rss0 + 16 * 1024)) ] || fail "holding nothing again, the daemon has $rss3 kB resident (from $rss0 kB)"
echo "VmRSS: $rss0 kB at start, $rss1 kB holding 256 MiB, $rss2 kB holding 64 MiB, $rss3 kB holding nothing"
stop_sgblkd disk
