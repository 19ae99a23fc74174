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
  local dir=read
  case $2 in *write*) dir=write ;; esac
  jq -r ".jobs[0].$dir | \"\(.iops) \(.bw_bytes)\"" "$tmp/out.json"
}

median () { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Fill both disks so that reads hit allocated data.
for s in sgblk nbdkit; do
  fio --name=fill --ioengine=nbd --uri="$(uri "$s")" --rw=write --bs=1M \
      --iodepth=4 --size="$size" --output="$tmp/fill.out" >/dev/null
done

echo "| workload | sgblk | nbdkit memory | ratio |"
echo "| --- | ---: | ---: | ---: |"
for w in "randread 4k iops" "randwrite 4k iops" "write 1M bw"; do
  set -- $w
  : >"$tmp/sgblk.v"; : >"$tmp/nbdkit.v"
  for r in $(seq "$rounds"); do
    for s in sgblk nbdkit; do
      read -r iops bw < <(run "$s" "$1" "$2")
      if [ "$3" = iops ]; then echo "$iops"; else echo "$bw"; fi >>"$tmp/$s.v"
    done
  done
  a=$(median <"$tmp/sgblk.v"); b=$(median <"$tmp/nbdkit.v")
  if [ "$3" = iops ]; then
    printf '| %s %s QD16 | %.0f IOPS | %.0f IOPS | %.2fx |\n' "$1" "$2" "$a" "$b" "$(echo "$a / $b" | bc -l)"
  else
    printf '| %s %s QD16 | %.2f GB/s | %.2f GB/s | %.2fx |\n' "$1" "$2" "$(echo "$a / 1000000000" | bc -l)" "$(echo "$b / 1000000000" | bc -l)" "$(echo "$a / $b" | bc -l)"
  fi
done
