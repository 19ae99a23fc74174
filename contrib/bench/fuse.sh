#!/usr/bin/env bash
# The disk as a file, through a loop device: sgblkd's FUSE file against
# nbdfuse over nbdkit's memory plugin (the nearest existing stack), same
# size, same run, runs alternating, medians of ROUNDS runs of RUNTIME s.
# fio with libaio and direct I/O on each loop device.
#
#   contrib/bench/fuse.sh [ROUNDS] [RUNTIME]     (root; defaults 3, 5)
set -euo pipefail

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

run ()   # DEV RW BS -> IOPS and bytes/s
{
  fio --name=b --filename="$1" --ioengine=libaio --direct=1 --rw="$2" --bs="$3" \
      --iodepth=16 --time_based --runtime="$runtime" --output-format=json \
      --output="$tmp/out.json" >/dev/null
  local dir=read
  case $2 in *write*) dir=write ;; esac
  jq -r ".jobs[0].$dir | \"\(.iops) \(.bw_bytes)\"" "$tmp/out.json"
}
median () { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for d in "$sg" "$nf"; do
  fio --name=fill --filename="$d" --ioengine=libaio --direct=1 --rw=write --bs=1M \
      --iodepth=4 --output=/dev/null >/dev/null
done
echo "| workload | sgblk FUSE + loop | nbdfuse + nbdkit memory + loop | ratio |"
echo "| --- | ---: | ---: | ---: |"
for w in "randread 4k iops" "randwrite 4k iops" "write 1M bw"; do
  set -- $w
  : >"$tmp/sg.v"; : >"$tmp/nf.v"
  for r in $(seq "$rounds"); do
    for pair in "sg:$sg" "nf:$nf"; do
      read -r iops bw < <(run "${pair#*:}" "$1" "$2")
      if [ "$3" = iops ]; then echo "$iops"; else echo "$bw"; fi >>"$tmp/${pair%%:*}.v"
    done
  done
  a=$(median <"$tmp/sg.v"); b=$(median <"$tmp/nf.v")
  if [ "$3" = iops ]; then
    printf '| %s %s QD16 | %.0f IOPS | %.0f IOPS | %.2fx |\n' "$1" "$2" "$a" "$b" "$(echo "$a / $b" | bc -l)"
  else
    printf '| %s %s QD16 | %.2f GB/s | %.2f GB/s | %.2fx |\n' "$1" "$2" "$(echo "$a / 1000000000" | bc -l)" "$(echo "$b / 1000000000" | bc -l)" "$(echo "$a / $b" | bc -l)"
  fi
done
