#!/usr/bin/env bash
# --swap locks the daemon's memory (VmLck covers what it has mapped),
# preallocates its pools and fills the in-memory disk's memory reserve,
# whose limit (without --mem-limit) is the disk size when that is below
# half of RAM: a cap, not an allocation.  The I/O-flusher flag and the
# OOM adjustment are either in effect or refused with a clear warning
# naming what is missing.  Memory the disk takes later is locked too.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy

start_sgblkd swap --swap --size 64M
# The socket is bound before the memory is locked: wait for the summary.
for i in $(seq 100); do grep -q "swap mode:" "$tmp/swap.log" && break; sleep 0.1; done
cat "$tmp/swap.log"
grep -qE "swap mode: memory locked, pools preallocated, disk memory from a locked reserve of [0-9]+ bytes .*; limit 67108864\)" "$tmp/swap.log" ||
  fail "swap mode not reported, or not with the disk's 64 MiB as its limit"
reserve=$(sed -nE 's/.*locked reserve of ([0-9]+) bytes.*/\1/p' "$tmp/swap.log")
lck=$(awk '/^VmLck:/ {print $2}' "/proc/$pid_swap/status")
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid_swap/status")
echo "VmLck $lck kB, VmRSS $rss kB, reserve $reserve bytes"
[ "$lck" -gt $((reserve / 1024)) ] && [ "$lck" -ge $((rss - 4096)) ] ||
  fail "memory is not locked, or the disk's reserve is not"
adj=$(cat "/proc/$pid_swap/oom_score_adj")
if grep -q "oom_score_adj -1000" "$tmp/swap.log"; then
  [ "$adj" -eq -1000 ] || fail "oom_score_adj is $adj"
else
  grep -q "cannot set oom_score_adj" "$tmp/swap.log" || fail "no warning for oom_score_adj"
fi
grep -q "I/O threads are I/O flushers" "$tmp/swap.log" ||
  grep -q "PR_SET_IO_FLUSHER.*CAP_SYS_RESOURCE" "$tmp/swap.log" || fail "no word on PR_SET_IO_FLUSHER"
# It serves as usual, and its memory stays locked while it does.
random_file "$tmp/in" 32
nbdcopy "$tmp/in" "$uri"
nbdcopy "$uri" "$tmp/out"
cmp "$tmp/in" <(head -c $((32 << 20)) "$tmp/out") || fail "data differs"
lck2=$(awk '/^VmLck:/ {print $2}' "/proc/$pid_swap/status")
rss2=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid_swap/status")
echo "after 32 MiB: VmLck $lck2 kB, VmRSS $rss2 kB"
[ "$lck2" -ge "$rss2" ] || [ $((rss2 - lck2)) -lt 4096 ] || fail "memory mapped later is not locked"
[ "$lck2" -gt $((lck + 24 * 1024)) ] || fail "the disk did not take (locked) memory for its 32 MiB of data"
stop_sgblkd swap
