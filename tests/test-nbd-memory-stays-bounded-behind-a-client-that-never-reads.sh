#!/usr/bin/env bash
# A client that never reads its replies is connected, and three others
# pipeline 8 MiB writes without reading theirs: the daemon's resident
# memory stays below 512 MiB however much they send, and once the three
# have gone (the one that never reads still there) it comes back down to
# about where it started.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3
[ -r /proc/self/status ] || skip "no /proc/PID/status"

start_sgblkd file --create --size 256M "$tmp/disk.img"

PYTHONPATH="$top_srcdir/tests" python3 -c '
import sys, time
import nbd_stall
sock, pid = "'"$sock"'", '"$pid_file"'
MiB = 1 << 20
BOUND = 512                 # MiB of RSS, whatever the clients send
WRITES = 96                 # 768 MiB a client
PUSH = 20.0                 # seconds the writers may take to send them
SETTLE = 10.0               # seconds for the memory to come back

def rss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")

failures = []
start = rss()
f = nbd_stall.never_reads(sock)
time.sleep(0.5)

writers = [nbd_stall.Writer(sock, 8 * MiB, 256 * MiB, WRITES) for _ in range(3)]
for w in writers:
    w.start()
t0 = time.monotonic()
peak, last_sent, last_progress = start, 0, t0
while time.monotonic() - t0 < PUSH and any(w.is_alive() for w in writers):
    time.sleep(0.05)
    peak = max(peak, rss())
    if peak > BOUND:
        break
    sent = sum(w.sent for w in writers)
    if sent != last_sent:
        last_sent, last_progress = sent, time.monotonic()
    elif time.monotonic() - last_progress > 2:
        break                           # the daemon takes no more for now
for _ in range(10):                     # what it has taken, it has read by now
    time.sleep(0.05)
    peak = max(peak, rss())
pushed = [w.sent // MiB for w in writers]
pushed_for = time.monotonic() - t0
for w in writers:
    w.stop()
print("RSS at the start %d MiB; peak %d MiB while 3 clients sent %s MiB of 8 MiB writes in %.1f s"
      % (start, peak, "+".join(map(str, pushed)), pushed_for))
if peak > BOUND:
    failures.append("the daemon reached %d MiB of RSS (more than %d MiB) while 3 clients "
                    "pipelined 8 MiB writes behind a client that never reads"
                    % (peak, BOUND))

# The writers have gone; the client that never reads is still there.
limit = 2 * start + 64
t0 = time.monotonic()
while rss() > limit and time.monotonic() - t0 < SETTLE:
    time.sleep(0.25)
now = rss()
print("RSS %.1f s after the writers left: %d MiB" % (time.monotonic() - t0, now))
if now > limit:
    failures.append("the daemon still held %d MiB of RSS (more than %d MiB) %.0f s after "
                    "the writers left" % (now, limit, SETTLE))
f.close()
for msg in failures:
    print("FAIL:", msg)
sys.exit(1 if failures else 0)
' || fail "memory was not bounded, or not given back"

stop_sgblkd file
