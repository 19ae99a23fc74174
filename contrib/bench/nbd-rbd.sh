#!/usr/bin/env bash
# NBD servers of a Ceph RBD image: sgblkd with its compressed write-back
# cache (large enough to hold the image), sgblkd with --cache-mode off,
# and qemu-nbd through qemu's rbd: driver (librbd, with librbd's own
# cache as qemu sets it), each on its own image of one throw-away
# single-node cluster (one monitor, one memstore OSD, on 127.0.0.1; the
# tests' tests/ceph-functions.sh), each filled through its server first.
# fio's nbd engine, one connection over a Unix socket, queue depth 16.
# Not in run.sh's default run (the cluster takes memory and time): ask
# for it with BENCH_ONLY=nbd-rbd, or run this script.
#
#   contrib/bench/nbd-rbd.sh [ROUNDS] [RUNTIME]
#
# Five rounds unless ROUNDS says otherwise: the OSD shares the two CPUs
# with the servers, and one round in three could be off by half of the
# median (55 % spread on 1M writes in a run of three), which moved a
# median of three by 0.2x from run to run.
#
# Writes nbd-rbd.md and its plots into BENCH_OUT.
: "${ROUNDS:=5}"
. "$(dirname "$0")/common.sh"
need fio fio
need libnbd-bin nbdsh
need qemu-utils qemu-nbd
need ceph-mon ceph-mon
need ceph-osd ceph-osd
need ceph-common rbd
need_root "the Ceph daemons"
qemu-img --help | grep -qw rbd || skip "qemu-img has no rbd driver (qemu-block-extra)"
"$SGBLKD" -f "rbd:rbd/x:conf=/dev/null" 2>&1 | grep -q "without RBD" && skip "sgblkd was built without RBD support"

# What tests/ceph-functions.sh expects of its caller.
requires () { local c; for c in "$@"; do command -v "$c" >/dev/null || skip "'$c' is not installed"; done; }
fail () { echo "$0: $*" >&2; exit 1; }
cleanup_fn () { at_exit "$*"; }
. "$bench_dir/../../tests/ceph-functions.sh"

section nbd-rbd "NBD, a Ceph RBD image: sgblkd rbd: (cache, and --cache-mode off) against qemu-nbd rbd:"
# An image of $size per server in the OSD's memory, and room to spare.
keys=(sg so sn qn qc)
export CEPH_MEMSTORE_BYTES=$(( $(numfmt --from=iec "$size") * (${#keys[@]} + 1) ))
ceph_start >"$tmp/ceph-start.log" 2>&1 || { cat "$tmp/ceph-start.log" >&2; exit 1; }
for key in "${keys[@]}"; do rbd create --size "$size" "rbd/$key"; done
cache=$(( $(numfmt --from=iec "$size") * 2 >> 20 ))M
img () { echo "rbd:rbd/$1:conf=$CEPH_CONF"; }

start_timeout=30
# With the cache, a request that waits for the cluster (a miss, room for
# a write) holds an I/O worker of sgblkd until it is answered: 16
# workers for fio's 16 requests in flight.  Without the cache, reads and
# writes are in flight in librbd and hold none: the default workers.
serve_nbd sg sgblk "$tmp/sg.sock" "$SGBLKD" -f -U "$tmp/sg.sock" -t 16 --cache-size "$cache" "$(img sg)"
serve_nbd so "sgblk, cache off" "$tmp/so.sock" "$SGBLKD" -f -U "$tmp/so.sock" --cache-mode off "$(img so)"
serve_nbd qn qemu-nbd "$tmp/qn.sock" qemu-nbd -f raw -t --shared=8 -k "$tmp/qn.sock" "$(img qn)"
# Both defaults leave librbd's cache as Ceph configures it: on, so that
# writes are acknowledged from memory until a flush.  Like for like with
# no cache anywhere: sgblkd with FILE's :rbd_cache=false against
# qemu-nbd --cache=none.
serve_nbd sn "sgblk, cache off, no rbd_cache" "$tmp/sn.sock" "$SGBLKD" -f -U "$tmp/sn.sock" --cache-mode off "$(img sn):rbd_cache=false"
serve_nbd qc "qemu-nbd, cache none" "$tmp/qc.sock" qemu-nbd -f raw -t --shared=8 --cache=none -k "$tmp/qc.sock" "$(img qc)"

servers=(sg so sn qn qc)
ratios=(sg:qn so:qn sn:qc)
fill_all

# Every run starts from a durable image and leaves one: a FLUSH before
# (so that a run with FLUSHes does not pay for its predecessor's dirty
# data) and a FLUSH after, both untimed.  Without the second, what a
# server's cache still holds at the end of its run (sgblk's write-back
# cache, hundreds of MB after a random-write run, or librbd's) would be
# written back by its flusher during the next server's run, on the same
# OSD and CPUs, and count against that server.
# (nbdsh runs "python3 -m nbd": Debian's python3, which has the module.)
nbd_flush () { PATH=/usr/bin:$PATH nbdsh -u "nbd+unix:///?socket=$tmp/$1.sock" -c 'h.flush()'; }
eval "bench_$(declare -f measure)"
measure () { nbd_flush "$1"; bench_measure "$@"; nbd_flush "$1"; }

workloads=(
  "${nbd_workloads[@]}"
  "4k random write, a flush every 32|randwrite|4k|--fsync=32"
)
say "One single-node cluster (one monitor, one OSD with \`osd objectstore = memstore\`," \
    "pools of one replica, on 127.0.0.1) holds an image of $size for each server," \
    "filled through the server with fio's incompressible data first." \
    "\`sgblkd -t 16 --cache-size $cache rbd:rbd/IMG:conf=...\` (write-back: FLUSH writes" \
    "the cache back, then flushes librbd), \`sgblkd --cache-mode off rbd:...\`" \
    "(reads and writes in flight in librbd, none holding an I/O thread; the default threads;" \
    "librbd's cache as Ceph configures it, on: it acknowledges writes from memory and a FLUSH" \
    "writes it back), the same with FILE's \`:rbd_cache=false\` (no cache anywhere)," \
    "\`qemu-nbd -f raw -t --shared=8 -k SOCKET rbd:rbd/IMG:conf=...\`" \
    "(its default, --cache=writeback, has librbd's cache on), and the same with \`--cache=none\`" \
    "(librbd's cache off);" \
    "fio's nbd engine, one connection over a Unix socket.  Each run starts" \
    "and ends with a FLUSH (neither timed), so that none inherits dirty data from the one before" \
    "and no server's write-back runs during another's run." \
    "The last workload sends a FLUSH after every 32 writes, so that what is acknowledged" \
    "is soon on the OSD." \
    "The OSD's and the monitor's CPU time is not counted."
bench
section_done
