#!/usr/bin/env bash
# contrib/bench/run.sh in its quick mode (one round of 1 s fio runs, 64M
# disks, smaller samples and swap hog) writes every section's Markdown
# file with a number in every table cell, summary.md with them all, and a
# valid PNG for each plot.  Speed is not judged, only that the suite runs
# and reports.  Without root, the FUSE, zram and swap sections must say
# why they are skipped.
. "${top_srcdir:-.}/tests/functions.sh"
requires fio nbdkit nbdfuse qemu-nbd nbd-server jq bc gnuplot file certtool
bench=${top_srcdir:-.}/contrib/bench

out=$tmp/results
ROUNDS=1 RUNTIME=1 BENCH_QUICK=1 BENCH_OUT=$out SGBLKD=$SGBLKD \
  "$bench/run.sh" >"$tmp/run.log" 2>&1 || {
    cat "$tmp/run.log"; grep '^- ' "$out/summary.md"; fail "run.sh failed"; }
cat "$out/summary.md"

plotted="nbd-memory nbd-compressible nbd-multiconn nbd-tls nbd-file fuse"
expected="nbd-memory nbd-compressible nbd-multiconn nbd-tls nbd-file"
if [ "$(id -u)" -eq 0 ]; then
  expected="$expected fuse compress swap"
else
  for s in fuse compress swap; do
    grep -q "^- $s: skipped: needs root" "$out/summary.md" || fail "$s neither ran nor said why not"
  done
fi

for s in $expected; do
  [ -s "$out/$s.md" ] || fail "no $s.md"
  grep -q "^- \[$s\]($s.md): [0-9]* s$" "$out/summary.md" || fail "summary.md does not list $s"
  grep -qxF "$(head -n 1 "$out/$s.md")" "$out/summary.md" || fail "summary.md lacks $s's section"
  # Every table: a header row, the --- row, then rows whose every cell
  # after the first holds a number, and nothing empty, NaN or infinite;
  # but for a figure of a peer with no process to measure, which reads
  # "kernel", and its ratio, which reads "—" (zram's server CPU in swap).
  awk -F'|' -v s="$s" '
    !/^\|/ { in_table = 0; next }
    !in_table { in_table = 1; next }
    /^\| *---/ { next }
    {
      rows++
      for (i = 3; i < NF; i++) {
        c = tolower($i)
        if (c ~ /^ *(kernel|—) *$/) continue
        if (c !~ /[0-9]/ || c ~ /nan|inf|n\/a/) { printf "%s: bad cell \"%s\" in: %s\n", s, $i, $0; bad = 1 }
      }
    }
    END { if (!rows) { print s ": no table rows"; bad = 1 } exit bad }' "$out/$s.md" ||
    fail "$s.md has a table cell without a figure"
done

for s in $plotted; do
  case " $expected " in *" $s "*) ;; *) continue ;; esac
  for kind in speed cpu; do
    png=$out/$s-$kind.png
    [ -f "$png" ] || fail "no $s-$kind.png"
    file -b "$png" | grep -q '^PNG image data' || fail "$s-$kind.png is not a PNG: $(file -b "$png")"
    [ "$(stat -c %s "$png")" -gt 4000 ] || fail "$s-$kind.png is too small to hold a chart"
    grep -qF "($s-$kind.png)" "$out/$s.md" || fail "$s.md does not show $s-$kind.png"
  done
done
