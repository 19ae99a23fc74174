#!/usr/bin/env bash
# fio's nbd engine writes and verifies (crc32c) at queue depth 16 over
# two connections to the same disk, each job in its own region.
. "${top_srcdir:-.}/tests/functions.sh"
requires fio
fio --enghelp 2>&1 | grep -qw nbd || skip "this fio has no nbd engine"

start_sgblkd mem --size 128M
fio --name=verify --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --numjobs=2 --size=48M --offset_increment=64M \
    --verify=crc32c --verify_fatal=1 --verify_state_save=0 --do_verify=1 --group_reporting \
    --output="$tmp/fio.out"
cat "$tmp/fio.out"
grep -q 'err= 0' "$tmp/fio.out" || fail "fio reported an error"
# Mixed sizes, reads and writes, with verification.
fio --name=mixed --ioengine=nbd --uri="$uri" --rw=randrw --bsrange=512-64k \
    --bs_unaligned=0 --iodepth=16 --numjobs=2 --size=32M --offset_increment=64M \
    --verify=crc32c --verify_fatal=1 --verify_state_save=0 --group_reporting --output="$tmp/fio2.out"
cat "$tmp/fio2.out"
grep -q 'err= 0' "$tmp/fio2.out" || fail "fio reported an error"
stop_sgblkd mem
