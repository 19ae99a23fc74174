#!/usr/bin/env bash
# Compression and memory of sgblkd's in-memory disk against the kernel's
# zram with lz4, in one run, on the same two 64 MiB samples (16 MiB with
# BENCH_QUICK=1):
#   ext4  an ext4 image made with mkfs.ext4 -d from system files
#   libs  a concatenation of shared libraries
# For each: logical bytes / memory used, sgblk's memory over zram's, and
# how much sgblkd's resident memory grew.
#
#   contrib/bench/compress.sh            (root: it resets /dev/zram0)
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

# sgblk_used SAMPLE: sets $used to sgblkd's "memory used" holding SAMPLE,
# and $grew to the growth of its VmRSS from right after start (bytes).
sgblk_used ()
{
  local key=sg-${1##*/} rss0
  start_sgblkd_memory "$key" "$tmp/$key.sock" "${mib}M"
  rss0=$(rss_kib "${pid[$key]}")
  nbdcopy "$1" "nbd+unix:///?socket=$tmp/$key.sock"
  grew=$(( ($(rss_kib "${pid[$key]}") - rss0) * 1024 ))
  set -- $(sgblk_stats "$key")
  used=$3
  stop "$key"
}

{
  echo "| sample | zram lz4: logical / memory | sgblk: logical / memory used | sgblk memory used / zram | sgblk RSS growth | sgblk RSS growth / zram |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
} >"$tmp/table"
for s in ext4 libs; do
  zu=$(zram_used "$tmp/$s")
  sgblk_used "$tmp/$s"
  awk -v s="$s" -v m="$mib" -v b="$bytes" -v zu="$zu" -v su="$used" -v sr="$grew" 'BEGIN {
    M = 1048576
    printf "| %s (%d MiB) | %.2f (%.1f MiB) | %.2f (%.1f MiB) | %.3f | %.1f MiB | %.3f |\n",
      s, m, b / zu, zu / M, b / su, su / M, su / zu, sr / M, sr / zu }' >>"$tmp/table"
done
say "The same samples go into zram (\`dd oflag=direct\`, lz4) and into a" \
    "fresh sgblkd in-memory disk of the same size (\`nbdcopy\` over a Unix" \
    "socket): ext4 is \`mkfs.ext4 -d\` of headers and documentation, libs" \
    "is shared libraries end to end."
cat "$tmp/table" >>"$md"
echo >>"$md"
say "zram's memory is \`mem_used_total\` from \`mm_stat\` (its per-block table" \
    "left out); sgblk's \"memory used\" is its own count, block table included." \
    "RSS growth is sgblkd's VmRSS after the copy minus VmRSS right after" \
    "start: what a user sees, with the daemon's buffers and allocator in it."
section_done
