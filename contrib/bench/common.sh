# Shared by the benchmark scripts: source it first thing.  It sets
#   $rounds $runtime  rounds (ROUNDS, or the script's first argument;
#                     default 3) of fio runs of RUNTIME seconds (or the
#                     second argument; default 5)
#   $size             the disks' size: 1G, or 64M with BENCH_QUICK=1
#   $out              where the Markdown and PNG files go (BENCH_OUT,
#                     default contrib/bench/results)
#   $tmp              a scratch directory under /tmp
# and undoes everything registered with at_exit, last first, however the
# script ends (failure, Ctrl-C, kill).  A section skipped for want of
# root or of a program says why in one line and exits 77.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SGBLKD=${SGBLKD:-$bench_dir/../../sgblkd}
rounds=${1:-${ROUNDS:-3}}
runtime=${2:-${RUNTIME:-5}}
quick=${BENCH_QUICK:-0}
out=${BENCH_OUT:-$bench_dir/results}
size=1G
[ "$quick" = 1 ] && size=64M
hz=$(getconf CLK_TCK)
: "${BENCH_CMD:=$0${*:+ $*}}"

# --- Clean-up -------------------------------------------------------------

_undo=
at_exit () { _undo="$*"$'\n'"$_undo"; }
_bench_undo ()
{
  set +e
  trap - EXIT INT TERM
  [ -z "$_fg" ] || stop_tree "$_fg" 5
  eval "$_undo"
  rm -rf "$tmp"
}
_bench_exit () { local status=$?; _bench_undo; exit "$status"; }
# On Ctrl-C or SIGTERM: undo, then die of the signal, so that a calling
# script (run.sh) stops too.
_bench_signal () { _bench_undo; kill -"$1" $$; }
# wait_fg CMD...: run CMD and wait for it.  fio catches SIGINT and exits
# as if it had finished, and a shell that sees that ignores the Ctrl-C
# too: CMD runs in the background, where Ctrl-C leaves it alone and
# interrupts the wait at once; the clean-up stops CMD.
_fg=
wait_fg () { "$@" & _fg=$!; wait "$_fg"; _fg=; }
tmp=$(mktemp -d /tmp/sgblk-bench.XXXXXX)
trap _bench_exit EXIT
trap '_bench_signal INT' INT
trap '_bench_signal TERM' TERM

# --- Skips ----------------------------------------------------------------

skip () { echo "$(basename "$0" .sh): skipped: $*"; exit 77; }
# need PACKAGE CMD...: skip unless every CMD is installed.
need ()
{
  local pkg=$1 c; shift
  for c in "$@"; do
    command -v "$c" >/dev/null || skip "needs $c (Debian package $pkg; contrib/install-deps.sh installs it)"
  done
}
need_root () { [ "$(id -u)" -eq 0 ] || skip "needs root ($*)"; }
# need_fuse_pair WHY: what start_fuse_pair and attach_loop need.
need_fuse_pair ()
{
  need_root "$*"
  need nbdkit nbdkit
  need libnbd-bin nbdfuse
  need fuse3 fusermount3
  need mount losetup
  [ -c /dev/fuse ] || skip "no /dev/fuse"
}
need jq jq
[ -x "$SGBLKD" ] || { echo "$0: no sgblkd at $SGBLKD: build it first, or set SGBLKD" >&2; exit 1; }

# --- Processes ------------------------------------------------------------

# _tree ROOT: one line per process of ROOT's tree (ROOT and its live
# descendants): its PID and its user + system clock ticks, all threads,
# with those of the children it has reaped (fields 14 to 17 of stat).
_tree ()
{
  # (A process may go between the glob and cat: not an error.)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { p = $1; sub(/^.*\) /, ""); parent[p] = $2; ticks[p] = $12 + $13 + $14 + $15 }
    END {
      if (!(root in parent)) exit
      keep[root] = 1
      do { grew = 0
           for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
      } while (grew)
      for (p in keep) print p, ticks[p]
    }'
}
# snap ROOT: $snap_pids (" PID PID ... ") and $snap_ticks of ROOT's tree.
snap ()
{
  local p t
  snap_pids=" " snap_ticks=0
  while read -r p t; do
    snap_pids+="$p "
    snap_ticks=$((snap_ticks + t))
  done < <(_tree "$1")
}
# tree_pids ROOT: the PIDs of ROOT's tree.
tree_pids () { _tree "$1" | cut -d' ' -f1; }
# cpu_ticks ROOT: the clock ticks of ROOT's tree.
cpu_ticks () { snap "$1"; echo "$snap_ticks"; }

# rss_kib PID: resident memory (VmRSS) in KiB.
rss_kib () { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# stop_tree ROOT [SECONDS]: SIGTERM to ROOT's tree, SIGKILL to what is
# left after SECONDS (default 30: sgblkd writes its cache back to its
# file before it exits; fio, stopped halfway, may hang).
stop_tree ()
{
  local pids i n=$(( ${2:-30} * 10 ))
  pids=$(tree_pids "$1")
  kill $pids 2>/dev/null || return 0
  for i in $(seq "$n"); do
    kill -0 $pids 2>/dev/null || break
    sleep 0.1
  done
  [ "$i" = "$n" ] && kill -KILL $pids 2>/dev/null
  wait "$1" 2>/dev/null || true
}

# Servers are named by a short key: $label[KEY] for tables, $pid[KEY] the
# root of its process tree, $target[KEY] the fio options that reach it.
declare -A label pid target

# serve KEY LABEL CMD...: start CMD in the background (log $tmp/KEY.log),
# stopped at exit.  It runs in a session of its own: Ctrl-C reaches the
# scripts and fio, which clean up in order (loop devices, then mounts,
# then servers), never a server under a mount.
serve ()
{
  local key=$1
  label[$key]=$2
  shift 2
  setsid "$@" >"$tmp/$key.log" 2>&1 &
  served "$key" $!
}
# served KEY PID: KEY runs as PID; stop it at exit.
served () { pid[$1]=$2; at_exit "stop $1"; }
# stop KEY: stop KEY's processes, once (its PID may serve another later).
stop ()
{
  [ -n "${pid[$1]:-}" ] || return 0
  stop_tree "${pid[$1]}"
  pid[$1]=
}

# wait_until KEY TEST...: up to $start_timeout s (default 10) for TEST to
# succeed while KEY runs.
wait_until ()
{
  local key=$1 i
  shift
  for i in $(seq $(( ${start_timeout:-10} * 10 ))); do
    "$@" && return 0
    kill -0 "${pid[$key]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/$key.log" >&2
  echo "$0: ${label[$key]} did not start" >&2
  exit 1
}

# nbd_target KEY SOCKET [EXPORT]: fio reaches KEY with its nbd engine.
nbd_target () { target[$1]="--ioengine=nbd --uri=nbd+unix:///${3:-}?socket=$2"; }

# serve_nbd KEY LABEL SOCKET CMD...: serve, and wait for CMD to listen
# on SOCKET, where fio finds it.
serve_nbd ()
{
  local key=$1 sock=$3
  serve "$key" "$2" "${@:4}"
  wait_until "$key" test -S "$sock"
  nbd_target "$key" "$sock"
}

# start_sgblkd_memory KEY SOCKET [SIZE]: sgblkd's in-memory disk of SIZE
# (default $size).
start_sgblkd_memory () { serve_nbd "$1" sgblk "$2" "$SGBLKD" -f -U "$2" --size "${3:-$size}"; }

# start_nbdkit_memory KEY SOCKET: nbdkit's memory plugin of $size.
start_nbdkit_memory () { serve_nbd "$1" "nbdkit memory" "$2" nbdkit -f -U "$2" memory "$size"; }

# start_memory_pair: sgblkd's in-memory disk (sg) and nbdkit memory (nk),
# fresh, $size each, as $servers.
start_memory_pair ()
{
  start_sgblkd_memory sg "$tmp/sg.sock"
  start_nbdkit_memory nk "$tmp/nk.sock"
  servers=(sg nk)
}

# unmount_at_exit DIR: at exit, unmount the FUSE mount on DIR if one is
# still there (lazily, if its server is gone).
unmount_at_exit ()
{
  at_exit "mountpoint -q '$1' && { fusermount3 -u '$1' 2>/dev/null || umount -l '$1'; }"
}

# start_fuse_pair SIZE [SGBLKD OPTIONS...]: sgblkd's FUSE file
# ($tmp/sg/disk, key sg; OPTIONS after --size, e.g. --swap) and nbdfuse
# over nbdkit memory ($tmp/nf/disk, key nf), SIZE each, unmounted at exit.
start_fuse_pair ()
{
  local m
  mkdir "$tmp/sg" "$tmp/nf"
  serve sg "sgblk FUSE" "$SGBLKD" -f --size "$1" "${@:2}" --fuse "$tmp/sg"
  serve nf "nbdfuse + nbdkit memory" nbdfuse "$tmp/nf/disk" [ nbdkit memory "$1" ]
  unmount_at_exit "$tmp/sg"
  unmount_at_exit "$tmp/nf"
  wait_until sg test -f "$tmp/sg/disk"
  wait_until nf test -f "$tmp/nf/disk"
}

# attach_loop FILE [LOSETUP OPTIONS...]: a loop device on FILE in $loop;
# at exit, if it still serves FILE (even a FILE gone with its mount),
# swapoff and detach it.
attach_loop ()
{
  local file=$1
  shift
  loop=$(losetup -f --show "$@" "$file")
  at_exit "detach_loop '$loop' '$file'"
}
detach_loop ()
{
  case $(losetup -n -O BACK-FILE "$1" 2>/dev/null) in
    "$2" | "$2 (deleted)") swapoff "$1" 2>/dev/null; losetup -d "$1" ;;
  esac
}

# sgblk_stats KEY: "ORIGINAL COMPRESSED USED" bytes from the cache line
# sgblkd KEY logs on SIGUSR1.
sgblk_stats ()
{
  local n i
  n=$(grep -c 'memory used' "$tmp/$1.log" || true)
  kill -USR1 "${pid[$1]}"
  for i in $(seq 50); do
    [ "$(grep -c 'memory used' "$tmp/$1.log" || true)" -gt "$n" ] && break
    sleep 0.1
  done
  grep 'memory used' "$tmp/$1.log" | tail -n 1 |
    sed -E 's/.*original ([0-9]+) B compressed ([0-9]+) B memory used ([0-9]+) B.*/\1 \2 \3/'
}

# --- fio ------------------------------------------------------------------

# Options every write carries: empty (fio's random, incompressible data)
# unless a section sets it.
fio_data=()

# fill KEY: write the whole disk once, so that reads hit data.
fill ()
{
  local -a t
  read -ra t <<<"${target[$1]}"
  wait_fg fio --name=fill "${t[@]}" --rw=write --bs=1M --iodepth=4 ${fio_data[@]+"${fio_data[@]}"} \
      --output="$tmp/fill.out" >/dev/null
}
fill_all () { local key; for key in "${servers[@]}"; do fill "$key"; done; }

# The workloads of the NBD sections ("LABEL|RW|BS|FIO OPTIONS"; see bench).
nbd_workloads=(
  "4k random read|randread|4k"
  "4k random write|randwrite|4k"
  "1M sequential write|write|1M"
  "1M sequential read|read|1M"
)

# settle ROOT PIDS: up to 3 s for ROOT's tree to be down to PIDS again
# (nbd-server serves each connection in a child process, whose time
# joins its parent's once reaped); leaves the last snap.
settle ()
{
  local i p extra
  for i in $(seq 30); do
    snap "$1"
    extra=0
    for p in $snap_pids; do
      case $2 in *" $p "*) ;; *) extra=1 ;; esac
    done
    [ "$extra" = 0 ] && return 0
    sleep 0.1
  done
}

# unit BS: IOPS for small blocks, MB/s for 1M ones.
unit () { case $1 in 1M) echo MB/s ;; *) echo IOPS ;; esac; }

# measure KEY RW BS [FIO OPTIONS...]: one fio run of $runtime s at queue
# depth 16 against KEY; sets $res to "RATE CPU": RATE in unit BS, CPU the
# server's microseconds of CPU per completed I/O.  (Not in a subshell:
# the clean-up must know fio.)
measure ()
{
  local key=$1 rw=$2 bs=$3 before t0 u
  local -a t
  shift 3
  read -ra t <<<"${target[$key]}"
  u=$(unit "$bs")
  snap "${pid[$key]}"
  before=$snap_pids t0=$snap_ticks
  wait_fg fio --name=bench "${t[@]}" --rw="$rw" --bs="$bs" --iodepth=16 --time_based \
      --runtime="$runtime" --group_reporting "$@" ${fio_data[@]+"${fio_data[@]}"} \
      --output-format=json --output="$tmp/fio.json" >/dev/null
  settle "${pid[$key]}" "$before"
  res=$(jq -r --argjson ticks $((snap_ticks - t0)) --argjson hz "$hz" --arg unit "$u" '
    .jobs[0] | (.read.total_ios + .write.total_ios) as $n
    | (if $unit == "IOPS" then .read.iops + .write.iops
       else (.read.bw_bytes + .write.bw_bytes) / 1e6 end) as $rate
    | "\($rate) \($ticks / $hz * 1e6 / $n)"' "$tmp/fio.json")
}

# --- Sections -------------------------------------------------------------

# The machine, the date, the command and the programs compared.
stamp ()
{
  local cpu ram
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  ram=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
  echo "$(date -u +%F) · ${cpu:-unknown CPU}, $(nproc) cores, $ram GiB RAM, Linux $(uname -r)"
}
versions ()
{
  # (sed -n 1p, not head: a program writing into a closed pipe fails.)
  local v=() rev
  v+=("$("$SGBLKD" --version | sed -n 1p)")
  rev=$(git -C "$bench_dir" describe --always --dirty 2>/dev/null || true)
  [ -n "$rev" ] && v[0]+=" ($rev)"
  command -v nbdkit >/dev/null && v+=("$(nbdkit --version | sed -n 1p)")
  command -v nbdfuse >/dev/null && v+=("$(nbdfuse --version | sed -n 1p)")
  command -v qemu-nbd >/dev/null && v+=("$(qemu-nbd --version | sed -n '1s/ (.*//p')")
  command -v nbd-server >/dev/null && v+=("$(nbd-server -V 2>&1 | sed -n 's/.*version /nbd-server /p')")
  v+=("$(fio --version)")
  local IFS=,
  echo "${v[*]}" | sed 's/,/, /g'
}
header ()
{
  echo "$(stamp) · \`$BENCH_CMD\` (ROUNDS=$rounds, RUNTIME=$runtime s, BENCH_QUICK=$quick)"
  echo
  : "${BENCH_VERSIONS:=$(versions)}"
  echo "Versions: $BENCH_VERSIONS."
}

# section NAME TITLE: start $out/NAME.md (written at the end, whole).
section ()
{
  name=$1
  title=$2
  md=$tmp/$name.md
  { echo "## $title"; echo; header; echo; } >"$md"
  at_exit "section_end"
}
# say TEXT...: a paragraph of the section.
say () { { echo "$*"; echo; } >>"$md"; }
section_end ()
{
  [ -s "$md" ] || return 0
  if [ "$_section_ok" = 1 ]; then
    mkdir -p "$out"
    cp "$md" "$out/$name.md"
    cat "$md"
  fi
}
_section_ok=0
section_done () { _section_ok=1; }

# bench: every workload of $workloads (entries "LABEL|RW|BS|FIO OPTIONS")
# against every server of $servers (keys; the first is sgblk), servers
# alternating within each round, $rounds rounds.  Appends the table of
# medians with CPU per I/O and the ratios of the first server to each
# other one, and the two plots; leaves the medians in $tmp/$name.dat
# (LABEL, UNIT, a rate per server, a CPU per I/O per server).
bench ()
{
  local r i key wl rw bs opts
  local -a o
  : >"$tmp/$name.raw"
  for r in $(seq "$rounds"); do
    for i in "${!workloads[@]}"; do
      IFS='|' read -r wl rw bs opts <<<"${workloads[$i]}"
      read -ra o <<<"$opts"
      for key in "${servers[@]}"; do
        measure "$key" "$rw" "$bs" ${o[@]+"${o[@]}"}
        echo "$i $key $res" >>"$tmp/$name.raw"
      done
    done
  done
  for i in "${!workloads[@]}"; do
    IFS='|' read -r wl rw bs opts <<<"${workloads[$i]}"
    printf '%s\t%s\n' "$wl" "$(unit "$bs")"
  done >"$tmp/$name.labels"
  stats -v keys="${servers[*]}" -v nw=${#workloads[@]} '
    END {
      ns = split(keys, key, " ")
      for (i = 0; i < nw; i++) {
        line = ""
        for (f = 3; f <= 4; f++) for (s = 1; s <= ns; s++) line = line (line == "" ? "" : "\t") med(i " " key[s], f)
        print line
      }
    }' "$tmp/$name.raw" | paste "$tmp/$name.labels" - >"$tmp/$name.dat"
  table
  spread
  plot
}

# stats [AWK OPTIONS] PROGRAM FILE: runs PROGRAM over FILE, whose lines
# are "WORKLOAD KEY FIGURE...", one a round, with med(WORKLOAD " " KEY, F),
# the median of field F, and lo[K, F], hi[K, F] and n[K] at hand.
stats ()
{
  local prog=${@: -2:1} file=${@: -1}
  awk "${@:1:$#-2}" '
    function med(k, f,   m, i, j, t, a) {
      m = n[k]
      for (i = 1; i <= m; i++) a[i] = v[k, i, f]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    {
      k = $1 " " $2; n[k]++
      for (f = 3; f <= NF; f++) {
        x = $f + 0
        v[k, n[k], f] = x
        if (n[k] == 1 || x < lo[k, f]) lo[k, f] = x
        if (n[k] == 1 || x > hi[k, f]) hi[k, f] = x
      }
    }
  '"$prog" "$file"
}

# The ratio columns: $ratios, pairs "KEY:KEY" of servers, if the section
# sets it; else the first server to each other one.
table ()
{
  local key n=${#servers[@]} pair a b i pairs=()
  local -A index
  for i in "${!servers[@]}"; do index[${servers[$i]}]=$i; done
  if [ -n "${ratios+set}" ]; then
    for pair in "${ratios[@]}"; do pairs+=("${index[${pair%%:*}]}:${index[${pair##*:}]}"); done
  else
    for i in $(seq 1 $(( n - 1 ))); do pairs+=("0:$i"); done
  fi
  {
    printf '| workload (QD16, median of %d) |' "$rounds"
    for key in "${servers[@]}"; do printf ' %s |' "${label[$key]}"; done
    for pair in "${pairs[@]}"; do
      a=${servers[${pair%%:*}]} b=${servers[${pair##*:}]}
      printf ' %s / %s |' "${label[$a]}" "${label[$b]}"
    done
    printf '\n| --- |'
    for i in $(seq $(( n + ${#pairs[@]} ))); do printf ' ---: |'; done
    echo
    awk -F'\t' -v n="$n" -v pairs="${pairs[*]}" '
      function fig(u, v) { return sprintf(u == "MB/s" ? "%.0f MB/s" : "%.0f IOPS", v) }
      function ratio(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "n/a" }
      BEGIN { np = split(pairs, pr, " ") }
      {
        printf "| %s |", $1
        for (s = 0; s < n; s++) printf " %s, %.1f µs/IO |", fig($2, $(3 + s)), $(3 + n + s)
        for (p = 1; p <= np; p++) {
          split(pr[p], ab, ":")
          printf " %s, CPU/IO %s |", ratio($(3 + ab[1]), $(3 + ab[2])), ratio($(3 + n + ab[1]), $(3 + n + ab[2]))
        }
        print ""
      }' "$tmp/$name.dat"
    echo
  } >>"$md"
  say "CPU/IO is the server's user + system time over the run (every thread," \
      "and for a stack of processes all of them) divided by the I/Os fio" \
      "completed; fio's own time is not counted."
}

# spread: the widest spread of a rate between rounds, (max - min) / median.
spread ()
{
  [ "$rounds" -gt 1 ] || return 0
  local worst wl
  worst=$(stats '
    END {
      for (k in n) {
        m = med(k, 3)
        s = m > 0 ? (hi[k, 3] - lo[k, 3]) / m : 0
        if (which == "" || s > best) { best = s; which = k }
      }
      printf "%.0f %s\n", best * 100, which
    }' "$tmp/$name.raw")
  set -- $worst
  IFS='|' read -r wl _ <<<"${workloads[$2]}"
  say "Widest spread between rounds: $1 % of the median ($wl, ${label[$3]})."
}

# plot: $out/$name-speed.png and $out/$name-cpu.png, clustered bars, a
# panel per unit (IOPS, MB/s).
plot ()
{
  command -v gnuplot >/dev/null || { say "(No plots: gnuplot is not installed, Debian package gnuplot-nox.)"; return 0; }
  local n=${#servers[@]} kind first u p units=() key s
  mapfile -t units < <(cut -f2 "$tmp/$name.dat" | awk '!seen[$0]++')
  for kind in speed cpu; do
    first=3
    [ "$kind" = cpu ] && first=$((3 + n))
    {
      echo "set terminal pngcairo size $((160 + 240 * ${#workloads[@]})),480 font ',9'"
      echo "set output '$out/$name-$kind.png'"
      echo "set datafile separator '\t'"
      echo "set style data histograms"
      echo "set style histogram clustered gap 1"
      echo "set style fill solid 0.85 border -1"
      echo "set yrange [0:*]"
      echo "set grid ytics"
      echo "set key below"
      echo "set xtics noenhanced"
      echo "set multiplot layout 1,${#units[@]} title \"$title\\n$(stamp)\" noenhanced"
      for p in "${!units[@]}"; do
        u=${units[$p]}
        awk -F'\t' -v u="$u" '$2 == u' "$tmp/$name.dat" >"$tmp/$name.$kind.$p.dat"
        if [ "$kind" = speed ]; then echo "set ylabel '$u'"; else echo "set ylabel 'server CPU µs per I/O'"; fi
        printf "plot "
        for s in $(seq 0 $((n - 1))); do
          key=${servers[$s]}
          [ "$s" -gt 0 ] && printf ", "
          printf "'%s' using %d%s title '%s' noenhanced" "$tmp/$name.$kind.$p.dat" $((first + s)) \
            "$([ "$s" = 0 ] && echo ':xtic(1)')" "${label[$key]}"
        done
        echo
      done
      echo "unset multiplot"
    } >"$tmp/$name.$kind.gp"
    mkdir -p "$out"
    gnuplot "$tmp/$name.$kind.gp"
  done
  say "![$title: rates]($name-speed.png) ![$title: CPU per I/O]($name-cpu.png)"
}
