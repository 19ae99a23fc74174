#!/usr/bin/env bash
# Swap through the kernel's NBD client onto sgblkd --swap: in the qemu
# guest, /dev/nbd0 on the daemon's in-memory disk becomes swap, and a hog
# in a 64 MiB memory cgroup writes and verifies 192 MiB (3 times its
# limit); the guest's pswpout shows the pages went out through nbd0.
# Every normal command allocation fails meanwhile: the I/O runs on the
# reserve, and the fallback counter shows it.  And the daemon calls no
# allocator while it serves the swap I/O: a preloaded counter
# (tests/alloc-count.so) counts its calls from the moment nbd0 is
# connected, before mkswap, to the moment swapoff is done, before the
# disconnect.
. "${top_srcdir:-.}/tests/functions.sh"
requires_test_hooks
requires_alloc_shim
requires addr2line
. "${top_srcdir:-.}/tests/guest-functions.sh"

LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-mem SGBLK_TEST_CMD_FAIL_EVERY=1 \
  start_sgblkd mem --handshake-timeout 600 --swap --size 512M --mem-limit 128M
# The socket is bound before the memory is locked: wait for the summary.
for i in $(seq 100); do grep -q "swap mode:" "$tmp/mem.log" && break; sleep 0.1; done
grep "swap mode:" "$tmp/mem.log" || fail "swap mode not reported"

grep -qx "loaded pid $pid_mem" "$tmp/alloc-mem.log" || fail "the allocator counter is not loaded in sgblkd"

guest_daemon=mem
guest_boot swap "$sock" 1 600
guest_wait READY 120
alloc_count_begin mem
guest_answer
guest_wait IO-DONE 480
alloc_count_end mem >"$tmp/alloc-calls"
guest_answer
guest_finish 60
grep -q "hog: 192 MiB, 49152 pages, 0 bad words" "$guest_log" || fail "the hog lost data"

echo "allocator calls during the swap I/O: $alloc_calls"
cat "$tmp/alloc-calls"

kill -USR1 "$pid_mem"
for i in $(seq 50); do grep -q 'cmd pool:' "$tmp/mem.log" && break; sleep 0.1; done
grep 'cache in-memory' "$tmp/mem.log" | tail -n 1
grep 'scsi: commands' "$tmp/mem.log" | tail -n 1
line=$(grep 'cmd pool:' "$tmp/mem.log" | tail -n 1)
echo "$line"
fallbacks=$(echo "$line" | sed -E 's/.*fallbacks ([0-9]+).*/\1/')
failures=$(echo "$line" | sed -E 's/.*alloc failures ([0-9]+).*/\1/')
commands=$(grep 'scsi: commands' "$tmp/mem.log" | tail -n 1 | sed -E 's/.*commands ([0-9]+).*/\1/')
# In swap mode the pool is preallocated; every command must still have
# failed its normal allocation and come from the reserve.
[ "$fallbacks" -eq "$commands" ] && [ "$failures" -eq "$commands" ] ||
  fail "$commands commands, $failures failed allocations, $fallbacks from the reserve: a command came from the normal path"
[ "$fallbacks" -gt 1000 ] || fail "the reserve did not carry the swap traffic ($fallbacks fallbacks)"
[ "$alloc_calls" -eq 0 ] || fail "sgblkd called the allocator $alloc_calls times while the guest swapped onto it"
stop_sgblkd mem
