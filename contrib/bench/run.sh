#!/usr/bin/env bash
# sgblk's benchmarks in one command: every section below, one after the
# other, each against its peers in the same run, servers alternating
# within each round, medians over ROUNDS rounds.
#
#   contrib/bench/run.sh
#
# Knobs (environment): ROUNDS (3), RUNTIME seconds per fio run (5),
# BENCH_QUICK=1 (64M disks, smaller samples and hog: a smoke run),
# BENCH_OUT (contrib/bench/results), BENCH_ONLY="RESULT..." (only those
# sections, e.g. "fuse swap"; nbd-rbd, a Ceph RBD image, runs only when
# named there), SGBLKD (the build's sgblkd).
# Writes one Markdown file per section, its PNG plots, and summary.md,
# which has them all.  Sections needing root (FUSE, zram, swap) or a
# missing peer say why and are skipped.  About 15 minutes with the
# defaults on 2 vCPUs.
. "$(dirname "$0")/common.sh"
BENCH_VERSIONS=$(versions)
export ROUNDS=$rounds RUNTIME=$runtime BENCH_QUICK=$quick BENCH_OUT=$out BENCH_CMD BENCH_VERSIONS SGBLKD

# script:result, in the order they run.
sections=(
  nbd:nbd-memory
  nbd-compressible:nbd-compressible
  nbd-multiconn:nbd-multiconn
  nbd-tls:nbd-tls
  nbd-file:nbd-file
  fuse:fuse
  compress:compress
  fuse-swap:swap
  nbd-rbd:nbd-rbd
)
# nbd-rbd (a Ceph cluster, about 5 minutes) runs only when asked for.
: "${BENCH_ONLY:=nbd-memory nbd-compressible nbd-multiconn nbd-tls nbd-file fuse compress swap}"
for s in "${!sections[@]}"; do
  case " $BENCH_ONLY " in *" ${sections[$s]#*:} "*) ;; *) unset "sections[$s]" ;; esac
done

mkdir -p "$out"
for s in "${sections[@]}"; do rm -f "$out/${s#*:}.md" "$out/${s#*:}"-*.png; done
rm -f "$out/summary.md"

failed=0
: >"$tmp/index"
for s in "${sections[@]}"; do
  script=$bench_dir/${s%:*}.sh result=${s#*:}
  echo "== $result ($(basename "$script"))"
  start=$SECONDS
  status=0
  "$script" | tee "$tmp/log" || status=$?
  took=$((SECONDS - start))
  case $status in
    0) echo "- [$result]($result.md): $took s" ;;
    77) echo "- $result: $(grep 'skipped:' "$tmp/log" | tail -n 1 | sed 's/^[^:]*: //')" ;;
    *) echo "- $result: **failed** (exit $status) after $took s"; failed=1 ;;
  esac >>"$tmp/index"
done

{
  echo "# sgblk benchmarks"
  echo
  header
  echo
  cat "$tmp/index"
  for s in "${sections[@]}"; do
    [ -f "$out/${s#*:}.md" ] || continue
    echo
    cat "$out/${s#*:}.md"
  done
} >"$out/summary.md"
echo "== $out/summary.md written in $SECONDS s"
exit "$failed"
