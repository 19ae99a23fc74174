#!/usr/bin/env bash
# --stats-file: after writes (nbdcopy over NBD, dd on the FUSE file),
# reads, and writes and reads past the end on both front-ends, the file
# parses as Prometheus text, every family with its HELP and TYPE, and
# its figures say what was done: bytes, requests, errors by kind,
# connections open and in all, and a failed handshake for the server.
# SIGUSR1 rewrites it at once and still logs the counters; the file goes
# when the daemon stops.  With a spill file, its figures are there too.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy nbdsh fusermount3 dd
[ -c /dev/fuse ] || fail "no /dev/fuse"
python3 -c 'import prometheus_client' 2>/dev/null ||
  skip "python3 has no prometheus_client (python3-prometheus-client)"

# metrics: the file as "NAME LABELS VALUE" lines, LABELS k=v,... sorted
# (- for none), through the client library's own parser, which also
# checks that each family has its help text and a type.
cat >"$tmp/parse.py" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert fam.documentation, "%s: no HELP" % fam.name
    assert fam.type in ("counter", "gauge"), "%s: type %s" % (fam.name, fam.type)
    for s in fam.samples:
        assert s.name.startswith("sgblk_"), s.name
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items())) or "-"
        print(s.name, labels, "%d" % s.value)
PY
metrics () { python3 "$tmp/parse.py" "$stats" >"$tmp/metrics" || fail "the stats file does not parse"; }
# value NAME LABELS: one figure of the last metrics.
value ()
{
  local v
  v=$(awk -v n="$1" -v l="$2" '$1 == n && $2 == l { print $3 }' "$tmp/metrics")
  [ -n "$v" ] || { cat "$stats"; fail "no sample $1{$2}"; }
  echo "$v"
}
# usr1: have the daemon rewrite the file now; return once it has (its log
# line of the export's counters comes right after the rewrite).
usr1 ()
{
  local n i
  n=$(grep -c "info: export 'vol1':" "$tmp/mem.log" || true)
  kill -USR1 "$pid_mem"
  for i in $(seq 100); do
    [ "$(grep -c "info: export 'vol1':" "$tmp/mem.log" || true)" -gt "$n" ] && return 0
    sleep 0.1
  done
  fail "SIGUSR1 logged no counters"
}

fuse_mountpoint
stats=$tmp/sgblk.prom
# An hour between rewrites: only SIGUSR1 rewrites it during the test.
start_sgblkd mem --size 64M -e vol1 --fuse "$mnt" --stats-file "$stats" --stats-interval 3600
uri="nbd+unix:///vol1?socket=$sock"

# Written before the daemon serves: nothing counted yet.
[ -f "$stats" ] || fail "no stats file at start-up"
metrics
[ "$(value sgblk_requests_total export=vol1,op=write)" -eq 0 ] || fail "writes before any client"
[ "$(value sgblk_export_size_bytes export=vol1)" -eq $((64 << 20)) ] || fail "export size"

random_file "$tmp/in" 8
nbdcopy "$tmp/in" "$uri"
nbdsh -c "$nbd_expect" -c '
import errno, os, signal, time
h.set_export_name("vol1")
h.connect_unix("'"$sock"'")
h.set_strict_mode(0)          # let the server, not libnbd, judge
size = h.get_size()
h.pread(4096, 0)
expect(errno.ENOSPC, h.pwrite, b"x" * 4096, size)
expect(errno.EINVAL, h.pread, 4096, size)
# Connected now: the export has one connection open.
os.kill('"$pid_mem"', signal.SIGUSR1)
want = "sgblk_connections_open{export=\"vol1\"} 1\n"
for i in range(100):
    if want in open("'"$stats"'").read():
        break
    time.sleep(0.1)
else:
    raise AssertionError("connection not counted as open")
'
# The FUSE file: 1 MiB written and synced, one write past the end.
dd if="$tmp/in" of="$mnt/vol1" bs=64k count=16 conv=notrunc,fsync status=none
! dd if="$tmp/in" of="$mnt/vol1" bs=4k count=1 seek=$((16 << 10)) conv=notrunc status=none 2>"$tmp/dd.err" ||
  fail "a FUSE write past the end succeeded"

# A client that gives up in the handshake: the server's, no export's.
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(18); s.close()' "$sock"

# (Its session sees the close a moment later.)
for i in $(seq 50); do
  usr1
  metrics
  [ "$(value sgblk_nbd_handshake_failures_total -)" -eq 0 ] || break
  sleep 0.1
done
cat "$tmp/metrics"
written=$(value sgblk_written_bytes_total export=vol1)
[ "$written" -ge $(( (8 << 20) + (1 << 20) )) ] ||
  fail "written bytes $written, less than the 9 MiB nbdcopy and dd wrote"
[ "$(value sgblk_read_bytes_total export=vol1)" -ge 4096 ] || fail "the read is not counted"
[ "$(value sgblk_errors_total export=vol1,kind=nospc)" -eq 2 ] ||
  fail "want 2 nospc errors (a write past the end over NBD and over FUSE)"
[ "$(value sgblk_errors_total export=vol1,kind=inval)" -eq 1 ] ||
  fail "want 1 inval error (the read past the end)"
[ "$(value sgblk_errors_total export=vol1,kind=io)" -eq 0 ] || fail "io errors counted"
[ "$(value sgblk_requests_total export=vol1,op=read)" -ge 1 ] || fail "no read requests"
[ "$(value sgblk_requests_total export=vol1,op=write)" -ge 18 ] ||
  fail "fewer write requests than the 16 of dd, nbdcopy's and the refused ones"
[ "$(value sgblk_requests_total export=vol1,op=flush)" -ge 1 ] || fail "dd's fsync not counted"
[ "$(value sgblk_connections_total export=vol1)" -ge 2 ] ||
  fail "want at least 2 connections (nbdcopy, nbdsh)"
[ "$(value sgblk_nbd_accepted_connections_total -)" -ge 3 ] || fail "accepted connections"
[ "$(value sgblk_nbd_handshake_failures_total -)" -eq 1 ] || fail "the failed handshake is not counted"
[ "$(value sgblk_cache_orig_data_size_bytes export=vol1)" -gt 0 ] || fail "cache holds nothing"
[ "$(value sgblk_cmd_pool_reserve_size export=vol1)" -gt 0 ] || fail "no command reserve"

# The same figures in the log.
grep -q "info: export 'vol1': read [0-9]* B written $written B" "$tmp/mem.log" ||
  fail "SIGUSR1's log line does not say the same bytes written"

stop_sgblkd mem
! [ -e "$stats" ] || fail "the stats file outlived the daemon"
! [ -e "$stats.tmp" ] || fail "a temporary file was left behind"

# With --spill: its families, which an export without one has not.
! grep -q sgblk_cache_spill "$tmp/metrics" || fail "spill figures without a spill file"
stats=$tmp/spill.prom
start_sgblkd spill --size 64M --mem-limit 40M --spill "$tmp/spill" --stats-file "$stats"
metrics
# (The default export's name is empty, and so is its label.)
[ "$(value sgblk_cache_spill_pages export=)" -eq 0 ] || fail "no spill figures"
[ "$(value sgblk_cache_spill_errors_total export=)" -eq 0 ] || fail "no spill errors"
[ "$(value sgblk_cache_mem_limit_bytes export=)" -eq $((40 << 20)) ] || fail "memory limit"
stop_sgblkd spill
