#!/usr/bin/env bash
# Swap on the FUSE file through a loop device: a memory hog held to
# 64 MiB by a memory cgroup writes a pattern over 2.5 times its limit and
# verifies every page, while the kernel swaps it out onto sgblk.  The
# daemon runs outside the cgroup, without --swap: swap onto an ordinary
# daemon works too (the swap-stress test runs one in --swap mode).
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires mkswap swapon swapoff python3

memory_cgroup $((64 << 20))

fuse_mountpoint
start_sgblkd swap --size 512M --fuse "$mnt"
attach_loop "$mnt/disk"
mkswap "$loop" >/dev/null
swapon "$loop"
cleanup_fn "swapoff '$loop' 2>/dev/null"
before=$(awk '/^pswpout/ {print $2}' /proc/vmstat)

timeout 300 sh -c "echo \$\$ >'$cg/cgroup.procs'; exec python3 -c '
import hashlib
n = 160 * 1024 * 1024 // 4096          # 2.5 times the 64 MiB limit
pages = [hashlib.sha256(b\"%d\" % i).digest() * 128 for i in range(n)]
bad = sum(1 for i in range(n) if pages[i] != hashlib.sha256(b\"%d\" % i).digest() * 128)
print(\"pages\", n, \"bad\", bad)
raise SystemExit(bad != 0)
'" | tee "$tmp/hog.out"
grep -q "bad 0" "$tmp/hog.out" || fail "the hog lost data"
after=$(awk '/^pswpout/ {print $2}' /proc/vmstat)
echo "pages swapped out during the run: $((after - before))"
[ $((after - before)) -gt 10000 ] || fail "the kernel hardly swapped: the test proved nothing"
swapoff "$loop"
losetup -d "$loop"
kill -USR1 "$pid_swap"; sleep 0.5
grep 'cache in-memory' "$tmp/swap.log" | tail -1
stop_sgblkd swap
grep 'cmd pool:' "$tmp/swap.log" | tail -1 | grep -q ' in use 0 ' || fail "commands leaked"
