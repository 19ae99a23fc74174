#!/usr/bin/env bash
# Crash consistency on an RBD image behind the write-back cache: a client
# keeps 16 writes in flight in a 1 MiB hot region (30% FUA, a FLUSH every
# 20 writes), sgblkd is killed with SIGKILL at a random moment, and the
# image, read through qemu's own rbd: driver (not through sgblk), must
# hold every write acknowledged before a FLUSH that completed and every
# acknowledged FUA write (tests/crash_client.py has the writer, the rule
# and the checker).  A daemon restarted on the image (the dead one's
# exclusive lock is broken) must serve the same.  Rounds share one
# cluster.  SGBLK_RBD_CRASH_ROUNDS: rounds (3).
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires python3 qemu-img
python3 -c 'import nbd' 2>/dev/null || skip "python3 has no nbd module (python3-libnbd)"

rounds=${SGBLK_RBD_CRASH_ROUNDS:-3}
crash_client () { python3 "${top_srcdir:-.}/tests/crash_client.py" "$@"; }
disk_size=$((8 << 20))
min_acked=200

ceph_start
failed=0
for round in $(seq "$rounds"); do
  rbd rm rbd/crash >/dev/null 2>&1 || true
  rbd create --size 8M rbd/crash
  img="rbd:rbd/crash:conf=$CEPH_CONF"
  : >"$tmp/trace"
  rm -f "$tmp/crash.sock" "$tmp/check.sock"   # a killed daemon's socket is no sign of life
  start_sgblkd crash --threads 8 "$img"
  seed=$RANDOM$RANDOM
  crash_client write "$uri" "$tmp/trace" "$seed" >"$tmp/writer.out" 2>&1 &
  writer=$!
  for i in $(seq 600); do
    [ "$(grep -c '^A ' "$tmp/trace" || true)" -ge "$min_acked" ] && break
    kill -0 "$writer" 2>/dev/null || break
    sleep 0.05
  done
  [ "$(grep -c '^A ' "$tmp/trace" || true)" -ge "$min_acked" ] ||
    { cat "$tmp/writer.out" >&2; fail "round $round: fewer than $min_acked writes acknowledged in 30 s"; }
  ms=$((RANDOM % 1500))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -KILL "$pid_crash"
  wait "$pid_crash" 2>/dev/null || true
  wait "$writer" || { cat "$tmp/writer.out" >&2; fail "round $round: the writer failed"; }

  # What the cluster holds, read by qemu; then what a new daemon serves.
  qemu-img convert -f raw -O raw "$img" "$tmp/image.raw"
  start_sgblkd check "$img"
  status=0
  crash_client check "$tmp/trace" "$tmp/image.raw" "$uri" --disk-size "$disk_size" \
    >"$tmp/check.out" 2>&1 || status=$?
  stop_sgblkd check
  _daemons=()
  grep -q '^TALLY ' "$tmp/check.out" || { cat "$tmp/check.out" >&2; fail "round $round: the checker failed"; }
  echo "round $round: $(sed -n 's/^TALLY //p' "$tmp/check.out")"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "round $round (seed $seed): $(tail -n 1 "$tmp/writer.out")"
    grep -v '^TALLY ' "$tmp/check.out"
  fi
done
[ "$failed" -eq 0 ] || fail "acknowledged durable writes were lost or sectors were wrong after a crash (see above)"
