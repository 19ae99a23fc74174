#!/usr/bin/env bash
# Swap, timed over three stacks in one run: a hog held by a memory cgroup
# to 192 MiB writes, then verifies, 768 MiB (48 and 192 MiB with
# BENCH_QUICK=1) while the kernel swaps onto
#   sg  a loop device over the FUSE file of `sgblkd --swap`,
#   zr  the kernel's zram with lz4, as swap directly (/dev/zram0),
#   nf  a loop device over nbdfuse + nbdkit memory,
#   fl  the floor: a loop device over the file of fuse-floor.c, a FUSE
#       server of plain memory that does nothing else, as sgblk's loop
#       device (BENCH_SG_LOSETUP included): what the loop device and
#       FUSE cost whatever the server,
# each 1 GiB (512 MiB quick), at swap priority 32767.  Runs alternate
# within each round; medians of ROUNDS rounds.
#
#   contrib/bench/fuse-swap.sh [ROUNDS]          (root: it resets /dev/zram0)
#
# Writes swap.md into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need_fuse_pair "FUSE mounts, loop devices, zram, swap and a memory cgroup"
need mount swapon swapoff
need util-linux mkswap blkdiscard
need python3 python3
need gcc gcc
need pkgconf pkg-config
pkg-config --exists fuse3 || skip "libfuse3-dev is not installed (for the floor's server)"
if grep -qsw memory /sys/fs/cgroup/cgroup.controllers; then
  cg=/sys/fs/cgroup limit_file=memory.max
elif [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory limit_file=memory.limit_in_bytes
else
  skip "no memory cgroup controller"
fi
zram=/sys/block/zram0
[ -w "$zram/reset" ] || skip "no /dev/zram0 (modprobe zram)"
[ "$(cat "$zram/disksize")" = 0 ] || skip "/dev/zram0 is in use"
limit=192 hog=768 disk=1G
[ "$quick" = 1 ] && limit=48 hog=192 disk=512M

section swap "Swap: sgblkd --swap --fuse against the kernel's zram (lz4) and nbdfuse + nbdkit memory"
cg=$cg/sgblk-bench-$$
mkdir "$cg"
at_exit "for i in \$(seq 50); do rmdir '$cg' 2>/dev/null && break; sleep 0.1; done"
echo $((limit << 20)) >"$cg/$limit_file"

# --swap preallocates and locks its cache memory, the disk's size, before
# its FUSE file appears: seconds on a busy machine.
start_timeout=120
start_fuse_pair "$disk" --swap
label[sg]="sgblk --swap FUSE"
label[zr]="zram lz4"
gcc -O2 -o "$tmp/fuse-floor" "$bench_dir/fuse-floor.c" $(pkg-config --cflags --libs fuse3)
mkdir "$tmp/fl"
serve fl "floor: plain-memory FUSE" "$tmp/fuse-floor" "$tmp/fl" "$(( $(numfmt --from=iec "$disk") >> 20 ))"
unmount_at_exit "$tmp/fl"
wait_until fl test -f "$tmp/fl/disk"
servers=(sg zr nf fl)
declare -A dev
# BENCH_SG_LOSETUP: more losetup options for sgblk's loop device (such as
# --direct-io=on), to compare set-ups run against run.
for key in sg nf fl; do
  if [ "$key" != nf ]; then
    # shellcheck disable=SC2086
    attach_loop "$tmp/$key/disk" ${BENCH_SG_LOSETUP:-}
  else
    attach_loop "$tmp/$key/disk"
  fi
  dev[$key]=$loop
done
[ -z "${BENCH_SG_LOSETUP:-}" ] || label[sg]="${label[sg]} ($BENCH_SG_LOSETUP)"
[ -z "${BENCH_SG_LOSETUP:-}" ] || label[fl]="${label[fl]} ($BENCH_SG_LOSETUP)"
dev[zr]=/dev/zram0
at_exit "swapoff /dev/zram0 2>/dev/null; echo 1 >$zram/reset"

# The hog: writes N MiB of 4 KiB pages (a SHA-256 repeated), verifies
# them, prints its own user + system seconds, then holds its pages until
# its standard input closes, so that the memory holding the swapped data
# is read at its peak (zram frees a page as soon as its swap slot is).
# It leaves without freeing its objects one by one, which would swap
# every page in again.
cat >"$tmp/hog.py" <<'EOF'
import hashlib, os, resource, sys
n = int(sys.argv[1]) * 1024 * 1024 // 4096
pages = [hashlib.sha256(b"%d" % i).digest() * 128 for i in range(n)]
assert all(pages[i] == hashlib.sha256(b"%d" % i).digest() * 128 for i in range(n))
r = resource.getrusage(resource.RUSAGE_SELF)
print(r.ru_utime + r.ru_stime, flush=True)
sys.stdin.read()
os._exit(0)
EOF
hog_pid=
kill_hog () { [ -z "$hog_pid" ] || { kill -KILL "$hog_pid" 2>/dev/null; wait "$hog_pid" 2>/dev/null; hog_pid=; }; }
at_exit kill_hog

# io DEV: "READS SECTORS_READ READ_MS SECTORS_WRITTEN" of DEV, swap's own
# traffic on it (READ_MS: the time reads took, added up).
io () { awk '{ print $1, $3, $4, $7 }' "/sys/block/${1#/dev/}/stat"; }
# busy: the machine's user + system + interrupt clock ticks, all CPUs.
busy () { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
# swaps [DEV]: the swap devices on, DEV left out ("NAME TYPE SIZE PRIO").
swaps () { swapon --noheadings --show=NAME,TYPE,SIZE,PRIO | awk -v d="${1:-}" '$1 != d { $1 = $1; print }'; }
# rival [DEV]: whether another swap than DEV has our priority, and would
# share the hog's pages with DEV.
rival () { swaps "${1:-}" | awk '$4 >= 32767 { f = 1 } END { exit !f }'; }
status_kib () { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# held KEY: "RESIDENT DATA STORED LOCKED" bytes held at the hog's peak:
# sgblkd's VmRSS, the "memory used" and "original" of its own count, its
# VmLck; zram's mem_used_total twice, its orig_data_size, 0; nbdfuse's
# and nbdkit's VmRSS summed twice, 0, 0.
held ()
{
  local p rss=0
  case $1 in
    sg) set -- "$(rss_kib "${pid[sg]}")" "$(status_kib "${pid[sg]}" VmLck)" $(sgblk_stats sg)
        echo "$(($1 << 10)) $5 $3 $(($2 << 10))" ;;
    zr) awk '{ print $3, $3, $1, 0 }' "$zram/mm_stat" ;;
    nf|fl) for p in $(tree_pids "${pid[$1]}"); do rss=$((rss + $(rss_kib "$p"))); done
        echo "$((rss << 10)) $((rss << 10)) 0 0" ;;
  esac
}

# run KEY: a fresh swap on KEY's device (discarded, mkswap, ahead of any
# other swap) while the hog runs in the cgroup; sets $res to its seconds,
# its own CPU seconds, the server's CPU seconds, the MiB swapped out to
# and in from KEY's device, "held" in MiB, the rest of the machine's CPU
# seconds meanwhile, the reads of KEY's device and their mean time in µs.
# It waits up to 2 minutes for any other swap of our priority to go
# first; other swap seen on is kept in $tmp/others, and KEY in
# $tmp/shared if one had our priority at the end.
run ()
{
  local key=$1 d=${dev[$1]} i t0 t1 c0=0 c1=0 io0 io1 b0 b1 cpu out in
  if [ "$key" = zr ]; then
    echo lz4 >"$zram/comp_algorithm"
    echo "$disk" >"$zram/disksize"
  else
    blkdiscard -f "$d" >>"$tmp/mkswap.log" 2>&1
  fi
  mkswap "$d" >>"$tmp/mkswap.log" 2>&1
  for i in $(seq 120); do rival || break; sleep 1; done
  swapon -p 32767 "$d"
  swaps "$d" >>"$tmp/others"
  [ -z "${pid[$key]:-}" ] || c0=$(cpu_ticks "${pid[$key]}")
  io0=$(io "$d") b0=$(busy)
  t0=$EPOCHREALTIME
  coproc HOG { echo "$BASHPID" >"$cg/cgroup.procs"; exec python3 "$tmp/hog.py" "$hog"; }
  hog_pid=$HOG_PID out=${HOG[0]} in=${HOG[1]}
  read -r -u "$out" cpu || { echo "$0: the hog failed over ${label[$key]}" >&2; exit 1; }
  t1=$EPOCHREALTIME
  io1=$(io "$d") b1=$(busy)
  [ -z "${pid[$key]:-}" ] || c1=$(cpu_ticks "${pid[$key]}")
  res="$t0 $t1 $cpu $c0 $c1 $io0 $io1 $b0 $b1 $(held "$key")"
  swaps "$d" >>"$tmp/others"
  ! rival "$d" || echo "$key" >>"$tmp/shared"
  eval "exec $in>&- $out<&-"
  wait "$hog_pid" || { echo "$0: the hog failed over ${label[$key]}" >&2; exit 1; }
  hog_pid=
  swapoff "$d"
  [ "$key" != zr ] || echo 1 >"$zram/reset"
  res=$(echo "$res" | awk -v hz="$hz" '{
    server = ($5 - $4) / hz; reads = $10 - $6
    print $2 - $1, $3, server, ($13 - $9) / 2048, ($11 - $7) / 2048, $16 / 1048576, $17 / 1048576,
          $18 / 1048576, $19 / 1048576, ($15 - $14) / hz - $3 - server,
          reads, (reads > 0 ? ($12 - $8) * 1000 / reads : 0) }')
}

: >"$tmp/raw"
: >"$tmp/others"
: >"$tmp/shared"
for r in $(seq "$rounds"); do
  for key in "${servers[@]}"; do
    run "$key"
    echo "0 $key $res" >>"$tmp/raw"
  done
done
others=$(sort -u "$tmp/others" | paste -sd ';' | sed 's/;/; /g')
shared=$(wc -l <"$tmp/shared")
say "A Python hog in a memory cgroup held to $limit MiB writes $hog MiB of" \
    "4 KiB pages (a SHA-256 hash repeated), then verifies them, while the" \
    "kernel swaps onto each stack, $disk, at swap priority 32767: a loop" \
    "device over the FUSE file of \`sgblkd --size $disk --swap --fuse DIR\`;" \
    "\`/dev/zram0\` with lz4 itself; a loop device over nbdfuse's file," \
    "served by \`nbdkit memory\`; and the floor, a loop device set up as" \
    "sgblk's over the file of \`contrib/bench/fuse-floor.c\`, a FUSE server" \
    "(libfuse's low-level API, direct_io, 16 threads) of plain locked memory" \
    "that does nothing but copy: what the loop device and FUSE cost, which" \
    "no server behind them can take back.  Each run discards its device (zram is" \
    "reset instead), makes a new swap on it and takes it off afterwards." \
    "Other swap on during the runs: ${others:-none}$([ "$shared" = 0 ] ||
      echo "; $shared of the $((rounds * ${#servers[@]})) runs ended with another swap of" \
           "the same priority on, which took part of the pages")."
{
  echo "| swap hog, median of $rounds | ${label[sg]} | ${label[zr]} | ${label[nf]} | floor | ${label[sg]} / ${label[zr]} | ${label[sg]} / ${label[nf]} | floor / ${label[zr]} | ${label[sg]} / floor |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  stats '
    function ratio(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "n/a" }
    function fig(fmt, x, u) { return sprintf(fmt, x) (u == "" ? "" : " " u) }
    function row(l, f, u, fmt,   a, z, b, c) {
      a = med("0 sg", f); z = med("0 zr", f); b = med("0 nf", f); c = med("0 fl", f)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l, fig(fmt, a, u), fig(fmt, z, u), fig(fmt, b, u),
        fig(fmt, c, u), ratio(a, z), ratio(a, b), ratio(c, z), ratio(a, c)
    }
    END {
      row("time", 3, "s", "%.2f")
      row("hog CPU", 4, "s", "%.2f")
      a = med("0 sg", 5); b = med("0 nf", 5); c = med("0 fl", 5)
      printf "| server CPU | %.2f s | kernel | %.2f s | %.2f s | — | %s | — | %s |\n", a, b, c, ratio(a, b), ratio(a, c)
      row("swapped out", 6, "MiB", "%.0f")
      row("swapped in", 7, "MiB", "%.0f")
      row("swap-in reads", 13, "", "%.0f")
      row("mean read time", 14, "µs", "%.1f")
      row("memory held at the peak", 8, "MiB", "%.1f")
      row("of which for the data", 9, "MiB", "%.1f")
    }' "$tmp/raw"
  echo
} >>"$md"
[ "$rounds" -gt 1 ] && say "$(stats -v names="${label[sg]}|${label[zr]}|${label[nf]}|${label[fl]}" '
  END {
    printf "Spread of the time between rounds, (max - min) / median:"
    split("sg zr nf fl", s, " "); split(names, l, "|")
    for (i = 1; i <= 4; i++) {
      m = med("0 " s[i], 3)
      printf "%s %s %.0f %%", (i > 1 ? "," : ""), l[i], (m > 0 ? (hi["0 " s[i], 3] - lo["0 " s[i], 3]) / m * 100 : 0)
    }
    print "."
  }' "$tmp/raw")  Each round's time, in order: $(for key in "${servers[@]}"; do
    awk -v k="$key" -v l="${label[$key]}" '$2 == k { t = t sprintf(" %.2f", $3) } END { printf "%s%s s", l, t }' "$tmp/raw"
    [ "$key" = "${servers[-1]}" ] && echo . || echo -n '; '
  done)"
set -- $(stats 'END {
    printf "%.1f %.1f %.1f", med("0 sg", 10), med("0 sg", 11), med("0 zr", 10)
    printf " %.2f %.2f %.2f %.2f", med("0 sg", 12), med("0 zr", 12), med("0 nf", 12), med("0 fl", 12)
  }' "$tmp/raw")
say "Time is from starting the hog to its verifying the last page.  Hog CPU" \
    "is its own user + system time: zram compresses and decompresses in" \
    "the hog's own reclaim and page faults, so its work is counted there," \
    "and zram has no server of its own (\"kernel\").  Server CPU is" \
    "sgblkd's, nbdfuse's and its nbdkit's summed, or the floor's, user + system time" \
    "during the hog.  The loop device's kernel workers are in none: the" \
    "rest of the machine, they and whatever else ran, used a median of" \
    "$4 s, $5 s, $6 s and $7 s of CPU during the four stacks' runs.  Swapped" \
    "out and in are what the kernel wrote to and read from the stack's own" \
    "device meanwhile, and the swap-in reads are the reads it completed," \
    "with the mean time from submitting one to its end, which the hog" \
    "waits out in its page fault (the device's \`/sys/block\` stat): zram," \
    "a synchronous device, is read a page at a time in the fault itself;" \
    "a loop device is read with swap readahead, up to" \
    "$((1 << $(cat /proc/sys/vm/page-cluster 2>/dev/null || echo 3))) pages a read" \
    "(\`vm.page-cluster\`), through the loop device's worker, FUSE and the" \
    "server.  The aim was sgblk's time within 1.05x of zram's; the floor's" \
    "time over zram's is how near any server behind a loop device and FUSE can come."
say "Memory held at the peak is read after the hog has verified its pages," \
    "before it exits: sgblkd's VmRSS, zram's \`mem_used_total\` from" \
    "\`mm_stat\`, nbdfuse's and nbdkit's VmRSS summed, the floor's VmRSS (all of its disk, locked from the start).  \`--swap\` locks" \
    "sgblkd's memory, the reserve its cache takes memory from included" \
    "(VmLck $2 MiB at the peak), so its VmRSS counts that reserve, not only" \
    "what it stores; \"for the data\" is sgblkd's own count of the memory" \
    "its stored blocks use, zram's \`mem_used_total\` again, and the VmRSS" \
    "again for nbdkit, which stores pages as they are.  The loop" \
    "device passes no discard for freed swap slots, so sgblkd keeps every" \
    "page once written ($1 MiB of swap at the peak), while zram drops a" \
    "page when its slot is freed ($3 MiB).  Lower is better everywhere."
section_done
