#!/usr/bin/env bash
# NBD speed of sgblkd's in-memory disk against nbdkit's memory plugin,
# both filled first: fio's nbd engine, one connection over a Unix socket,
# queue depth 16, fio's default (incompressible) data.  Runs alternate
# between the servers; each figure is the median of ROUNDS runs of
# RUNTIME seconds, beside the server's CPU time per I/O.
#
#   contrib/bench/nbd.sh [ROUNDS] [RUNTIME]      (defaults 3, 5)
#
# Writes nbd-memory.md and its plots into BENCH_OUT (see common.sh).
. "$(dirname "$0")/common.sh"
need fio fio
need nbdkit nbdkit

section nbd-memory "NBD, in-memory disks: sgblkd against nbdkit memory"
start_memory_pair
fill_all

workloads=("${nbd_workloads[@]}")
say "Both disks are $size, filled with fio's incompressible data first;" \
    "fio's nbd engine, one connection over a Unix socket."
bench
section_done
