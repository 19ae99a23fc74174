#!/usr/bin/env bash
# NBD and FUSE write the same sectors at the same time, one side whole
# sectors and the other 100 bytes at their start (read-modify-written
# below it): no read-modify-write ever puts back bytes older than a
# write that finished before it.  Both ways round: NBD whole sectors
# against FUSE partial writes, and NBD unaligned writes against FUSE
# aligned ones.  Each side makes SGBLK_RACE_WRITES writes (default 50,000)
# while the other is still writing.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires python3
python3 -c 'import nbd' 2>/dev/null || skip "python3 has no libnbd bindings (python3-libnbd)"
writes=${SGBLK_RACE_WRITES:-50000}

fuse_mountpoint
start_sgblkd race --size 64M --fuse "$mnt"

race () {
  local full_via=$1 partial_via=$2 first=$3 target
  rm -rf "$tmp/done" && mkdir "$tmp/done"
  for side in full partial; do
    eval "via=\$${side}_via"
    [ "$via" = nbd ] && target=$uri || target=$mnt/disk
    python3 "$top_srcdir/tests/race_sectors.py" --via "$via" --target "$target" \
      --side "$side" --first "$first" --writes "$writes" --done-dir "$tmp/done" \
      >"$tmp/$side.out" 2>&1 &
    eval "pid_$side=$!"
  done
  local status=0
  wait "$pid_full" || status=1
  wait "$pid_partial" || status=1
  cat "$tmp/full.out" "$tmp/partial.out"
  [ "$status" -eq 0 ] || fail "whole-sector writes over $full_via lost updates to partial writes over $partial_via"
}

race nbd fuse 0
race fuse nbd 4096
stop_sgblkd race
