#!/usr/bin/env bash
# A client's reply goes to that client or nowhere, even when the client
# has gone and its descriptor number is taken by another.  Client F
# pipelines 1 MiB reads and never reads a reply; client X, with its own
# data on the disk, queues a 1 MiB read of it and sends NBD_CMD_DISC
# without waiting; more than the 5 s a cleanup waits later, client Y
# connects (on the descriptor number X had, the lowest free one) and reads
# 4 KiB of its own; then F goes, so that whatever was held up runs.  Y
# must receive its own reply and not a byte more: never X's cookie, never
# X's data.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3

# Two workers, so that F's two stuck replies hold every one of them.
start_sgblkd mem --size 64M -t 2 -v

PYTHONPATH="$top_srcdir/tests" python3 -c '
import socket, sys, time
import nbd_raw, nbd_stall
sock = "'"$sock"'"
MiB = 1 << 20
X_DATA = (b"client X data, for client X only. " * 32768)[:MiB]
X_WRITE, X_READ, X_DISC = 0x5801, 0x5802, 0x5803
Y_READ = 0x5901

# X writes its data while nothing is held up.
x = nbd_stall.open_client(sock)
nbd_raw.request(x, nbd_raw.CMD_WRITE, 0, MiB, cookie=X_WRITE)
x.sendall(X_DATA)
x.settimeout(10)
assert nbd_stall.read_simple_reply(x) == (0, X_WRITE), "X: the write failed"

# F ties up the workers.
f = nbd_stall.never_reads(sock, count=16, length=MiB, offset=32 * MiB)
time.sleep(0.5)

# X asks for its data and leaves at once.
nbd_raw.request(x, nbd_raw.CMD_READ, 0, MiB, cookie=X_READ)
nbd_raw.request(x, nbd_raw.CMD_DISC, 0, 0, cookie=X_DISC)
x.close()
time.sleep(6.5)                         # past the cleanup'"'"'s 5 s

# Y comes, asks for 4 KiB of its own region (never written: zeroes).
y = nbd_stall.open_client(sock)
nbd_raw.request(y, nbd_raw.CMD_READ, 8 * MiB, 4096, cookie=Y_READ)
f.close()                               # whatever F held up runs now

y.settimeout(3)
got_own = False
while True:
    try:
        err, cookie = nbd_stall.read_simple_reply(y)
    except (socket.timeout, EOFError):
        break
    if cookie == Y_READ and not got_own:
        got_own = True
        assert err == 0, "Y: its read failed with error %d" % err
        assert nbd_raw.recv_exact(y, 4096) == bytes(4096), "Y: wrong data in its own reply"
        continue
    what = "the reply to X'"'"'s 1 MiB read" if cookie == X_READ else "a reply"
    extra = ""
    if cookie == X_READ and err == 0:
        y.settimeout(10)
        data = nbd_raw.recv_exact(y, MiB)
        same = next((i for i in range(MiB) if data[i] != X_DATA[i]), MiB)
        if same == MiB:
            extra = ", carrying all of X'"'"'s 1 MiB of data"
        elif same > 0:
            extra = ", carrying the first %d bytes of X'"'"'s data" % same
    print("FAIL: Y received %s (cookie 0x%x, error %d) that it never asked for%s"
          % (what, cookie, err, extra))
    sys.exit(1)
assert got_own, "Y: no reply to its read within 3 s"
print("Y received its own reply and nothing else")
' || fail "a reply reached a client that did not ask for it"

stop_sgblkd mem
