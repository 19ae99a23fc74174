#!/usr/bin/env bash
# The disk as a file, through a loop device: sgblkd's FUSE file against
# nbdfuse over nbdkit's memory plugin (the nearest existing stack), same
# size, same run, filled first, runs alternating, medians of ROUNDS runs
# of RUNTIME s.  fio with libaio and direct I/O on each loop device, which
# does direct I/O on its file.
#
#   contrib/bench/fuse.sh [ROUNDS] [RUNTIME]     (root)
#
# Writes fuse.md and its plots into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need_fuse_pair "FUSE mounts and loop devices"
need fio fio

section fuse "FUSE file through a loop device: sgblkd --fuse against nbdfuse + nbdkit memory"
start_fuse_pair "$size"
for key in sg nf; do
  attach_loop "$tmp/$key/disk" --direct-io=on
  target[$key]="--ioengine=libaio --direct=1 --filename=$loop"
done
servers=(sg nf)
fill_all

workloads=("${nbd_workloads[@]:0:3}")
say "Both disks are $size in memory, filled with fio's incompressible data" \
    "first; fio (libaio, direct I/O) on a loop device with \`--direct-io=on\`" \
    "over each FUSE file.  The CPU of nbdfuse and of its nbdkit is summed;" \
    "work done in the kernel for the loop device and FUSE is not counted."
bench
section_done
