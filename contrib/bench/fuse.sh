#!/usr/bin/env bash
# The disk as a file, through a loop device: sgblkd's FUSE file against
# nbdfuse over nbdkit's memory plugin (the nearest existing stack), same
# size, same run, runs alternating, medians of ROUNDS runs of RUNTIME s.
# fio with libaio and direct I/O on each loop device.
#
#   contrib/bench/fuse.sh [ROUNDS] [RUNTIME]     (root; defaults 3, 5)
set -euo pipefail
. "$(dirname "$0")/common.sh"

rounds=${1:-3}
runtime=${2:-5}
size=1G
SGBLKD=${SGBLKD:-$(dirname "$0")/../../sgblkd}
for c in fio nbdkit nbdfuse jq losetup; do
  command -v "$c" >/dev/null || { echo "$0: needs $c" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=() loops=()
cleanup ()
{
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  for m in "$tmp/sg" "$tmp/nf"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
  kill "${pids[@]}" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/sg" "$tmp/nf"

"$SGBLKD" -f --size "$size" --fuse "$tmp/sg" 2>"$tmp/sg.log" &
pids+=($!)
nbdfuse "$tmp/nf/disk" [ nbdkit memory "$size" ] &
pids+=($!)
for i in $(seq 100); do
  [ -f "$tmp/sg/disk" ] && [ -f "$tmp/nf/disk" ] && break
  sleep 0.1
done
sg=$(losetup -f --show --direct-io=on "$tmp/sg/disk"); loops+=("$sg")
nf=$(losetup -f --show --direct-io=on "$tmp/nf/disk"); loops+=("$nf")

run ()   # sg|nf RW BS -> IOPS and bytes/s
{
  local dev=$sg
  [ "$1" = nf ] && dev=$nf
  fio --name=b --filename="$dev" --ioengine=libaio --direct=1 --rw="$2" --bs="$3" \
      --iodepth=16 --time_based --runtime="$runtime" --output-format=json \
      --output="$tmp/out.json" >/dev/null
  fio_rate "$tmp/out.json" "$2"
}

for d in "$sg" "$nf"; do
  fio --name=fill --filename="$d" --ioengine=libaio --direct=1 --rw=write --bs=1M \
      --iodepth=4 --output=/dev/null >/dev/null
done
echo "| workload | sgblk FUSE + loop | nbdfuse + nbdkit memory + loop | ratio |"
echo "| --- | ---: | ---: | ---: |"
bench_rows sg nf
