# Shared by the benchmarks: medians, and the table of fio workloads run
# alternately against two stacks.  The caller defines
#   run NAME RW BS    -> prints "IOPS BYTES_PER_SECOND" for one fio run
# and sets $rounds and $tmp.

median () { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# fio_rate JSON RW: "IOPS BYTES_PER_SECOND" of the job's direction.
fio_rate ()
{
  local dir=read
  case $2 in *write*) dir=write ;; esac
  jq -r ".jobs[0].$dir | \"\(.iops) \(.bw_bytes)\"" "$1"
}

# bench_rows A B: 4k random read, 4k random write and 1M sequential
# write, A and B alternating each round; one Markdown row each, A / B.
bench_rows ()
{
  local w a b
  for w in "randread 4k iops" "randwrite 4k iops" "write 1M bw"; do
    set -- $w "$1" "$2"
    : >"$tmp/$4.v"; : >"$tmp/$5.v"
    for r in $(seq "$rounds"); do
      for s in "$4" "$5"; do
        read -r iops bw < <(run "$s" "$1" "$2")
        if [ "$3" = iops ]; then echo "$iops"; else echo "$bw"; fi >>"$tmp/$s.v"
      done
    done
    a=$(median <"$tmp/$4.v"); b=$(median <"$tmp/$5.v")
    if [ "$3" = iops ]; then
      printf '| %s %s QD16 | %.0f IOPS | %.0f IOPS | %.2fx |\n' "$1" "$2" "$a" "$b" "$(echo "$a / $b" | bc -l)"
    else
      printf '| %s %s QD16 | %.2f GB/s | %.2f GB/s | %.2fx |\n' "$1" "$2" \
        "$(echo "$a / 1000000000" | bc -l)" "$(echo "$b / 1000000000" | bc -l)" "$(echo "$a / $b" | bc -l)"
    fi
    shift 3
  done
}
