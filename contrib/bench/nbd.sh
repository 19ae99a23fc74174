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
start_sgblkd_memory sg "$tmp/sg.sock"
start_nbdkit_memory nk "$tmp/nk.sock"
servers=(sg nk)
for key in "${servers[@]}"; do fill "$key"; done

workloads=(
  "4k random read|randread|4k"
  "4k random write|randwrite|4k"
  "1M sequential write|write|1M"
  "1M sequential read|read|1M"
)
say "Both disks are $size, filled with fio's incompressible data first;" \
    "fio's nbd engine, one connection over a Unix socket."
bench
section_done
