#!/usr/bin/env bash
# Every fuzz target's seed corpus (fuzz/corpus/TARGET) and every input a
# fuzzer once crashed on (tests/fuzz-regressions/TARGET) runs through the
# target again, built as a plain program: a fixed bug stays fixed in
# every make check, with no fuzzer and no clang needed.
. "${top_srcdir:-.}/tests/functions.sh"

for t in fuzz-scsi-cdb fuzz-nbd-stream fuzz-nbd-transmission fuzz-cache-decode fuzz-cli; do
  dirs=()
  for d in "$top_srcdir/fuzz/corpus/$t" "$top_srcdir/tests/fuzz-regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  [ ${#dirs[@]} -gt 0 ] || continue
  "$top_builddir/tests/replay-$t" "${dirs[@]}" 2>"$tmp/$t.log" ||
    { tail -n 20 "$tmp/$t.log"; fail "$t: an input crashed the target"; }
  tail -n 1 "$tmp/$t.log"
done
