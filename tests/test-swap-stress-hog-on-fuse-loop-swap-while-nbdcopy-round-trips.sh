#!/usr/bin/env bash
# Swap stress on the host.  One sgblkd in --swap mode serves its disk as
# the FUSE file and over NBD at once, with every third normal command
# allocation failing so that its command reserve carries part of the I/O.
# The first part of the disk is swap, through a loop device over the FUSE
# file; a memory hog held by a memory cgroup to a quarter of what it
# touches writes and verifies every word of its memory, pass after pass,
# while the kernel swaps it out onto sgblk and back in.  Meanwhile nbdcopy
# copies data into the rest of the disk over the Unix socket and back out,
# round after round, comparing checksums.  The daemon runs outside the
# cgroup.  At the end: no bad word, every checksum matched, real swap
# traffic on the device, reserve fallbacks, and a clean SIGTERM.  The
# disk costs what it holds: its memory grows with the data swapped and
# copied onto it (the cache's "memory used", its reserve included), and
# what the daemon holds beyond that, sampled every second, never grows
# past what swap mode set up at start.
#
# make check runs it for about 30 s; make check-stress for minutes.
# Environment:
#   SGBLK_STRESS_SECONDS    how long the hog and the copies run (30)
#   SGBLK_STRESS_HOG_MIB    the hog's working set; its cgroup gets a quarter (256)
#   SGBLK_STRESS_COPY_MIB   the data each nbdcopy round writes and reads back (64)
#   SGBLK_STRESS_SPILL      1: --mem-limit 64M and a spill file, which must be
#                           written and read (test-swap-stress-hog-with-a-spill-file.sh)
. "${top_srcdir:-.}/tests/functions.sh"

seconds=${SGBLK_STRESS_SECONDS:-30}
hog_mib=${SGBLK_STRESS_HOG_MIB:-256}
copy_mib=${SGBLK_STRESS_COPY_MIB:-64}
spill=${SGBLK_STRESS_SPILL:-0}
case "$seconds$hog_mib$copy_mib" in *[!0-9]*) fail "SGBLK_STRESS_* must be whole numbers" ;; esac
[ "$hog_mib" -ge 16 ] && [ "$copy_mib" -ge 1 ] || fail "the hog needs 16 MiB or more, a copy 1 MiB or more"

requires_fuse_and_loop
requires_test_hooks
requires mkswap swapon swapoff nbdcopy nbdkit sha256sum base64 timeout pkill
hog=${top_builddir:-.}/tests/swap-stress-hog
[ -x "$hog" ] || skip "tests/swap-stress-hog is not built (make check builds it)"
nbdkit --dump-plugin nbd >/dev/null 2>&1 || skip "nbdkit has no nbd plugin"
nbdkit --filter=offset null --dump-plugin >/dev/null 2>&1 || skip "nbdkit has no offset filter"
[ "$(cat /sys/module/zswap/parameters/enabled 2>/dev/null || echo N)" != Y ] ||
  skip "zswap is enabled: swapped pages would stay in its pool in RAM, not reach the device"


# The disk: swap in the first part, the nbdcopy region after it.  The
# swap area holds all of the hog with room to spare; the memory limit
# holds the whole disk even if nothing compressed.
swap_mib=$((hog_mib + 64))
disk_mib=$((swap_mib + copy_mib))
mem_limit_mib=$((disk_mib + disk_mib / 4 + 32))
copy_offset=$((swap_mib << 20))
copy_bytes=$((copy_mib << 20))
spill_args=()
if [ "$spill" = 1 ]; then
  # Less memory than the copies' random data alone: blocks must go to the
  # spill file and come back while the machine swaps onto the disk.  Not
  # on tmpfs, whose pages could themselves be swapped onto this disk.
  mem_limit_mib=64
  spill_dir=$tmp
  [ "$(stat -f -c %T "$tmp")" != tmpfs ] || spill_dir=/var/tmp
  spill_file=$spill_dir/sgblk-stress-spill.$$
  cleanup_fn "rm -f '$spill_file'"
  spill_args=(--spill "$spill_file")
fi

echo "swap areas before the test:"
swapon --show || true

memory_cgroup $((hog_mib << 18))                     # a quarter of the hog

# The daemon's counters: stats NAME sends SIGUSR1 and waits (10 s at most)
# for the new "cmd pool:" line, which it leaves in $stats.
stats ()
{
  usr1_wait "$1" 'cmd pool:'
  stats=$(grep 'cmd pool:' "$tmp/$1.log" | tail -n 1)
}
counter () { echo "$stats" | sed -E "s/.* $1 ([0-9]+).*/\\1/"; }
# beyond: the daemon's resident memory beyond its disk's, in kB: VmRSS
# less the cache's memory used, read by the same SIGUSR1 right after it.
# Sets $beyond, $disk_kb and $stats.
beyond ()
{
  local rss
  rss=$(status_kb VmRSS)
  stats stress
  disk_kb=$(( $(grep 'cache in-memory' "$tmp/stress.log" | tail -n 1 |
                sed -E 's/.* memory used ([0-9]+) B.*/\1/') / 1024 ))
  beyond=$((rss - disk_kb))
}
status_kb () { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid_stress/status"; }
# The daemon's threads by where they wait (fuse_dev_do_read: FUSE
# workers), with a count each.
threads ()
{
  local t
  for t in /proc/"$pid_stress"/task/*; do cat "$t/wchan" 2>/dev/null; echo; done |
    sed 's/^$/running/' | sort | uniq -c | awk '{printf " %s x%s", $2, $1}'
}
vm_counter () { awk -v k="$1" '$1 == k {print $2}' /proc/vmstat; }

t0=$(date +%s)
fuse_mountpoint
SGBLK_TEST_CMD_FAIL_EVERY=3 start_sgblkd stress --swap --fuse "$mnt" \
  --size "${disk_mib}M" --mem-limit "${mem_limit_mib}M" "${spill_args[@]}"
grep -q "swap mode: memory locked" "$tmp/stress.log" || { cat "$tmp/stress.log"; fail "swap mode not reported"; }
grep -q "test hook: every 3. command allocation fails" "$tmp/stress.log" ||
  fail "the test hook did not take: no allocation failures injected"
rss_start=$(status_kb VmRSS); lck_start=$(status_kb VmLck); threads_start=$(status_kb Threads)
beyond
beyond_start=$beyond; beyond_peak=$beyond; disk_start=$disk_kb; disk_peak=$disk_kb
fallbacks_start=$(counter fallbacks)
echo "daemon at start: VmRSS $rss_start kB, VmLck $lck_start kB (the disk's memory $disk_kb kB," \
  "$beyond kB beyond it), $threads_start threads:$(threads); $stats"
grep 'cache reserve:' "$tmp/stress.log" | tail -n 1

loop=$(losetup -f --show --sizelimit $((swap_mib << 20)) "$mnt/disk")
cleanup_fn "losetup -j '$mnt/disk' -n -O NAME 2>/dev/null | grep -qx '$loop' && losetup -d '$loop'"
mkswap "$loop" >/dev/null
swapon -p 32767 "$loop"
cleanup_fn "grep -q '^$loop ' /proc/swaps && timeout 120 swapoff '$loop'"
swapon --show
pswpout_start=$(vm_counter pswpout); pswpin_start=$(vm_counter pswpin)

t_start=$(date +%s)
# The hog, in the cgroup; it stops by itself after $seconds (and the pass
# under way), and timeout stops it if it hangs.
limit=$((2 * seconds + 240))
timeout -k 10 "$limit" sh -c "echo \$\$ >'$cg/cgroup.procs' && exec '$hog' $hog_mib $seconds" \
  >"$tmp/hog.out" 2>&1 &
hog_pid=$!
cleanup_fn "kill $hog_pid 2>/dev/null"

# The copies: random data and text-like data in turns, into the region
# after the swap area and back out, through nbdkit's offset filter over
# the daemon's Unix socket.
region=(nbdkit --exit-with-parent --filter=offset nbd "socket=$sock" "offset=$copy_offset" "range=$copy_bytes")
copy_rounds ()
{
  local round=0 sum_in sum_out
  while [ $(( $(date +%s) - t_start )) -lt "$seconds" ] || [ "$round" -eq 0 ]; do
    round=$((round + 1))
    if [ $((round % 2)) -eq 1 ]; then
      head -c "$copy_bytes" /dev/urandom >"$tmp/copy.in"
    else
      head -c $((copy_bytes / 4 * 3)) /dev/urandom | base64 -w 0 | head -c "$copy_bytes" >"$tmp/copy.in"
    fi
    sum_in=$(sha256sum <"$tmp/copy.in")
    rm -f "$tmp/copy.out"
    timeout 120 nbdcopy "$tmp/copy.in" -- [ "${region[@]}" ] ||
      { echo "copy: round $round: nbdcopy into the disk failed (status $?)"; return 1; }
    timeout 120 nbdcopy -- [ "${region[@]}" ] "$tmp/copy.out" ||
      { echo "copy: round $round: nbdcopy out of the disk failed (status $?)"; return 1; }
    sum_out=$(sha256sum <"$tmp/copy.out")
    if [ "$sum_in" != "$sum_out" ]; then
      echo "copy: round $round: MISMATCH: in ${sum_in%% *} out ${sum_out%% *}"
      cmp -l "$tmp/copy.in" "$tmp/copy.out" | head -n 10
      return 1
    fi
    echo "copy: round $round: $copy_mib MiB in and out, sha256 ${sum_in%% *} matches"
  done
  echo "copy: $round rounds, all checksums match"
}
copy_rounds >"$tmp/copy.log" 2>&1 &
copy_pid=$!
cleanup_fn "pkill -P $copy_pid 2>/dev/null; kill $copy_pid 2>/dev/null"

# Watch: the daemon must stay up, both sides must finish in time; note
# the peak of the swap area's use, and of the daemon's memory beyond its
# disk's.
peak_kb=0
while kill -0 "$hog_pid" 2>/dev/null || kill -0 "$copy_pid" 2>/dev/null; do
  kill -0 "$pid_stress" 2>/dev/null || { cat "$tmp/hog.out" "$tmp/copy.log"; fail "sgblkd died under the stress"; }
  used=$(awk -v d="$loop" '$1 == d {print $4}' /proc/swaps)
  [ "${used:-0}" -gt "$peak_kb" ] && peak_kb=$used
  beyond
  [ "$beyond" -gt "$beyond_peak" ] && beyond_peak=$beyond
  [ "$disk_kb" -gt "$disk_peak" ] && disk_peak=$disk_kb
  if [ $(( $(date +%s) - t_start )) -gt "$limit" ]; then
    echo "--- still running after $limit s: hog, copies, daemon threads (state, wchan):"
    tail -n 3 "$tmp/hog.out" "$tmp/copy.log"
    for t in /proc/"$pid_stress"/task/*; do
      echo "$(awk '{print $3}' "$t/stat") $(cat "$t/wchan" 2>/dev/null) $(cat "$t/comm")"
    done
    dmesg 2>/dev/null | tail -n 20
    fail "the hog or the copies did not finish within $limit s"
  fi
  sleep 1
done
hog_status=0; wait "$hog_pid" || hog_status=$?
copy_status=0; wait "$copy_pid" || copy_status=$?
t_run=$(( $(date +%s) - t_start ))
pswpout=$(( $(vm_counter pswpout) - pswpout_start ))
pswpin=$(( $(vm_counter pswpin) - pswpin_start ))

cat "$tmp/hog.out"
tail -n 3 "$tmp/copy.log"
[ "$hog_status" -ne 124 ] && [ "$hog_status" -ne 137 ] || fail "the hog was stopped after $limit s"
bad=$(sed -nE 's/^hog: .* pages verified, ([0-9]+) bad words$/\1/p' "$tmp/hog.out")
passes=$(sed -nE 's/^hog: .*, ([0-9]+) passes, .*/\1/p' "$tmp/hog.out")
[ -n "$bad" ] || fail "the hog did not finish (status $hog_status)"
[ "$bad" -eq 0 ] && [ "$hog_status" -eq 0 ] || fail "the hog found $bad bad words in its memory"
[ "$copy_status" -eq 0 ] || fail "an nbdcopy round failed or read back other data (see above)"
rounds=$(grep -c "matches$" "$tmp/copy.log")

# Real swapping onto this device: at least half of what one pass must
# push out of the cgroup, and back in for the verification.
min_pages=$((hog_mib * 256 * 3 / 4 / 2))
echo "pswpout +$pswpout, pswpin +$pswpin pages; peak use of $loop $((peak_kb / 1024)) MiB"
[ "$pswpout" -gt "$min_pages" ] || fail "only $pswpout pages swapped out (expected over $min_pages): the test proved nothing"
[ "$pswpin" -gt $((min_pages / 2)) ] || fail "only $pswpin pages swapped in: the verification did not read swap"
[ "$peak_kb" -gt $((hog_mib * 1024 / 4)) ] || fail "the swap went elsewhere: $loop held at most $peak_kb kB"

rss_end=$(status_kb VmRSS); lck_end=$(status_kb VmLck); hwm=$(status_kb VmHWM); threads_end=$(status_kb Threads)
beyond
fallbacks=$(( $(counter fallbacks) - fallbacks_start ))
waits=$(counter waits)
threads_end_by_wchan=$(threads)
echo "daemon at the end: VmRSS $rss_end kB (peak $hwm kB), VmLck $lck_end kB, $threads_end threads:$threads_end_by_wchan; $stats"
grep 'cache in-memory' "$tmp/stress.log" | tail -n 1
grep 'cache reserve:' "$tmp/stress.log" | tail -n 1
if [ "$spill" = 1 ]; then
  bd=$(grep 'cache bd_stat:' "$tmp/stress.log" | tail -n 1)
  echo "$bd"
  [ "$(echo "$bd" | sed -E 's/.* bd_writes ([0-9]+).*/\1/')" -gt 0 ] || fail "nothing was spilled"
  [ "$(echo "$bd" | sed -E 's/.* bd_reads ([0-9]+).*/\1/')" -gt 0 ] || fail "nothing was read back from the spill file"
  [ "$(echo "$bd" | sed -E 's/.* errors ([0-9]+).*/\1/')" -eq 0 ] || fail "spill file errors"
fi

timeout 120 swapoff "$loop" || fail "swapoff $loop failed or took over 120 s"
losetup -d "$loop"
stop_sgblkd stress
grep 'cmd pool:' "$tmp/stress.log" | tail -n 1 | grep -q ' in use 0 ' || fail "commands leaked"
t_all=$(( $(date +%s) - t0 ))

echo "swap-stress: ${t_all} s (${t_run} s of stress), hog ${hog_mib} MiB in a $((hog_mib / 4)) MiB cgroup:" \
  "$passes passes, $bad bad words; pswpout +$pswpout pswpin +$pswpin; nbdcopy $rounds rounds of ${copy_mib} MiB," \
  "all checksums match; VmRSS ${rss_start}->${rss_end} kB (peak $hwm), VmLck ${lck_start}->${lck_end} kB;" \
  "the disk's memory ${disk_start}->${disk_kb} kB (peak sampled $disk_peak), beyond it" \
  "${beyond_start}->${beyond} kB (peak sampled $beyond_peak); cmd pool fallbacks +$fallbacks, waits $waits"

[ "$fallbacks" -gt 0 ] || fail "no command came from the reserve although every third allocation failed"
# Swap mode sets up its pools and the disk's memory reserve at start,
# and the disk then takes memory for what it holds: what the daemon
# holds beyond that while the machine swaps onto it must not grow (32
# MiB of slack for the allocator's own bookkeeping, a few thread stacks,
# and what the disk took between a sample's two readings).
[ "$beyond_peak" -le $((beyond_start + 32768)) ] ||
  fail "beyond its disk's memory, the daemon's grew from $beyond_start kB to $beyond_peak kB under the stress" \
    "(threads $threads_start -> $threads_end, by where they wait at the end:$threads_end_by_wchan)"
# The disk's memory is what it holds: at most its limit, its reserve and
# its block table.
limit_kb=$((mem_limit_mib * 1024))
[ "$disk_peak" -le $((limit_kb + disk_start)) ] ||
  fail "the disk's memory peaked at $disk_peak kB, past its limit of $limit_kb kB and what it had at start"
[ "$lck_end" -ge $((rss_end - 4096)) ] || fail "the daemon's memory is not all locked ($lck_end of $rss_end kB)"
