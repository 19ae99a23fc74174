#!/usr/bin/env bash
# The cluster's only OSD stops answering (SIGSTOP) under a daemon that
# serves an RBD image with --store-timeout 5 and has unflushed data in
# its cache.  SIGTERM: the daemon exits within a few timeouts, status 1,
# saying that the final flush failed and that the image's close was
# left; it does not wait for the OSD.  (The unflushed write is lost, as
# the log says: the client was never told it was durable.)  A daemon started on the image
# meanwhile exits 1 within twice the timeout, with one line that says
# the cluster did not answer.  After SIGCONT, qemu's rbd: driver finds
# the data flushed before the outage, and a new daemon serves the image
# (the dead client's lock is broken).
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires nbdcopy nbdsh qemu-img timeout

ceph_start
rbd create --size 64M rbd/img
img="rbd:rbd/img:conf=$CEPH_CONF"
random_file "$tmp/data" 4
start_sgblkd rbd --store-timeout 5 "$img"
nbdcopy "$tmp/data" "$uri"
nbdsh -u "$uri" -c 'h.flush()'
# Dirty data in the cache: written by a client that stays connected (a
# disconnect would flush it).
nbdsh -u "$uri" -c 'h.pwrite(b"\x5a" * 65536, 8 << 20)' -c 'print("written", flush=True)' \
  -c 'import time; time.sleep(120)' >"$tmp/client.out" 2>&1 &
client=$!
cleanup_fn "kill $client 2>/dev/null"
for i in $(seq 100); do grep -q written "$tmp/client.out" && break; sleep 0.1; done
grep -q written "$tmp/client.out" || fail "the client's write was not answered"

kill -STOP "$ceph_osd_pid"
cleanup_fn "kill -CONT $ceph_osd_pid 2>/dev/null"
t0=$(date +%s)
kill -TERM "$pid_rbd"
wait_for_exit "$pid_rbd" 90 || {
  show_sgblkd rbd
  fail "the daemon was still running 90 s after SIGTERM with the OSD stopped"; }
took=$(( $(date +%s) - t0 ))
status=0
wait "$pid_rbd" || status=$?
cat "$tmp/rbd.log"
[ "$status" -eq 1 ] || fail "the daemon exited $status, want 1: its final flush could not reach the cluster"
grep -q "final flush failed" "$tmp/rbd.log" || fail "the failed final flush was not logged"
grep -q "did not answer the image's close within 5 s" "$tmp/rbd.log" ||
  fail "the abandoned close was not logged"
echo "SIGTERM with the OSD stopped: exit 1 after $took s"

# A start with the OSD stopped fails, bounded, in one line.
t0=$(date +%s)
status=0
timeout 60 "$SGBLKD" -f -U "$tmp/second.sock" --store-timeout 5 "$img" >"$tmp/second.out" 2>&1 || status=$?
took=$(( $(date +%s) - t0 ))
cat "$tmp/second.out"
[ "$status" -eq 1 ] || fail "a start with the OSD stopped exited $status, want 1"
[ "$(wc -l <"$tmp/second.out")" -eq 1 ] && grep -q "no answer from the cluster within 10 s" "$tmp/second.out" ||
  fail "a start with the OSD stopped did not say, in one line, that the cluster did not answer"
[ "$took" -lt 30 ] || fail "a start with the OSD stopped took $took s to fail"

kill -CONT "$ceph_osd_pid"
qemu-img convert -f raw -O raw "$img" "$tmp/image.raw"
cmp -n $((4 << 20)) "$tmp/data" "$tmp/image.raw" || fail "data flushed before the outage was lost"
start_sgblkd again --store-timeout 30 "$img"
nbdcopy "$uri" - | head -c 4M | cmp - "$tmp/data" || fail "a new daemon after the outage reads other data"
stop_sgblkd again
echo "bounded exit and start while the OSD was stopped; flushed data kept"
