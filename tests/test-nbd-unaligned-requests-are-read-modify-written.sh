#!/usr/bin/env bash
# A client that ignores the block-size constraint still gets exactly what
# it wrote: sub-block writes, zeroes and reads at odd offsets are served by
# read-modify-write and leave the neighbouring bytes intact.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

for bs in 512 4096; do
  start_sgblkd "mem$bs" --size 1M -B "$bs"
  nbdsh -u "$uri" -c '
import os
h.set_strict_mode(0)
size = h.get_size()
ref = bytearray(os.urandom(size))
h.pwrite(bytes(ref), 0)
for off, n in ((1, 1000), (511, 2), (4095, 4098), (8191, 1), (12345, 65536)):
    data = os.urandom(n)
    h.pwrite(data, off)
    ref[off:off + n] = data
h.zero(777, 3333)
ref[3333:3333 + 777] = bytes(777)
for off, n in ((0, size), (3, 5), (4093, 7)):
    assert h.pread(n, off) == bytes(ref[off:off + n]), (off, n)
print("unaligned I/O exact")
'
  stop_sgblkd "mem$bs"
done
