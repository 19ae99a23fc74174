#!/usr/bin/env bash
# 1,000 connections, each dropped at one stage of the handshake or of
# transmission: before the greeting is read, in the middle of the client
# flags, of an option header, of an option's payload, after NBD_OPT_GO,
# in the middle of a request header, of a write payload, with a read or
# a write in flight, and after NBD_CMD_DISC.  Afterwards no connection is
# left open, every command and vector is back, the daemon's memory is
# what it was, and a client connected all along has its data.
# make check-stress drops SGBLK_STRESS_DROPS connections instead.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh python3

drops=${SGBLK_STRESS_DROPS:-1000}
start_sgblkd mem --size 64M --threads 2

PYTHONPATH="$top_srcdir/tests" nbdsh -u "$uri" -c '
import os, socket, struct, time, nbd_raw
sock, pid, drops = "'"$sock"'", '"$pid_mem"', '"$drops"'
OPT_GO = 7

def rss():
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def greeted():
    s = nbd_raw.connect(sock)
    nbd_raw.recv_exact(s, 18)
    return s

def go(s):
    s.sendall(struct.pack(">I", 3))
    s.sendall(struct.pack(">QII", nbd_raw.IHAVEOPT, OPT_GO, 6) + struct.pack(">IH", 0, 0))
    while True:                       # NBD_REP_INFO..., then NBD_REP_ACK
        _, _, typ, n = struct.unpack(">QIII", nbd_raw.recv_exact(s, 20))
        nbd_raw.recv_exact(s, n)
        if typ == 1:
            return s

def req(cmd, off, n, cookie=7):
    return struct.pack(">IHHQQI", nbd_raw.REQUEST_MAGIC, 0, cmd, cookie, off, n)

stages = {
    "connected, greeting not read": lambda: nbd_raw.connect(sock),
    "in the client flags":  lambda: (lambda s: (s.sendall(b"\0\0"), s)[1])(greeted()),
    "in an option header":  lambda: (lambda s: (s.sendall(struct.pack(">IQ", 3, nbd_raw.IHAVEOPT)), s)[1])(greeted()),
    "in an option payload": lambda: (lambda s: (s.sendall(struct.pack(">IQII", 3, nbd_raw.IHAVEOPT, OPT_GO, 100) + b"x" * 10), s)[1])(greeted()),
    "after NBD_OPT_GO":     lambda: go(greeted()),
    "in a request header":  lambda: (lambda s: (s.sendall(req(0, 0, 4096)[:13]), s)[1])(go(greeted())),
    "in a write payload":   lambda: (lambda s: (s.sendall(req(1, 1 << 20, 1 << 20) + os.urandom(5000)), s)[1])(go(greeted())),
    "a read in flight":     lambda: (lambda s: (s.sendall(req(0, 0, 2 << 20)), s)[1])(go(greeted())),
    "writes in flight":     lambda: (lambda s: (s.sendall((req(1, 4 << 20, 65536) + bytes(65536)) * 8), s)[1])(go(greeted())),
    "after NBD_CMD_DISC":   lambda: (lambda s: (s.sendall(req(2, 0, 0)), s)[1])(go(greeted())),
}

data = os.urandom(4 << 20)
h.pwrite(data, 8 << 20)
rss0 = rss()
names = list(stages)
counts = dict.fromkeys(names, 0)
for i in range(drops):
    name = names[i % len(names)]
    s = stages[name]()
    if i % 3 == 0:                     # a reset instead of a close
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    counts[name] += 1
print(counts)
assert h.pread(len(data), 8 << 20) == data
time.sleep(1)
print("RSS %d kB before, %d kB after %d dropped connections" % (rss0, rss(), drops))
assert rss() < rss0 + 16 * 1024, "dropped connections kept memory"
'
kill -USR1 "$pid_mem"
for i in $(seq 50); do grep -q "nbd: connections open" "$tmp/mem.log" && break; sleep 0.1; done
line=$(grep "nbd: connections open" "$tmp/mem.log" | tail -n 1)
echo "$line"
echo "$line" | grep -q "connections open 0 total $((drops + 1)) " || fail "connections left open, or not all counted"
echo "$line" | grep -q "stuck cleanups 0" || fail "a cleanup got stuck"
grep "cmd pool:" "$tmp/mem.log" | tail -n 1 | grep -q " in use 0 " || fail "commands not returned"
grep "sgv pool:" "$tmp/mem.log" | tail -n 1 | grep -q " in use 0 " || fail "vectors not returned"
! grep -q "not returned" "$tmp/mem.log" || fail "a cleanup found commands or vectors missing"
stop_sgblkd mem
