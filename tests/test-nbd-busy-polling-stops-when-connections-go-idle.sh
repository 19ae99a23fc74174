#!/usr/bin/env bash
# Sessions poll a busy socket before they sleep (--busy-poll), but four
# connections that have just done a burst of pipelined I/O and then go
# quiet cost the daemon no CPU time: under 5% of one CPU over 3 s idle.
# The same burst against --busy-poll 0 reads back the same data.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3
python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

burst_then_idle ()     # NAME: a burst on 4 connections, then 3 s idle
{
  local name=$1 pid
  eval "pid=\$pid_$name"
  python3 - "$tmp/$name.sock" "$pid" <<'PY' || fail "$name: burst or idle check failed"
import nbd, os, sys, time
sock, pid = sys.argv[1], int(sys.argv[2])
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
hs = []
for i in range(4):
    h = nbd.NBD()
    h.connect_uri("nbd+unix:///?socket=" + sock)
    hs.append(h)
bs, n = 4096, 2048
for i, h in enumerate(hs):          # each connection its own quarter
    for k in range(n // 4):
        blk = i * (n // 4) + k
        h.aio_pwrite(bytes([blk % 251 + 1]) * bs, blk * bs)
for h in hs:
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.flush()
for blk in range(0, n, 97):
    got = hs[blk % 4].pread(bs, blk * bs)
    assert got == bytes([blk % 251 + 1]) * bs, "block %d read back wrong" % blk
time.sleep(0.5)                     # let every window close
c0 = cpu()
time.sleep(3)
used = cpu() - c0
print("daemon CPU while 4 connections were idle for 3 s: %.2f s" % used)
assert used < 0.15, "idle connections cost %.2f s of CPU in 3 s" % used
for h in hs:
    h.shutdown()
PY
}

start_sgblkd polling --size 16M
burst_then_idle polling
start_sgblkd nopoll --size 16M --busy-poll 0
burst_then_idle nopoll
stop_sgblkd polling
stop_sgblkd nopoll
