#!/usr/bin/env bash
# NBD throughput of sgblkd's in-memory disk against nbdkit's memory plugin,
# side by side in one run: fio's nbd engine, one connection over a Unix
# socket, queue depth 16.  Runs alternate between the servers; each figure
# is the median of ROUNDS runs of RUNTIME seconds.
#
#   contrib/bench/nbd.sh [ROUNDS] [RUNTIME]      (defaults: 5 rounds, 10 s)
#
# Prints a Markdown table with the ratio sgblk / nbdkit.  Not part of make
# check: timings depend on the machine and what else runs on it.
set -euo pipefail
. "$(dirname "$0")/common.sh"

rounds=${1:-5}
runtime=${2:-10}
size=1G
SGBLKD=${SGBLKD:-$(dirname "$0")/../../sgblkd}
for c in fio nbdkit jq; do
  command -v "$c" >/dev/null || { echo "$0: needs $c" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT

"$SGBLKD" -f -U "$tmp/sgblk.sock" --size "$size" 2>"$tmp/sgblk.log" &
pids+=($!)
nbdkit -f -U "$tmp/nbdkit.sock" memory "$size" &
pids+=($!)
for s in sgblk nbdkit; do
  for i in $(seq 50); do [ -S "$tmp/$s.sock" ] && break; sleep 0.1; done
done

uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

# run SERVER RW BS -> prints IOPS and bytes/s of the job's direction
run ()
{
  fio --name=b --ioengine=nbd --uri="$(uri "$1")" --rw="$2" --bs="$3" \
      --iodepth=16 --numjobs=1 --size="$size" --time_based \
      --runtime="$runtime" --output-format=json --output="$tmp/out.json" >/dev/null
  fio_rate "$tmp/out.json" "$2"
}


# Fill both disks so that reads hit allocated data.
for s in sgblk nbdkit; do
  fio --name=fill --ioengine=nbd --uri="$(uri "$s")" --rw=write --bs=1M \
      --iodepth=4 --size="$size" --output="$tmp/fill.out" >/dev/null
done

echo "| workload | sgblk | nbdkit memory | ratio |"
echo "| --- | ---: | ---: | ---: |"
bench_rows sgblk nbdkit
