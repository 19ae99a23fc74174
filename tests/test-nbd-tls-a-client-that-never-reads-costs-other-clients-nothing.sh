#!/usr/bin/env bash
# Under TLS, a client that pipelines 32 reads of 2 MiB and never reads a
# reply stalls only itself: replies that do not fit its socket wait for
# its own sender, never in the one shared worker.  Meanwhile
# another TLS client copies 32 MiB in and out intact in 2 MiB requests
# (which the workers run), and SIGTERM, with the stalled client
# still connected, ends the daemon within 10 s with exit 0.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires python3 nbdcopy nbdinfo

make_pki
start_sgblkd stall --size 128M --tls=require --tls-certificates "$tmp/server" -t 1
PYTHONPATH="$top_srcdir/tests" python3 - "$sock" "$tmp/anon/ca-cert.pem" >"$tmp/stalled.out" 2>&1 <<'PY' &
import socket, ssl, struct, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
from nbd_raw import recv_exact as rx
rx(s, 18)
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 5, 0))         # STARTTLS
assert struct.unpack(">QIII", rx(s, 20))[2] == 1
ctx = ssl.create_default_context(cafile=sys.argv[2])
t = ctx.wrap_socket(s, server_hostname="localhost")
t.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))         # EXPORT_NAME ""
rx(t, 10)
for i in range(32):        # 2 MiB: more than the session runs itself
    t.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, i << 21, 2 << 20))
print("stalled with 32 reads in flight", flush=True)
time.sleep(120)
PY
stalled=$!
cleanup_fn "kill $stalled 2>/dev/null"
for i in $(seq 100); do grep -q "stalled with" "$tmp/stalled.out" && break; sleep 0.1; done
grep -q "stalled with" "$tmp/stalled.out" || { cat "$tmp/stalled.out"; fail "the stalling TLS client did not get going"; }

uri="nbds+unix:///?socket=$sock&tls-certificates=$tmp/anon"
random_file "$tmp/in" 32
start=$SECONDS
timeout 60 nbdcopy --request-size=2097152 "$tmp/in" "$uri" || fail "the good client could not write beside the stalled one"
timeout 60 nbdcopy --request-size=2097152 "$uri" "$tmp/out" || fail "the good client could not read beside the stalled one"
cmp "$tmp/in" <(head -c 32M "$tmp/out") || fail "the good client's data differs"
echo "the good client copied 32 MiB in and out in $((SECONDS - start)) s"
# A worker stuck sending to the stalled client would hold the good one up
# for the 30 s send timeout.
[ $((SECONDS - start)) -lt 20 ] || fail "the good client waited for the stalled one"
kill -0 "$stalled" || fail "the stalled client was disconnected (it should only be stalled)"

pid=$pid_stall
kill -TERM "$pid"
wait_for_exit "$pid" 10 || fail "sgblkd still runs 10 s after SIGTERM with a stalled TLS client"
status=0; wait "$pid" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/stall.log"; fail "sgblkd exited $status"; }
