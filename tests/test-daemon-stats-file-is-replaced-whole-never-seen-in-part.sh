#!/usr/bin/env bash
# The stats file is replaced whole: a reader reading it in a loop while
# the daemon rewrites it hundreds of times (SIGUSR1 as fast as it comes,
# with a client writing) always finds a complete file that parses, and
# sees it replaced many times.  No temporary file is left behind, and
# the file goes when the daemon stops.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh
python3 -c 'import prometheus_client' 2>/dev/null ||
  skip "python3 has no prometheus_client (python3-prometheus-client)"

stats=$tmp/sgblk.prom
start_sgblkd mem --size 16M --stats-file "$stats" --stats-interval 1

# The client keeps the figures changing while the file is rewritten.
nbdsh -u "$uri" -c '
import time
end = time.time() + 4
while time.time() < end:
    h.pwrite(b"\x02" * 4096, 0)
' &
client=$!
# The reader asks for a rewrite (SIGUSR1) before each read, so that the
# daemon is writing the file while it is read.
python3 - "$stats" "$pid_mem" <<'PY'
import os, signal, sys, time
from prometheus_client.parser import text_string_to_metric_families
path = sys.argv[1]
last = "sgblk_nbd_stuck_cleanups_total"   # the file's last family
versions, reads = set(), 0
end = time.time() + 3
while time.time() < end:
    os.kill(int(sys.argv[2]), signal.SIGUSR1)
    with open(path) as f:
        text = f.read()
    versions.add(text)
    reads += 1
    assert text.endswith("\n") and ("\n%s " % last) in text, \
        "a partial file (%d bytes): ...%r" % (len(text), text[-80:])
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert "sgblk_written_bytes" in names, "no bytes written in a read of the file"
# (The client's writes change the figures from one rewrite to the next.)
print("%d reads, %d versions of the file" % (reads, len(versions)))
assert len(versions) >= 100, "the file was replaced only %d times" % len(versions)
PY
wait "$client"

[ -f "$stats" ] || fail "the stats file is gone while serving"
! [ -e "$stats.tmp" ] || fail "a temporary file is left between rewrites"
stop_sgblkd mem
! [ -e "$stats" ] || fail "the stats file outlived the daemon"
! [ -e "$stats.tmp" ] || fail "a temporary file outlived the daemon"
