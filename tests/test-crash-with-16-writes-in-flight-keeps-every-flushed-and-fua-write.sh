#!/usr/bin/env bash
# Crash consistency under concurrency.  A client keeps 16 writes in
# flight in a 1 MiB hot region of a file-backed disk (512 B to 64 KiB,
# 512-aligned, so writes in flight share cache blocks; 30% with FUA; a
# FLUSH after every 20 writes); sgblkd is killed with SIGKILL at a random
# moment and restarted on the same file.  Every sector of the region,
# read from the file and over NBD, must hold every write that was
# acknowledged before a FLUSH that completed, and every acknowledged FUA
# write, or a write that may legitimately have landed after it -- never
# an older write, zeroes or a torn sector.  Each sector carries a header
# naming its write, so the check is exact; tests/crash_client.py has the
# writer, the checker and the rule.
#
# Rounds with the default cache (write-back, 4K blocks), with
# --cache-block 64K and with --cache-mode writethrough.
# Environment:
#   SGBLK_CRASH_ROUNDS   rounds per configuration (5; make check-stress: 100)
. "${top_srcdir:-.}/tests/functions.sh"
requires python3
python3 -c 'import nbd' 2>/dev/null || skip "python3 has no nbd module (python3-libnbd)"

rounds=${SGBLK_CRASH_ROUNDS:-5}
case "$rounds" in ''|*[!0-9]*) fail "SGBLK_CRASH_ROUNDS must be a whole number" ;; esac
crash_client () { python3 "${top_srcdir:-.}/tests/crash_client.py" "$@"; }
disk=$tmp/disk.img
disk_size=$((8 << 20))            # the hot region is its third MiB
min_acked=200                     # acknowledged writes before the kill may come
# More workers than this machine may have CPUs, so that many of the 16
# writes in flight execute at once, whatever the machine.
threads=(--threads 8)

configs=(
  "writeback, 4K blocks|"
  "writeback, 64K blocks|--cache-block 64K"
  "writethrough|--cache-mode writethrough"
)
failed=0
start=$SECONDS
for config in "${configs[@]}"; do
  name=${config%%|*}
  read -r -a opts <<<"${config#*|}"
  for round in $(seq "$rounds"); do
    rm -f "$disk"
    : >"$tmp/trace"
    start_sgblkd crash --create --size "$disk_size" "${threads[@]}" "${opts[@]}" "$disk"
    seed=$RANDOM$RANDOM
    crash_client write "$uri" "$tmp/trace" "$seed" >"$tmp/writer.out" 2>&1 &
    writer=$!
    # Once the writer is under way, kill the daemon 0 to 1.5 s later.
    for i in $(seq 300); do
      [ "$(grep -c '^A ' "$tmp/trace" || true)" -ge "$min_acked" ] && break
      kill -0 "$writer" 2>/dev/null || break
      sleep 0.05
    done
    [ "$(grep -c '^A ' "$tmp/trace" || true)" -ge "$min_acked" ] ||
      { cat "$tmp/writer.out" >&2; fail "$name, round $round: fewer than $min_acked writes acknowledged in 15 s"; }
    ms=$((RANDOM % 1500))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    kill -KILL "$pid_crash"
    wait "$pid_crash" 2>/dev/null || true
    wait "$writer" || { cat "$tmp/writer.out" >&2; fail "$name, round $round: the writer failed"; }

    start_sgblkd check "${threads[@]}" "${opts[@]}" "$disk"
    status=0
    crash_client check "$tmp/trace" "$disk" "$uri" --disk-size "$disk_size" >"$tmp/check.out" 2>&1 || status=$?
    stop_sgblkd check
    # Both daemons of the round have been waited for: forget their PIDs,
    # so that the exit trap never signals a PID reused since.
    _daemons=()
    grep -q '^TALLY ' "$tmp/check.out" || { cat "$tmp/check.out" >&2; fail "$name, round $round: the checker failed"; }
    echo "$name|$(sed -n 's/^TALLY //p' "$tmp/check.out")" >>"$tmp/tally"
    echo "$name, round $round: $(sed -n 's/^TALLY //p' "$tmp/check.out")"
    if [ "$status" -ne 0 ]; then
      failed=1
      echo "$name, round $round (seed $seed): $(tail -n 1 "$tmp/writer.out")"
      grep -v '^TALLY ' "$tmp/check.out"
    fi
  done
done

# The tally, per configuration and in all.  Every sector is checked as
# read from the file and as served over NBD.
awk -F'|' '
  { n = split($2, kv, " ")
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); t[$1, p[1]] += p[2]; t["all", p[1]] += p[2] }
    t[$1, "rounds"]++; t["all", "rounds"]++
    if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
  function show(c) {
    printf "%s: %d rounds, %d writes submitted, %d acknowledged (%d FUA), %d flushes completed, " \
           "%d durable writes checked; %d sectors checked, %d must hold a durable write " \
           "(%d hold a newer one); %d sectors lost, %d durable writes lost, %d sectors bad\n",
      c, t[c, "rounds"], t[c, "submitted"], t[c, "acked"], t[c, "fua_acked"],
      t[c, "flushes_completed"], t[c, "durable"], t[c, "sectors"], t[c, "must_sectors"],
      t[c, "newer_than_durable"], t[c, "lost_sectors"], t[c, "lost_writes"], t[c, "bad"] }
  END { for (j = 1; j <= k; j++) show(order[j]); show("all") }
' "$tmp/tally"
echo "$((SECONDS - start)) s"
[ "$failed" -eq 0 ] || fail "acknowledged durable writes were lost or sectors were wrong after a crash (see above)"
