#!/usr/bin/env bash
# A stats file that can no longer be written (its directory removed) is
# one error line however many rewrites fail, clients are served as
# before, and once the directory is back the file is written again, and
# that is said.  A path that cannot be written at start-up is exit 1
# with one line naming it.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

# At start-up: exit 1, one line that names the path.
status=0
"$SGBLKD" -f -U "$tmp/x.sock" --size 1M --stats-file "$tmp/no/such/dir/sgblk.prom" \
  >"$tmp/start.out" 2>"$tmp/start.err" || status=$?
cat "$tmp/start.err"
[ "$status" -eq 1 ] || fail "an unwritable stats file at start-up: exit $status, want 1"
[ "$(wc -l <"$tmp/start.err")" -eq 1 ] || fail "want one line on stderr"
grep -q "$tmp/no/such/dir/sgblk.prom: cannot write the stats file" "$tmp/start.err" ||
  fail "the line does not name the path"

dir=$tmp/stats
mkdir "$dir"
start_sgblkd mem --size 16M --stats-file "$dir/sgblk.prom" --stats-interval 1
[ -f "$dir/sgblk.prom" ] || fail "no stats file"

rm -r "$dir"
# Several rewrites fail meanwhile; a client does not notice.
nbdsh -u "$uri" -c '
import time
for i in range(35):
    h.pwrite(b"\x03" * 4096, i * 4096)
    time.sleep(0.1)
assert h.pread(4096, 34 * 4096) == b"\x03" * 4096
'
grep "stats file" "$tmp/mem.log" || true
[ "$(grep -c "cannot rewrite the stats file" "$tmp/mem.log")" -eq 1 ] ||
  fail "want one line for the failed rewrites"
grep -q "$dir/sgblk.prom: cannot rewrite the stats file: No such file or directory" "$tmp/mem.log" ||
  fail "the line does not say which file and why"

mkdir "$dir"
for i in $(seq 30); do [ -f "$dir/sgblk.prom" ] && break; sleep 0.1; done
[ -f "$dir/sgblk.prom" ] || fail "the stats file is not written again"
for i in $(seq 30); do grep -q "the stats file is written again" "$tmp/mem.log" && break; sleep 0.1; done
grep -q "$dir/sgblk.prom: the stats file is written again" "$tmp/mem.log" ||
  fail "its recovery is not said"
grep -q 'sgblk_written_bytes_total{export=""} 143360$' "$dir/sgblk.prom" ||
  fail "the file does not count the writes made while it could not be written"
stop_sgblkd mem
