#!/usr/bin/env bash
# Under a 1,024 descriptor limit, one client opens 2,000 idle connections.
# Those within the connection limit (its default comes from the
# descriptor limit) are served; the rest get the greeting and a refusal
# that names the reason, and cost the daemon no descriptor for long.  A
# client connected before keeps reading and writing, and so do old idle
# connections; once some close, new ones are accepted again.  What an
# idle connection costs in memory is reported, and it is given back when
# the connections close.  Then a daemon allowed more connections than it
# has descriptors runs out of them: new clients are refused the same way,
# and served again once descriptors are free.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh python3 qemu-img

hard=$(ulimit -H -n)
[ "$hard" -ge 4096 ] || ulimit -H -n 4096 2>/dev/null || skip "cannot raise the descriptor limit to 4096"
ulimit -S -n 1024
start_sgblkd mem --size 64M
ulimit -S -n "$(ulimit -H -n)"
limit=$(sed -n 's/.*serving at most \([0-9]*\) NBD connections.*/\1/p' "$tmp/mem.log")
[ -n "$limit" ] || fail "the daemon did not say its connection limit"
echo "connection limit from a 1024 descriptor limit: $limit"
[ "$limit" -gt 500 ] && [ "$limit" -lt 1024 ] || fail "limit $limit does not fit 1024 descriptors"

PYTHONPATH="$top_srcdir/tests" nbdsh -c '
import os, resource, socket, struct, time, nbd_raw
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
sock, limit, pid = "'"$sock"'", '"$limit"', '"$pid_mem"'
OPT_LIST, REP_ERR_POLICY = 3, 0x80000002

def rss():
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def refused_cleanly(s):
    """The greeting, then an error for NBD_OPT_LIST that says why."""
    magic, ihaveopt, _ = struct.unpack(">QQH", nbd_raw.recv_exact(s, 18))
    assert magic == nbd_raw.NBDMAGIC and ihaveopt == nbd_raw.IHAVEOPT
    s.sendall(struct.pack(">IQII", 3, nbd_raw.IHAVEOPT, OPT_LIST, 0))
    _, opt, typ, n = struct.unpack(">QIII", nbd_raw.recv_exact(s, 20))
    msg = nbd_raw.recv_exact(s, n).decode()
    assert opt == OPT_LIST and typ == REP_ERR_POLICY, (opt, hex(typ))
    assert "too many connections" in msg, msg
    return msg

good = nbd.NBD()
good.connect_unix(sock)
data = os.urandom(1 << 20)
good.pwrite(data, 0)
rss0 = rss()

served, refused = [], 0
for i in range(2000):
    s = nbd_raw.connect(sock)
    if len(served) < limit - 1:
        nbd_raw.handshake(s)
        served.append(s)
    else:
        msg = refused_cleanly(s)
        s.close()
        refused += 1
print("served %d idle connections, refused %d (\"%s\")" % (len(served), refused, msg))
assert len(served) == limit - 1 and refused == 2000 - len(served)
rss1 = rss()
print("RSS %d kB before, %d kB with %d idle connections: %.1f kB each"
      % (rss0, rss1, len(served), (rss1 - rss0) / len(served)))

# The client from before, and old idle connections, keep working.
assert good.pread(len(data), 0) == data
for k, s in enumerate(served[::97]):
    nbd_raw.request(s, nbd_raw.CMD_READ, 4096 * k, 4096, cookie=k)
    magic, err, cookie = struct.unpack(">IIQ", nbd_raw.recv_exact(s, 16))
    assert err == 0 and cookie == k
    assert nbd_raw.recv_exact(s, 4096) == data[4096 * k:4096 * (k + 1)]

# Some close: as many new clients are served again.
for s in served[:100]:
    s.close()
served = served[100:]
time.sleep(0.5)
fresh = []
for i in range(100):
    h2 = nbd.NBD()
    h2.connect_unix(sock)
    fresh.append(h2)
assert fresh[-1].pread(4096, 0) == data[:4096]

for s in served:
    s.close()
for h2 in fresh:
    h2.shutdown()
del fresh
time.sleep(1)
rss2 = rss()
print("RSS after they all closed: %d kB" % rss2)
assert rss2 < rss0 + 16 * 1024, "memory of closed connections was not given back"
assert good.pread(len(data), 0) == data
'
# A real client is told why.
ulimit -S -n 1024
start_sgblkd tiny --size 16M --max-connections 1
ulimit -S -n "$(ulimit -H -n)"
nbdsh -u "$uri" -c 'import time; time.sleep(3)' &
holder=$!
sleep 1
out=$(qemu-img info "$uri" 2>&1) && fail "qemu-img was served over the limit"
echo "$out"
echo "$out" | grep -q "too many connections" || fail "qemu-img was not told why"
wait $holder

n=$(grep -c "refusing new connections" "$tmp/mem.log")
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || fail "$n refusal lines: not rate limited"

# Out of descriptors: more connections allowed than descriptors.
ulimit -S -n 64
start_sgblkd fds --size 16M --max-connections 1000
ulimit -S -n "$(ulimit -H -n)"
PYTHONPATH="$top_srcdir/tests" nbdsh -c '
import resource, struct, time, nbd_raw
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
sock = "'"$sock"'"
held, cut = [], 0
for i in range(200):
    s = nbd_raw.connect(sock)
    try:
        nbd_raw.handshake(s)
        held.append(s)
    except (EOFError, ConnectionResetError, BrokenPipeError):
        cut += 1
        s.close()
print("out of descriptors: %d connections served, %d refused" % (len(held), cut))
assert cut > 0 and len(held) > 10
for s in held:
    s.close()
time.sleep(0.5)
h.connect_unix(sock)
assert len(h.pread(4096, 0)) == 4096
'
grep -q "out of file descriptors" "$tmp/fds.log" || fail "running out of descriptors was not logged"
n=$(grep -c "refusing new connections\|accept:" "$tmp/fds.log")
[ "$n" -le 3 ] || fail "$n lines about running out of descriptors: not rate limited"
stop_sgblkd fds
stop_sgblkd tiny
stop_sgblkd mem
