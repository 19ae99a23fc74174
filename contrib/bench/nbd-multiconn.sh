#!/usr/bin/env bash
# Several NBD connections at once: fio's nbd engine with 4 jobs, each on
# its own connection at queue depth 16, against 1 connection, on
# sgblkd's in-memory disk and (for reference) nbdkit memory, both filled
# first.  Aggregate rates, CPU per I/O, and what 4 connections give over 1.
#
#   contrib/bench/nbd-multiconn.sh [ROUNDS] [RUNTIME]
#
# Writes nbd-multiconn.md and its plots into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need fio fio
need nbdkit nbdkit

section nbd-multiconn "NBD, in-memory disks, 4 connections against 1: sgblkd and nbdkit memory"
start_memory_pair
fill_all

workloads=(
  "4k random read, 1 conn|randread|4k|--numjobs=1"
  "4k random read, 4 conns|randread|4k|--numjobs=4"
  "4k random write, 1 conn|randwrite|4k|--numjobs=1"
  "4k random write, 4 conns|randwrite|4k|--numjobs=4"
)
say "Both disks are $size, filled first; fio's nbd engine over a Unix socket" \
    "with \`--numjobs=4 --group_reporting\` (each job its own connection," \
    "queue depth 16 on each) against one job.  Figures are the sums over the jobs."
bench

# 4 connections over 1, per server, from the medians above.
{
  echo "| 4 connections / 1 connection |$(for key in "${servers[@]}"; do printf ' %s |' "${label[$key]}"; done)"
  echo "| --- |$(for key in "${servers[@]}"; do printf ' ---: |'; done)"
  awk -F'\t' -v n=${#servers[@]} '
    NR % 2 == 1 { for (s = 0; s < n; s++) one[s] = $(3 + s); next }
    { sub(/, 4 conns$/, "", $1)
      printf "| %s |", $1
      for (s = 0; s < n; s++) printf " %.2fx |", $(3 + s) / one[s]
      print "" }' "$tmp/$name.dat"
  echo
} >>"$md"
section_done
