#!/usr/bin/env bash
# A 1 GiB in-memory disk with --mem-limit 64M and a spill file holds
# 512 MiB of mixed data (random, shared libraries, text, zeroes), written
# and read back with nbdcopy, exactly; the daemon's resident memory stays
# under the limit plus its block table and what the copy has in flight;
# blocks went to the spill file and came back; the file is emptied at
# exit, and a second daemon may not take it while the first runs.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy python3

python3 - "$tmp/in" <<'EOF'
import os, random, sys
random.seed(12)
libs = b"".join(open(os.path.join(d, f), "rb").read(1 << 20)
                for d in ["/usr/lib/x86_64-linux-gnu"] for f in sorted(os.listdir(d))[:400]
                if f.endswith(".so") or ".so." in f if os.path.isfile(os.path.join(d, f)))
words = b"spill block memory cache sector device kernel swap write read ".split()
text = b" ".join(random.choice(words) for _ in range(400000))
with open(sys.argv[1], "wb") as out:
    for i in range(512):
        kind = i % 4
        if kind == 0:
            out.write(os.urandom(1 << 20))
        elif kind == 1 and len(libs) > (2 << 20):
            o = random.randrange(0, len(libs) - (1 << 20)) // 4096 * 4096
            out.write(libs[o:o + (1 << 20)])
        elif kind == 2 or kind == 1:
            o = random.randrange(0, len(text) - (1 << 20))
            out.write(b"%08d" % i + text[o + 8:o + (1 << 20)])
        else:
            out.write(bytes(1 << 20))
EOF

start_sgblkd mem --size 1G --mem-limit 64M --spill "$tmp/spill"
head -c 64 "$tmp/spill" | grep -q "sgblk spill file" || fail "the spill file has no header"
if "$SGBLKD" -f -U "$tmp/other.sock" --size 1G --mem-limit 64M --spill "$tmp/spill" 2>"$tmp/other.err"; then
  fail "a second daemon took the spill file"
fi
cat "$tmp/other.err"
grep -q "spill file in use by another sgblkd" "$tmp/other.err" || fail "no clear refusal"

# Resident memory, sampled while the data goes in and out.
peak=0
watch_rss ()
{
  while kill -0 "$pid_mem" 2>/dev/null; do
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid_mem/status" 2>/dev/null
    sleep 0.05
  done >"$tmp/rss" &
  watcher=$!
}
watch_rss
# One connection and 4 requests of 1 MiB in flight, so that the copy's
# own buffers are small beside the limit.
nbdcopy --connections=1 --requests=4 --request-size=1048576 "$tmp/in" "$uri"
nbdcopy --connections=1 --requests=4 --request-size=1048576 "$uri" "$tmp/out"
kill "$watcher"; wait "$watcher" 2>/dev/null || true
cmp "$tmp/in" <(head -c $((512 << 20)) "$tmp/out") || fail "data read back differs"
cmp <(tail -c $((512 << 20)) "$tmp/out") <(head -c $((512 << 20)) /dev/zero) ||
  fail "the unwritten half does not read as zeroes"

kill -USR1 "$pid_mem"
for i in $(seq 50); do grep -q 'bd_stat' "$tmp/mem.log" && break; sleep 0.1; done
grep -E 'mm_stat|bd_stat' "$tmp/mem.log" | tail -n 2
set -- $(grep 'bd_stat' "$tmp/mem.log" | tail -n 1 |
         sed -E 's/.*bd_count ([0-9]+) bd_reads ([0-9]+) bd_writes ([0-9]+) errors ([0-9]+).*/\1 \2 \3 \4/')
[ "$3" -gt 0 ] || fail "nothing was written to the spill file"
[ "$2" -gt 0 ] || fail "nothing was read back from the spill file"
[ "$4" -eq 0 ] || fail "spill file errors"
peak=$(sort -n "$tmp/rss" | tail -n 1)
# The limit, the block table (16 bytes a block: 4 MiB), and 24 MiB for
# the program, its threads and the copy's requests in flight.
allowed=$(( (64 + 4 + 24) * 1024 ))
echo "peak VmRSS $peak kB (allowed $allowed kB), spill file $(stat -c %s "$tmp/spill") bytes"
[ "$peak" -le "$allowed" ] || fail "resident memory went past the limit"

stop_sgblkd mem
[ "$(stat -c %s "$tmp/spill")" -eq 4096 ] || fail "the spill file was not emptied at exit"
