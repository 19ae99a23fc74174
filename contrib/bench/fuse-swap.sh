#!/usr/bin/env bash
# The swap hog of tests/test-fuse-swap-on-the-loop-device-under-a-memory-cgroup.sh
# timed over two stacks in one run: swap on a loop device over sgblkd's
# FUSE file, and over nbdfuse + nbdkit memory.  The hog is held to 64 MiB
# by a memory cgroup and writes, then verifies, 160 MiB.
#
#   contrib/bench/fuse-swap.sh [ROUNDS]          (root; default 3)
set -euo pipefail
. "$(dirname "$0")/common.sh"

rounds=${1:-3}
SGBLKD=${SGBLKD:-$(dirname "$0")/../../sgblkd}
for c in nbdkit nbdfuse losetup mkswap swapon python3; do
  command -v "$c" >/dev/null || { echo "$0: needs $c" >&2; exit 1; }
done
if [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory/sgblk-bench-$$; limit_file=memory.limit_in_bytes
else
  cg=/sys/fs/cgroup/sgblk-bench-$$; limit_file=memory.max
fi

tmp=$(mktemp -d)
pids=() loops=()
cleanup ()
{
  for l in "${loops[@]}"; do swapoff "$l" 2>/dev/null || true; losetup -d "$l" 2>/dev/null || true; done
  for m in "$tmp/sg" "$tmp/nf"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
  kill "${pids[@]}" 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/sg" "$tmp/nf" "$cg"
echo $((64 << 20)) >"$cg/$limit_file"

"$SGBLKD" -f --size 512M --fuse "$tmp/sg" 2>"$tmp/sg.log" &
pids+=($!)
nbdfuse "$tmp/nf/disk" [ nbdkit memory 512M ] &
pids+=($!)
for i in $(seq 100); do
  [ -f "$tmp/sg/disk" ] && [ -f "$tmp/nf/disk" ] && break
  sleep 0.1
done

hog ()
{
  local start end
  start=$(date +%s.%N)
  sh -c "echo \$\$ >'$cg/cgroup.procs'; exec python3 -c '
import hashlib
n = 160 * 1024 * 1024 // 4096
pages = [hashlib.sha256(b\"%d\" % i).digest() * 128 for i in range(n)]
assert all(pages[i] == hashlib.sha256(b\"%d\" % i).digest() * 128 for i in range(n))
'"
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

: >"$tmp/sg.t"; : >"$tmp/nf.t"
for r in $(seq "$rounds"); do
  for s in sg nf; do
    l=$(losetup -f --show "$tmp/$s/disk"); loops+=("$l")
    mkswap "$l" >/dev/null
    swapon "$l"
    hog >>"$tmp/$s.t"
    swapoff "$l"
    losetup -d "$l"
  done
done
a=$(median <"$tmp/sg.t"); b=$(median <"$tmp/nf.t")
echo "| swap hog (64 MiB cgroup, 160 MiB written and verified) | sgblk FUSE | nbdfuse + nbdkit memory | speed ratio (nbdfuse time / sgblk time) |"
echo "| --- | ---: | ---: | ---: |"
printf '| time, median of %d | %.2f s | %.2f s | %.2fx |\n' "$rounds" "$a" "$b" "$(echo "$b / $a" | bc -l)"
