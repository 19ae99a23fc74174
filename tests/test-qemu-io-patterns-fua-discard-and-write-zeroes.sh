#!/usr/bin/env bash
# qemu's NBD client: pattern writes read back, FUA writes, discard and
# write-zeroes (with and without unmap) read back as zeroes, neighbours
# untouched.
. "${top_srcdir:-.}/tests/functions.sh"
requires qemu-io

start_sgblkd mem --size 16M
io () { qemu-io -f raw "$uri" "$@"; }

out=$(io -c 'write -P 0xab 0 1M' -c 'write -f -P 0xcd 1M 64k' -c 'write -P 0x11 2M 1M' \
         -c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1M 64k' -c 'read -P 0x11 2M 1M' \
         -c 'flush')
echo "$out"
! echo "$out" | grep -q 'Pattern verification failed' || fail "pattern mismatch"

# Discard 64k in the middle of the 0x11 run; write zeroes around it.
out=$(io -c 'discard 2112k 64k' -c 'write -z 2176k 64k' -c 'write -z -u 2240k 64k' \
         -c 'read -P 0 2112k 192k' -c 'read -P 0x11 2048k 64k' -c 'read -P 0x11 2304k 64k' \
         -c 'read -P 0xab 0 1M')
echo "$out"
! echo "$out" | grep -q 'Pattern verification failed' || fail "pattern mismatch after discard/zero"
echo "$out" | grep -q 'discard 65536/65536 bytes' || fail "discard did not complete"

# The unaligned write qemu makes for a sub-sector write is served exactly.
out=$(io -c 'write -P 0x77 3M 4k' -c 'write -P 0x55 3145729 100' \
         -c 'read -P 0x77 3M 1' -c 'read -P 0x55 3145729 100' -c 'read -P 0x77 3145829 3995')
echo "$out"
! echo "$out" | grep -q 'Pattern verification failed' || fail "sub-block write corrupted neighbours"
stop_sgblkd mem
