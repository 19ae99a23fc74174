#!/usr/bin/env bash
# Compression and memory of sgblkd's in-memory disk against the kernel's
# zram with lz4, in one run, on the same two 64 MiB samples:
#   ext4  an ext4 image made with mkfs.ext4 -d from system files
#   libs  a concatenation of shared libraries
# For each: logical bytes / memory used, and sgblk's memory over zram's.
#
#   contrib/bench/compress.sh            (root: it resets /dev/zram0)
#
# zram's figure is mem_used_total from mm_stat (its allocator's pages; its
# per-block table is not counted), sgblk's is the cache's "memory used",
# which includes the block table: the comparison is tilted against sgblk.
set -euo pipefail

SGBLKD=${SGBLKD:-$(dirname "$0")/../../sgblkd}
size=$((64 * 1024 * 1024))
zram=/sys/block/zram0
[ -w "$zram/reset" ] || { echo "$0: needs root and /sys/block/zram0" >&2; exit 1; }
for c in nbdcopy mkfs.ext4; do command -v "$c" >/dev/null || { echo "$0: needs $c" >&2; exit 1; }; done

tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; echo 1 >"$zram/reset" 2>/dev/null; rm -rf "$tmp"' EXIT

# The samples.
mkdir "$tmp/stage"
find /usr/include /usr/share/doc -type f -size -1024k -printf '%s %p\n' 2>/dev/null |
  sort -k2 >"$tmp/all" || true
awk -v max=$((40 * 1024 * 1024)) '{ t += $1; if (t > max) exit; print $2 }' "$tmp/all" >"$tmp/list"
cpio -pdm --quiet "$tmp/stage" <"$tmp/list"
mkfs.ext4 -q -F -d "$tmp/stage" "$tmp/ext4" 64M
cat /usr/lib/x86_64-linux-gnu/*.so* 2>/dev/null | head -c "$size" >"$tmp/libs" || true
[ "$(stat -c %s "$tmp/libs")" -eq "$size" ] || { echo "$0: not enough shared libraries" >&2; exit 1; }

zram_used ()
{
  echo 1 >"$zram/reset"
  echo lz4 >"$zram/comp_algorithm"
  echo "$size" >"$zram/disksize"
  dd if="$1" of=/dev/zram0 bs=1M oflag=direct status=none
  sync
  read -r orig compr used _ <"$zram/mm_stat"
  echo "$orig $used"
}

sgblk_used ()   # SAMPLE [SGBLKD ARGS]
{
  local sample=$1; shift
  "$SGBLKD" -f -U "$tmp/s.sock" --size 64M "$@" 2>"$tmp/s.log" &
  pid=$!
  for i in $(seq 50); do [ -S "$tmp/s.sock" ] && break; sleep 0.1; done
  nbdcopy "$sample" "nbd+unix:///?socket=$tmp/s.sock"
  kill -USR1 "$pid"
  for i in $(seq 50); do grep -q 'memory used' "$tmp/s.log" && break; sleep 0.1; done
  kill -TERM "$pid"; wait "$pid"; pid=
  grep -m1 'memory used' "$tmp/s.log" |
    sed -E 's/.*original ([0-9]+) B.*memory used ([0-9]+) B.*/\1 \2/'
}

echo "| sample | zram lz4: logical / memory | sgblk: logical / memory | sgblk memory / zram memory |"
echo "| --- | ---: | ---: | ---: |"
for s in ext4 libs; do
  read -r zo zu < <(zram_used "$tmp/$s")
  read -r so su < <(sgblk_used "$tmp/$s")
  printf '| %s (%d MiB) | %.2f (%.1f MiB) | %.2f (%.1f MiB) | %.3f |\n' "$s" $((size >> 20)) \
    "$(echo "$size / $zu" | bc -l)" "$(echo "$zu / 1048576" | bc -l)" \
    "$(echo "$size / $su" | bc -l)" "$(echo "$su / 1048576" | bc -l)" \
    "$(echo "$su / $zu" | bc -l)"
done
