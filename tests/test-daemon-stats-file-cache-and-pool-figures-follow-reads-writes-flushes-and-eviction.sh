#!/usr/bin/env bash
# --stats-file on a file served through a small write-back cache: the
# cache's figures follow what clients do.  A first read of a MiB misses
# it 256 times, a second hits it 256 times; a write while the file's
# filesystem is frozen (so nothing can be written back) is 1 MiB dirty,
# and grows zram's orig_data_size, compr_data_size and mem_used_total;
# after a FLUSH nothing is dirty and that MiB is written back; reading
# the whole disk, four times --cache-size, misses and evicts, until every
# block is held or was evicted.  Between clients no command is in use;
# the vector pool's figures are there and moved.  With command
# allocations failing on purpose, the reserve's fallbacks are counted.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh nbdcopy fsfreeze mkfs.ext4 losetup
[ "$(id -u)" -eq 0 ] || skip "needs root to mount a filesystem and freeze it"
[ -e /dev/loop-control ] || skip "no loop devices"
[ -x "$SGBLKD_TEST" ] || skip "tests/sgblkd-test is not built (make check builds it)"

# The disk file on a filesystem of its own, which fsfreeze can stop.
truncate -s 200M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
attach_loop "$tmp/fs.img"
mkdir "$tmp/fs"
mount "$loop" "$tmp/fs"
# (Before the loop device's own clean-up, and with the daemon gone.)
cleanup_fn "kill -KILL \${pid_file:-} \${pid_fail:-} 2>/dev/null; sleep 0.2; fsfreeze -u '$tmp/fs' 2>/dev/null; umount '$tmp/fs' || umount -l '$tmp/fs'"
random_file "$tmp/fs/disk.img" 128

# value NAME: the sample of NAME for export "vol" in the stats file.
value ()
{
  local v
  v=$(awk -v n="$1{export=\"vol\"}" '$1 == n { print $2 }' "$stats")
  [[ "$v" =~ ^[0-9]+$ ]] || { cat "$stats"; fail "no figure (or not a count) for $1: '$v'"; }
  echo "$v"
}
# usr1 NAME: have daemon NAME rewrite the file now; return once it has
# (its log line of the export's counters comes right after the rewrite).
usr1 () { usr1_wait "$1" "info: export 'vol':"; }
# grown NAME BEFORE BY: NAME is now BEFORE + BY.
grown ()
{
  local now; now=$(value "$1")
  [ "$now" -eq $(( $2 + $3 )) ] || fail "$1 is $now, not $2 + $3 ($4)"
}

stats=$tmp/file.prom
start_sgblkd file -e vol --cache-size 33M --stats-file "$stats" --stats-interval 3600 \
  "$tmp/fs/disk.img"
uri="nbd+unix:///vol?socket=$sock"
usr1 file
for f in hits_total misses_total dirty_bytes written_back_bytes_total evicted_bytes_total \
         orig_data_size_bytes; do
  [ "$(value "sgblk_cache_$f")" -eq 0 ] || fail "sgblk_cache_$f is not 0 before any client"
done
sv_used=$(( $(value sgblk_vector_pool_hits_total) + $(value sgblk_vector_pool_misses_total) ))

# Reads: the first of a MiB misses each of its 4 KiB blocks, the second
# hits each.
hits=$(value sgblk_cache_hits_total) misses=$(value sgblk_cache_misses_total)
nbdsh -u "$uri" -c 'h.pread(1 << 20, 0)'
usr1 file
grown sgblk_cache_misses_total "$misses" 256 "a first read of 1 MiB"
grown sgblk_cache_hits_total "$hits" 0 "a first read of 1 MiB"
nbdsh -u "$uri" -c 'h.pread(1 << 20, 0)'
usr1 file
grown sgblk_cache_hits_total "$hits" 256 "the same MiB read again"
grown sgblk_cache_misses_total "$misses" 256 "the same MiB read again"

# A write that cannot be written back: the filesystem is frozen.
orig=$(value sgblk_cache_orig_data_size_bytes)
compr=$(value sgblk_cache_compr_data_size_bytes)
mem=$(value sgblk_cache_mem_used_bytes)
written_back=$(value sgblk_cache_written_back_bytes_total)
fsfreeze -f "$tmp/fs"
nbdsh -u "$uri" -c 'import os; h.pwrite(os.urandom(1 << 20), 2 << 20)'
usr1 file
grown sgblk_cache_dirty_bytes 0 $((1 << 20)) "1 MiB written, none written back"
grown sgblk_cache_written_back_bytes_total "$written_back" 0 "the file is frozen"
grown sgblk_cache_orig_data_size_bytes "$orig" $((1 << 20)) "1 MiB of new blocks"
[ "$(value sgblk_cache_compr_data_size_bytes)" -gt "$compr" ] ||
  fail "compr_data_size did not grow with 1 MiB of random data"
[ "$(value sgblk_cache_mem_used_bytes)" -gt "$mem" ] ||
  fail "mem_used_total did not grow with 1 MiB of random data"

# Thawed and flushed: nothing is dirty, and that MiB is written back.
fsfreeze -u "$tmp/fs"
nbdsh -u "$uri" -c 'h.flush()'
usr1 file
grown sgblk_cache_dirty_bytes 0 0 "after FLUSH"
grown sgblk_cache_written_back_bytes_total "$written_back" $((1 << 20)) "after FLUSH"

# The whole disk through a cache of a quarter of it: every block not
# read before is a miss, and what does not fit is evicted.  (A block is
# read once, so it is held now or was evicted once.)
misses=$(value sgblk_cache_misses_total)
nbdcopy "$uri" null:
usr1 file
[ "$(value sgblk_cache_misses_total)" -ge $(( misses + (126 << 20) / 4096 )) ] ||
  fail "misses grew by less than the 126 MiB of blocks read for the first time"
evicted=$(value sgblk_cache_evicted_bytes_total)
[ "$evicted" -gt 0 ] || fail "nothing was evicted from a cache of a quarter of the disk"
[ $(( evicted + $(value sgblk_cache_orig_data_size_bytes) )) -ge $((128 << 20)) ] ||
  fail "evicted ($evicted) and held blocks do not add up to the disk read"

# No client: no command is in use; the vector pool has its figures, and
# the reads and writes above took vectors from it.
[ "$(value sgblk_cmd_pool_in_use)" -eq 0 ] || fail "commands in use with no client"
for f in allocated in_use cached cached_bytes hits_total misses_total waits_total \
         failures_total released_total; do
  value "sgblk_vector_pool_$f" >/dev/null
done
[ "$(value sgblk_vector_pool_in_use)" -eq 0 ] || fail "vectors in use with no client"
[ $(( $(value sgblk_vector_pool_hits_total) + $(value sgblk_vector_pool_misses_total) )) -gt "$sv_used" ] ||
  fail "the vector pool's hits and misses did not move with I/O"
grep "^sgblk_\(cache\|cmd_pool\|vector_pool\)" "$stats"
stop_sgblkd file

# Every third normal command allocation fails: those commands come from
# the reserve, and all of them go back to it.
requires_test_hooks
stats=$tmp/fail.prom
SGBLK_TEST_CMD_FAIL_EVERY=3 start_sgblkd fail -e vol --size 16M --stats-file "$stats" \
  --stats-interval 3600
usr1 fail
[ "$(value sgblk_cmd_pool_fallbacks_total)" -eq 0 ] || fail "fallbacks before any client"
random_file "$tmp/in" 8
nbdcopy "$tmp/in" "nbd+unix:///vol?socket=$sock"
usr1 fail
fallbacks=$(value sgblk_cmd_pool_fallbacks_total)
[ "$fallbacks" -gt 0 ] || fail "no fallback to the reserve counted"
[ "$(value sgblk_cmd_pool_alloc_failures_total)" -ge "$fallbacks" ] ||
  fail "fewer failed allocations than fallbacks"
[ "$(value sgblk_cmd_pool_in_use)" -eq 0 ] || fail "commands in use with no client"
[ "$(value sgblk_cmd_pool_reserve_level)" -eq "$(value sgblk_cmd_pool_reserve_size)" ] ||
  fail "the reserve is not whole again with no client"
stop_sgblkd fail
