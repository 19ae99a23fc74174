#!/usr/bin/env bash
# The swap hog of tests/test-fuse-swap-on-the-loop-device-under-a-memory-cgroup.sh
# timed over two stacks in one run: swap on a loop device over sgblkd's
# FUSE file, and over nbdfuse + nbdkit memory.  The hog is held to 64 MiB
# by a memory cgroup and writes, then verifies, 160 MiB (32 and 80 MiB
# with BENCH_QUICK=1).  Runs alternate; medians of ROUNDS runs.
#
#   contrib/bench/fuse-swap.sh [ROUNDS]          (root)
#
# Writes swap.md into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need_fuse_pair "FUSE mounts, loop devices, swap and a memory cgroup"
need mount swapon swapoff
need util-linux mkswap
need python3 python3
if grep -qsw memory /sys/fs/cgroup/cgroup.controllers; then
  cg=/sys/fs/cgroup limit_file=memory.max
elif [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory limit_file=memory.limit_in_bytes
else
  skip "no memory cgroup controller"
fi
limit=64 hog=160
[ "$quick" = 1 ] && limit=32 hog=80

section swap "Swap over the FUSE file: sgblkd --fuse against nbdfuse + nbdkit memory"
cg=$cg/sgblk-bench-$$
mkdir "$cg"
at_exit "for i in \$(seq 50); do rmdir '$cg' 2>/dev/null && break; sleep 0.1; done"
echo $((limit << 20)) >"$cg/$limit_file"

start_fuse_pair 512M
servers=(sg nf)
declare -A dev
for key in "${servers[@]}"; do
  attach_loop "$tmp/$key/disk"
  dev[$key]=$loop
done

# run KEY: swap on KEY's loop device, ahead of any other swap, while the
# hog runs in the cgroup; prints its seconds, the stack's CPU seconds and
# the MiB the kernel swapped out meanwhile.
swapped () { awk '/^pswpout / { print $2 }' /proc/vmstat; }
run ()
{
  local t0 t1 c0 c1 s0 s1
  mkswap "${dev[$1]}" >>"$tmp/mkswap.log" 2>&1
  swapon -p 32767 "${dev[$1]}"
  c0=$(cpu_ticks "${pid[$1]}")
  s0=$(swapped)
  t0=$EPOCHREALTIME
  sh -c "echo \$\$ >'$cg/cgroup.procs'; exec python3 -c '
import hashlib
n = $hog * 1024 * 1024 // 4096
pages = [hashlib.sha256(b\"%d\" % i).digest() * 128 for i in range(n)]
assert all(pages[i] == hashlib.sha256(b\"%d\" % i).digest() * 128 for i in range(n))
'"
  t1=$EPOCHREALTIME
  s1=$(swapped)
  c1=$(cpu_ticks "${pid[$1]}")
  swapoff "${dev[$1]}"
  echo "$t0 $t1 $c0 $c1 $s0 $s1" | awk -v hz="$hz" '{ print $2 - $1, ($4 - $3) / hz, ($6 - $5) / 256 }'
}

: >"$tmp/raw"
for r in $(seq "$rounds"); do
  for key in "${servers[@]}"; do
    echo "0 $key $(run "$key")" >>"$tmp/raw"
  done
done
say "A Python hog in a memory cgroup held to $limit MiB writes $hog MiB of" \
    "hashes, then verifies them, while the kernel swaps onto a loop device" \
    "over each 512 MiB FUSE file (swap priority above any other).  Server CPU" \
    "is the stack's user + system time during the hog (nbdfuse and its" \
    "nbdkit summed); the kernel's swap and loop work is not counted."
{
  echo "| swap hog, median of $rounds | ${label[sg]} | ${label[nf]} | ${label[sg]} / ${label[nf]} |"
  echo "| --- | ---: | ---: | ---: |"
  stats '
    function row(l, f, u,   a, b) {
      a = med("0 sg", f); b = med("0 nf", f)
      printf "| %s | %.2f %s | %.2f %s | %.2fx |\n", l, a, u, b, u, a / b
    }
    END { row("time", 3, "s"); row("server CPU", 4, "s"); row("swapped out", 5, "MiB") }' "$tmp/raw"
  echo
} >>"$md"
say "Lower is better for time and CPU; both stacks should swap out about" \
    "as much (all the kernel swapped meanwhile, from /proc/vmstat)."
section_done
