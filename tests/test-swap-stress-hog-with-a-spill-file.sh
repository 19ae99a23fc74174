#!/usr/bin/env bash
# The host swap stress test once more, with the in-memory disk held to
# 64 MiB of memory and a spill file: the copies' random data and the
# swapped pages go to the file and come back while the machine swaps
# onto the disk, and nothing is lost (see the test it runs).
SGBLK_STRESS_SPILL=1 exec "${top_srcdir:-.}/tests/test-swap-stress-hog-on-fuse-loop-swap-while-nbdcopy-round-trips.sh"
