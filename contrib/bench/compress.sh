#!/usr/bin/env bash
# Compression and memory of sgblkd's in-memory disk against the kernel's
# zram with lz4, in one run, on the same two 64 MiB samples (16 MiB with
# BENCH_QUICK=1):
#   ext4  an ext4 image made with mkfs.ext4 -d from system files
#   libs  a concatenation of shared libraries
# For each, sgblkd plain and with --swap: memory used (its own count) and
# resident memory growth over zram's mem_used_total, right after the copy
# (fast lz4) and after the idle pass has recompressed the disk with LZ4HC
# (--recompress-idle 5), and the idle pass's rate on one core.
#
#   contrib/bench/compress.sh            (root: it resets /dev/zram0, --swap locks memory)
#
# zram's figure is mem_used_total from mm_stat (its allocator's pages; its
# per-block table is not counted), sgblk's is the cache's "memory used",
# which includes the block table: the comparison is tilted against sgblk.
# Writes compress.md into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need_root "it resets /dev/zram0"
need libnbd-bin nbdcopy
need e2fsprogs mkfs.ext4
need cpio cpio
zram=/sys/block/zram0
[ -w "$zram/reset" ] || skip "no /dev/zram0 (modprobe zram)"
[ "$(cat "$zram/disksize")" = 0 ] || skip "/dev/zram0 is in use"
mib=64
[ "$quick" = 1 ] && mib=16
bytes=$((mib << 20))

section compress "Memory against zram: sgblkd's in-memory disk and the kernel's zram with lz4"
at_exit "echo 1 >$zram/reset"

# The samples.
mkdir "$tmp/stage"
find /usr/include /usr/share/doc -type f -size -1024k -printf '%s %p\n' 2>/dev/null |
  sort -k2 >"$tmp/all" || true
awk -v max=$((bytes / 8 * 5)) '{ t += $1; if (t > max) exit; print $2 }' "$tmp/all" >"$tmp/list"
cpio -pdm --quiet "$tmp/stage" <"$tmp/list"
mkfs.ext4 -q -F -d "$tmp/stage" "$tmp/ext4" "${mib}M" >/dev/null
cat /usr/lib/x86_64-linux-gnu/*.so* 2>/dev/null | head -c "$bytes" >"$tmp/libs" || true
[ "$(stat -c %s "$tmp/libs")" -eq "$bytes" ] || { echo "$0: not enough shared libraries" >&2; exit 1; }

# zram_used SAMPLE: zram's mem_used_total holding SAMPLE.
zram_used ()
{
  echo 1 >"$zram/reset"
  echo lz4 >"$zram/comp_algorithm"
  echo "$bytes" >"$zram/disksize"
  dd if="$1" of=/dev/zram0 bs=1M oflag=direct status=none
  sync
  awk '{ print $3 }' "$zram/mm_stat"
}

# sgblk_used SAMPLE MODE: sgblkd (MODE plain or swap) holding SAMPLE.  Sets
# used0/grew0 right after the copy and used1/grew1 once the idle pass is
# done (bytes), and rate (the pass's MB/s on one core).
idle=5
recompression () { grep 'cache recompression:' "$tmp/$1.log" | tail -n 1; }
field () { sed -E "s/.* $1 ([0-9.]+).*/\1/"; }
sgblk_used ()
{
  local key=sg-${1##*/}-$2 sock rss0 i hc last=-1 passes stable=0 swap=
  sock=$tmp/$key.sock
  [ "$2" = swap ] && swap=--swap
  serve_nbd "$key" sgblk "$sock" "$SGBLKD" -f -U "$sock" --size "${mib}M" \
    --recompress-idle "$idle" $swap
  [ -z "$swap" ] || wait_until "$key" grep -q 'swap mode:' "$tmp/$key.log"
  rss0=$(rss_kib "${pid[$key]}")
  nbdcopy "$1" "nbd+unix:///?socket=$sock"
  grew0=$(( ($(rss_kib "${pid[$key]}") - rss0) * 1024 ))
  set -- $(sgblk_stats "$key")
  used0=$3
  # Done when two more passes have run without a block recompressed.
  for i in $(seq 240); do
    sleep 1
    sgblk_stats "$key" >/dev/null
    hc=$(recompression "$key" | field hc_blocks)
    passes=$(recompression "$key" | field passes)
    if [ "$hc" = "$last" ] && [ "$hc" -gt 0 ]; then
      [ "$passes" -ge "$stable" ] && break
    else
      last=$hc stable=$((passes + 2))
    fi
  done
  sleep 2
  grew1=$(( ($(rss_kib "${pid[$key]}") - rss0) * 1024 ))
  set -- $(sgblk_stats "$key")
  used1=$3
  rate=$(recompression "$key" | field rate)
  stop "$key"
}

{
  echo "| sample, sgblkd | zram lz4 memory | memory used / zram: after copy | after idle LZ4HC | RSS growth / zram: after copy | after idle LZ4HC | idle pass, one core |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$tmp/table"
for s in ext4 libs; do
  zu=$(zram_used "$tmp/$s")
  for mode in plain swap; do
    sgblk_used "$tmp/$s" "$mode"
    awk -v s="$s" -v m="$mib" -v mode="$mode" -v zu="$zu" -v u0="$used0" -v u1="$used1" \
        -v g0="$grew0" -v g1="$grew1" -v rate="$rate" 'BEGIN {
      M = 1048576
      printf "| %s (%d MiB), %s | %.1f MiB | %.3f | %.3f | %.3f | %.3f | %.0f MB/s |\n",
        s, m, mode == "swap" ? "`--swap`" : "plain", zu / M, u0 / zu, u1 / zu, g0 / zu, g1 / zu, rate }' >>"$tmp/table"
  done
done
say "The same samples go into zram (\`dd oflag=direct\`, lz4) and into a" \
    "fresh sgblkd in-memory disk of the same size (\`nbdcopy\` over a Unix" \
    "socket), plain and with \`--swap\`: ext4 is \`mkfs.ext4 -d\` of headers" \
    "and documentation, libs is shared libraries end to end.  sgblkd runs" \
    "with \`--recompress-idle $idle\`; \"after idle LZ4HC\" is measured once" \
    "its idle pass has recompressed everything it could (two passes in a" \
    "row found nothing more)."
cat "$tmp/table" >>"$md"
echo >>"$md"
say "zram's memory is \`mem_used_total\` from \`mm_stat\` (its per-block table" \
    "left out); sgblk's \"memory used\" is its own count, block table included." \
    "RSS growth is sgblkd's VmRSS minus VmRSS right after start: what a user" \
    "sees, with the daemon's buffers and allocator in it (with \`--swap\`, the" \
    "locked reserve it keeps ahead of writers is in VmRSS from the start)." \
    "The idle pass's rate is the logical bytes it compressed with LZ4HC per" \
    "second of its thread's CPU time."
section_done
