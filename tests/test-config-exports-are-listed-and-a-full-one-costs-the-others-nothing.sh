#!/usr/bin/env bash
# --config serves every [NAME] section as an export of its own: NBD_OPT_LIST
# names each with its description, each has its own store and cache, and
# one export filling its memory limit (ENOSPC) while another is written,
# read back and mounted over FUSE at the same time costs that one nothing.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo nbdcopy nbdsh
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || skip "python3-prometheus-client is not installed"
requires_fuse_and_loop
fuse_mountpoint

cat >"$tmp/sgblkd.conf" <<CONF
# Defaults every export takes unless its section says otherwise.
[sgblkd]
cache-block = 4K
stats-file = $tmp/sgblk.prom

[small]
size = 64M
mem-limit = 33M
description = a memory disk that fills up

[data]
file = $tmp/data.img
create = yes
size = 64M
description = the data disk
fuse = $mnt
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
for i in $(seq 100); do grep -q "serving the disk as" "$tmp/cfg.log" && break; sleep 0.1; done
sock=$tmp/cfg.sock

nbdinfo --list "nbd+unix:///?socket=$sock" >"$tmp/list"
grep -qx 'export="small":' "$tmp/list" || fail "'small' is not listed: $(cat "$tmp/list")"
grep -qx 'export="data":' "$tmp/list" || fail "'data' is not listed: $(cat "$tmp/list")"
grep -q 'description: a memory disk that fills up' "$tmp/list" || fail "no description of 'small'"
grep -q 'description: the data disk' "$tmp/list" || fail "no description of 'data'"
[ "$(nbdinfo --size "nbd+unix:///data?socket=$sock")" = 67108864 ] || fail "wrong size of 'data'"
nbdinfo "nbd+unix:///nothing?socket=$sock" 2>/dev/null && fail "an export that is not configured was served"

# At the same time: 'small' is filled past its limit, 'data' round-trips.
random_file "$tmp/fill" 64
random_file "$tmp/in" 48
( rc=0; nbdcopy "$tmp/fill" "nbd+unix:///small?socket=$sock" 2>"$tmp/fill.err" || rc=$?
  echo "$rc" >"$tmp/fill.rc" ) &
filler=$!
nbdcopy "$tmp/in" "nbd+unix:///data?socket=$sock"
nbdcopy "nbd+unix:///data?socket=$sock" "$tmp/out"
wait "$filler"
[ "$(cat "$tmp/fill.rc")" -ne 0 ] || fail "64M of random data fit in a 33M memory limit"
grep -q "No space left on device" "$tmp/fill.err" || fail "filling 'small' failed, but not with ENOSPC: $(cat "$tmp/fill.err")"
cmp -n $((48 << 20)) "$tmp/in" "$tmp/out" || fail "'data' did not round-trip while 'small' was full"
cmp -n $((48 << 20)) "$tmp/in" "$mnt/data" || fail "the FUSE file of 'data' differs from what NBD wrote"

# The full export says ENOSPC, and says it only to its own clients.
nbdsh -c 'import os' -c "$nbd_expect" -c '
h = nbd.NBD(); h.connect_uri("nbd+unix:///small?socket='"$sock"'")
expect(errno.ENOSPC, h.pwrite, os.urandom(8 << 20), 40 << 20)
d = nbd.NBD(); d.connect_uri("nbd+unix:///data?socket='"$sock"'")
d.pwrite(b"after..." * 512, 50 << 20); d.flush()
assert d.pread(4096, 50 << 20) == b"after..." * 512
' || fail "the full export's error was wrong, or it cost the other export"

# The metrics file has each export's figures under its own label.
kill -USR1 "$pid_cfg"
for i in $(seq 50); do grep -q 'export="data"' "$tmp/sgblk.prom" 2>/dev/null && break; sleep 0.1; done
/usr/bin/python3 - "$tmp/sgblk.prom" <<'PY' || fail "the metrics file does not tell the exports apart"
import sys
from prometheus_client.parser import text_string_to_metric_families
v = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        v[(s.name, tuple(sorted(s.labels.items())))] = s.value
def get(name, **labels): return v.get((name, tuple(sorted(labels.items()))), 0)
assert get("sgblk_errors_total", export="small", kind="nospc") >= 1, "no ENOSPC counted for small"
assert get("sgblk_errors_total", export="data", kind="nospc") == 0, "ENOSPC counted for data"
assert get("sgblk_written_bytes_total", export="data") >= 48 << 20, "data's writes not counted"
assert get("sgblk_export_size_bytes", export="small") == 64 << 20
PY

stop_sgblkd cfg
cmp -n $((48 << 20)) "$tmp/in" "$tmp/data.img" || fail "'data' was not flushed to its file at exit"
grep -q "export 'small': cache in-memory" "$tmp/cfg.log" || fail "no statistics for 'small' at exit"
grep -q "export 'data': cache writeback" "$tmp/cfg.log" || fail "no statistics for 'data' at exit"
