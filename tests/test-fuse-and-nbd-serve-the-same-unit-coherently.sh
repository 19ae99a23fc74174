#!/usr/bin/env bash
# NBD and FUSE on one unit at once: data written with nbdcopy reads back
# through the file, and data written through the file reads back over NBD.
# Extra mount options given with --fuse-opt reach the mount.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires nbdcopy

fuse_mountpoint
start_sgblkd both --size 32M --fuse "$mnt" --fuse-opt allow_other
grep " $mnt fuse.sgblk " /proc/mounts | grep -q allow_other || fail "--fuse-opt allow_other not passed to the mount"
random_file "$tmp/a" 32
nbdcopy "$tmp/a" "$uri"
cmp "$tmp/a" "$mnt/disk" || fail "the file does not show what NBD wrote"
random_file "$tmp/b" 8
dd if="$tmp/b" of="$mnt/disk" bs=1M seek=3 conv=notrunc,fsync status=none
nbdcopy "$uri" "$tmp/out"
cmp -n $((8 << 20)) -i $((3 << 20)):0 "$tmp/out" "$tmp/b" || fail "NBD does not show what the file got"
cmp -n $((3 << 20)) "$tmp/out" "$tmp/a" || fail "data around the file write changed"
stop_sgblkd both
