#!/usr/bin/env bash
# nbd.sh's four workloads with data that compresses 2:1 (fio's
# --buffer_compress_percentage=50, fresh data in every buffer), on fresh
# daemons: the speed, the CPU per I/O, and the resident memory of
# sgblkd's compressed in-memory disk against nbdkit memory.
#
#   contrib/bench/nbd-compressible.sh [ROUNDS] [RUNTIME]
#
# Writes nbd-compressible.md and its plots into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need fio fio
need nbdkit nbdkit

section nbd-compressible "NBD, in-memory disks, 2:1 compressible data: sgblkd against nbdkit memory"
# Half of every 4 KiB chunk is random, half compresses away; every
# buffer is filled afresh, so no block repeats another.
fio_data=(--buffer_compress_percentage=50 --buffer_compress_chunk=4k --refill_buffers)
start_memory_pair

mib () { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
declare -A rss0 rss1
for key in "${servers[@]}"; do rss0[$key]=$(rss_kib "${pid[$key]}"); done
for key in "${servers[@]}"; do
  fill "$key"
  rss1[$key]=$(rss_kib "${pid[$key]}")
done
read -r orig comp used <<<"$(sgblk_stats sg)"
ratio=$(awk -v o="$orig" -v c="$comp" 'BEGIN { printf "%.2f", o / c }')

workloads=("${nbd_workloads[@]}")
say "Both disks are $size, filled first with data fio makes 50 % compressible" \
    "(\`${fio_data[*]}\`), which every write of the runs below carries too;" \
    "fio's nbd engine, one connection over a Unix socket."
say "After the fill sgblk's own counters show $(mib $((orig / 1024))) MiB stored in" \
    "$(mib $((comp / 1024))) MiB compressed ($ratio:1), and" \
    "$(mib $((used / 1024))) MiB of memory used for it, block table included."
if awk -v r="$ratio" 'BEGIN { exit !(r < 1.6 || r > 2.5) }'; then
  say "**Warning:** that is not about 2:1: this fio did not make the data asked of it."
fi
bench

{
  echo "| resident memory (VmRSS) | sgblk | nbdkit memory | sgblk / nbdkit memory |"
  echo "| --- | ---: | ---: | ---: |"
  row () { awk -v l="$1" -v a="$2" -v b="$3" 'BEGIN { printf "| %s | %.1f MiB | %.1f MiB | %.2fx |\n", l, a / 1024, b / 1024, a / b }'; }
  row "right after start" "${rss0[sg]}" "${rss0[nk]}"
  row "after the fill ($size)" "${rss1[sg]}" "${rss1[nk]}"
  row "after the workloads" "$(rss_kib "${pid[sg]}")" "$(rss_kib "${pid[nk]}")"
  echo
} >>"$md"
section_done
