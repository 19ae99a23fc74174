#!/usr/bin/env bash
# Every option of sgblkd --help with good, edge and nonsense values.
#
# The test is a table: one row a command line and what must come of it.
#   serve ARGS...     exit 0: starts, answers nbdinfo on a Unix socket the
#                     row runner adds, and exits 0 on SIGTERM
#   detach ARGS...    exit 0 without -f: the parent returns once the
#                     daemon serves; the daemon (found by its pidfile)
#                     answers and exits on SIGTERM
#   quit ARGS...      exit 0 at once (--help, --version)
#   usage ARGS...     exit 2: one line on stderr, nothing on stdout
#   runtime ARGS...   exit 1: one line on stderr, nothing on stdout
# A refused command line also prints no counters: a daemon that never
# served has none to report.  Arguments are words; $tmp and the files made
# below are expanded when the row is read.  Starting a daemon costs a
# fraction of a second, so serving rows are few: most of the table is
# values that must be refused.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo timeout

rows=0
counters='info: (nbd|scsi|cmd pool|sgv pool|store [a-z-]+|cache [a-z-]+):'

# one_line_refusal WANT ARGS...: run in the foreground; check the status
# and that stderr is exactly one line naming the program.  (Shell
# builtins only: a process per check would double the test's time.)
one_line_refusal ()
{
  local want=$1 status=0 err out; shift
  timeout 10 "$SGBLKD" -f "$@" >"$tmp/row.out" 2>"$tmp/row.err" || status=$?
  mapfile -t err <"$tmp/row.err"
  out=$(<"$tmp/row.out")
  [ "$status" -eq "$want" ] ||
    { printf '%s\n' "${err[@]}"; fail "row $rows: sgblkd $* exited $status, want $want"; }
  [ "${#err[@]}" -eq 1 ] ||
    { printf '%s\n' "${err[@]}"; fail "row $rows: sgblkd $*: want one line on stderr"; }
  [[ ${err[0]} == "sgblkd: "* ]] || fail "row $rows: the line does not name sgblkd"
  [ -z "$out" ] || fail "row $rows: sgblkd $* printed on stdout"
  ! [[ ${err[0]} =~ $counters ]] || fail "row $rows: counters from a daemon that never served"
}

# export_of ARGS...: the export name a row serves (for the URI).
export_of ()
{
  local name=
  while [ $# -gt 0 ]; do
    case $1 in -e|--export-name) name=$2; shift ;; esac
    shift
  done
  echo "$name"
}

serve ()
{
  rows=$((rows + 1))
  local sock=$tmp/r$rows.sock pid status=0 i
  "$SGBLKD" -f -U "$sock" "$@" >"$tmp/row.out" 2>"$tmp/row.err" &
  pid=$!
  _daemons+=("$pid")
  # (Polled finely: a daemon starts and stops in tens of milliseconds,
  # and the table starts over sixty.)
  for i in $(seq 500); do
    [ -S "$sock" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/row.err"; fail "row $rows: sgblkd $* exited at start-up"; }
    sleep 0.02
  done
  nbdinfo --size "nbd+unix:///$(export_of "$@")?socket=$sock" >/dev/null ||
    { cat "$tmp/row.err"; fail "row $rows: sgblkd $* does not answer"; }
  kill -TERM "$pid"
  for i in $(seq 500); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
  ! kill -0 "$pid" 2>/dev/null || fail "row $rows: sgblkd $* still running 10 s after SIGTERM"
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || { cat "$tmp/row.err"; fail "row $rows: sgblkd $* exited $status after SIGTERM"; }
}

detach ()
{
  rows=$((rows + 1))
  local sock=$tmp/r$rows.sock pidf=$tmp/r$rows.pid pid
  timeout 10 "$SGBLKD" -U "$sock" -P "$pidf" "$@" >"$tmp/row.out" 2>"$tmp/row.err" ||
    { cat "$tmp/row.err"; fail "row $rows: sgblkd $* did not start in the background"; }
  pid=$(cat "$pidf")
  _daemons+=("$pid")
  nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null || fail "row $rows: the detached daemon does not answer"
  kill -TERM "$pid"
  wait_for_exit "$pid" 10 || fail "row $rows: the detached daemon still runs 10 s after SIGTERM"
  [ ! -e "$pidf" ] || fail "row $rows: pidfile left behind"
}

quit ()
{
  rows=$((rows + 1))
  timeout 10 "$SGBLKD" "$@" >"$tmp/row.out" 2>"$tmp/row.err" || fail "row $rows: sgblkd $* failed"
  [ -s "$tmp/row.out" ] && [ ! -s "$tmp/row.err" ] || fail "row $rows: sgblkd $*: want stdout only"
}

usage () { rows=$((rows + 1)); one_line_refusal 2 "$@"; }
runtime () { rows=$((rows + 1)); one_line_refusal 1 "$@"; }

# Files the rows use.
img=$tmp/disk.img; truncate -s 64M "$img"
small=$tmp/small.img; truncate -s 1M "$small"
odd=$tmp/odd.img; head -c 1000 /dev/zero >"$odd"
reg=$tmp/regular; echo data >"$reg"
mkdir "$tmp/dir" "$tmp/mnt"
long108=$tmp/$(printf 'x%.0s' $(seq $((108 - ${#tmp} - 1))))
long256=$(printf 'n%.0s' $(seq 256))
long4097=$(printf 'e%.0s' $(seq 4097))
stale=$tmp/stale.sock
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$stale"

# A live daemon holds a Unix socket and a TCP port for the rows that
# must not take them over.
start_sgblkd_tcp live --size 1M -U "$tmp/live.sock"
live_port=$port

# --help and --version.
quit --help
quit -h
quit --version
quit -V
usage --help --no-such-option       # refused even with --help

# Unknown options, missing arguments, stray words.
usage --no-such-option
usage -x
usage --size
usage -U
usage --cache-mode
usage "$img" "$small"

# -s, --size
serve --size 1M
serve -s 512
serve --size 1G
serve --size 4GiB
serve --size 64G                    # memory is taken as written, not up front
usage --size 0
usage --size 1000                   # not a multiple of 512
usage --size -1
usage --size 1X
usage --size 1KB2
usage --size ''
usage --size 99999999999999999999
usage --size 17000000T              # overflows 64 bits
usage -s 4K -B 4096 -s 6K
usage --size 1M "$img"              # sets only --create's size

# --create
serve --create --size 2M "$tmp/new.img"
serve --create --size 2M "$tmp/new.img"   # exists with that size: served
runtime --create --size 4M "$tmp/new.img" # never resized
usage --create "$tmp/new2.img"            # needs --size
usage --create --size 1M                  # needs FILE
usage --create --size 1M -r "$tmp/new3.img"
runtime --create --size 1M "$tmp/no/such/dir/x.img"

# FILE itself
serve "$img"
serve -r "$small"
runtime "$tmp/missing.img"
runtime "$tmp/dir"
runtime "$odd"
runtime -B 4096 "$odd"
runtime /dev/null

# --direct (where the file system takes O_DIRECT)
if dd if=/dev/zero of="$tmp/direct-probe" bs=4096 count=1 oflag=direct 2>/dev/null; then
  serve --direct "$img"
else
  runtime --direct "$img"
fi
usage --direct
usage --direct --size 1M

# --mem-limit
serve --mem-limit 33M
serve --size 64M --mem-limit 1T     # a cap, not an allocation
serve --size 1M --mem-limit 2M      # a small disk needs less
usage --mem-limit 1
usage --mem-limit 4095
usage --mem-limit 4K
usage --mem-limit 32M               # one 32 MiB request does not fit
usage --mem-limit 0
usage --mem-limit lots
usage --mem-limit ''
usage --mem-limit 33M "$img"        # FILE has --cache-size
usage --size 1M --mem-limit 1M

# --cache-size
serve --cache-size 33M "$img"
serve --cache-size 100T "$img"      # without --swap only a cap
usage --cache-size 4K "$img"
usage --cache-size 1 "$img"
usage --cache-size 16K "$img"
usage --cache-size 32M "$img"
usage --cache-size 0 "$img"
usage --cache-size 1.5G "$img"
usage --cache-size 64M              # no FILE
usage --cache-size 64M --cache-mode off "$img"
usage --cache-size 40M --cache-block 64K "$img" --cache-size 1M

# --cache-mode
serve --cache-mode writethrough "$img"
serve --cache-mode off "$img"
serve --cache-mode writeback "$img"
usage --cache-mode sometimes "$img"
usage --cache-mode Writeback "$img"
usage --cache-mode '' "$img"
usage --cache-mode off               # no FILE

# --cache-block
serve --cache-block 64K "$img"
serve --cache-block 4096 --size 8M
usage --cache-block 2K
usage --cache-block 12K
usage --cache-block 128K
usage --cache-block 0
usage --cache-block 4k4
usage --cache-block 8K --cache-mode off "$img"

# --recompress-idle
serve --recompress-idle 0
serve --recompress-idle 32767
usage --recompress-idle 32768
usage --recompress-idle -1
usage --recompress-idle 1m
usage --recompress-idle 5 --cache-mode off "$img"

# --spill
serve --mem-limit 40M --spill "$tmp/spill"
serve --spill "$tmp/spill2"                    # limit: half of RAM or the disk
usage --spill ''
usage --spill "$tmp/spill" "$img"
runtime --mem-limit 40M --spill "$reg"         # somebody's file
runtime --mem-limit 40M --spill "$tmp/dir"
runtime --mem-limit 40M --spill "$tmp/no/such/dir/spill"

# --description and --config
printf '[]\nsize = 1M\ndescription = one\n' >"$tmp/one.conf"
printf '[a]\nsize = 1M\nport = 10810\n' >"$tmp/bad.conf"
serve --description "my disk" --size 1M
serve --description '' --size 1M
usage --description "$long4097"
serve --config "$tmp/one.conf"
serve --config "$tmp/one.conf" --read-only -t 2   # the command line's apply to every export
usage --config ''
usage --config "$tmp/one.conf" "$img"
usage --config "$tmp/one.conf" -e x
usage --config "$tmp/bad.conf"                   # a daemon-wide key in an export's section
runtime --config "$tmp/no-such.conf"
runtime --config "$tmp/dir"

# -r, --read-only
serve --read-only --size 1M
serve -r "$img"

# -B, --block-size
serve -B 4096 --size 1M
serve --block-size 512 --size 1M
usage -B 1000
usage -B 0
usage -B 8192
usage -B 4096 --size 1536
usage -B abc

# -U, --unix
serve -U "$tmp/second.sock" -U "$tmp/third.sock"
serve -U "$stale"                   # left by a daemon that died: reused
usage -U ''
usage -U "$tmp/a" -U "$tmp/b" -U "$tmp/c" -U "$tmp/d" -U "$tmp/e"
usage -U "$tmp/same" --unix "$tmp/same"
usage -U "$long108"
runtime -U "$reg"
runtime -U "$tmp/dir"
runtime -U "$tmp/live.sock"
runtime -U "$tmp/no/such/dir/s.sock"

# -p, --port and -b, --bind
serve -p "$((live_port + 1))"
serve --bind 127.0.0.1 --port "$((live_port + 2))"
usage -p 0
usage -p 65536
usage -p -1
usage -p 80x
usage -b ''
runtime -p "$live_port"
runtime -b 192.0.2.1 -p "$((live_port + 3))"  # TEST-NET: no such local address

# -e, --export-name
serve -e disk1 --size 1M
serve --export-name "$long256" --size 1M
usage -e "$long4097"
usage --fuse "$tmp/mnt" -e a/b
usage --fuse "$tmp/mnt" -e .
usage --fuse "$tmp/mnt" -e ..
usage --fuse "$tmp/mnt" -e "$long256"

# --fuse and --fuse-opt
if [ -c /dev/fuse ] && [ "$(id -u)" -eq 0 ] && command -v fusermount3 >/dev/null; then
  cleanup_fn "mountpoint -q '$tmp/mnt' && fusermount3 -u '$tmp/mnt'"
  serve --fuse "$tmp/mnt" --size 1M
  serve --fuse "$tmp/mnt" --fuse-opt allow_other -e vol --size 1M
fi
usage --fuse ''
usage --fuse-opt allow_other
usage --fuse "$tmp/mnt" --fuse-opt ''
runtime --fuse "$tmp/no-such-dir"
runtime --fuse "$reg"

# --swap
serve --swap --size 64M
serve --swap --size 64M --mem-limit 3M         # 2 MiB requests under --swap
usage --swap --mem-limit 2M
runtime --swap --mem-limit 100T
runtime --swap --cache-size 100T "$img"

# -t, --threads
serve -t 1 --size 1M
serve --threads 1024 --size 1M       # the most; slow to start on a loaded machine
usage -t 0
usage -t 1025
usage -t many

# --handshake-timeout
serve --handshake-timeout 1 --size 1M
serve --handshake-timeout 86400 --size 1M
usage --handshake-timeout 0
usage --handshake-timeout 86401
usage --handshake-timeout 5s

# --max-connections, --idle-timeout
serve --max-connections 1 --size 1M
serve --max-connections 1000000 --size 1M
usage --max-connections 0
usage --max-connections 1000001
usage --max-connections -1
usage --max-connections many
serve --idle-timeout 0 --size 1M
serve --idle-timeout 86400 --size 1M
usage --idle-timeout 86401
usage --idle-timeout -1
usage --idle-timeout 1s
usage --idle-timeout ''

# --busy-poll
serve --busy-poll 0 --size 1M
serve --busy-poll 1000000 --size 1M
usage --busy-poll 1000001
usage --busy-poll -5
usage --busy-poll ''

# --tls, --tls-certificates, --tls-psk, --tls-verify-peer (the serving
# rows offer TLS, so that the row runner's plain nbdinfo is served)
. "$top_srcdir/tests/tls-functions.sh"
make_pki; make_psk "$tmp/keys.psk" alice
serve --tls=off --size 1M
serve --tls on --tls-psk "$tmp/keys.psk" --size 1M
serve --tls=on --tls-certificates "$tmp/server" --tls-verify-peer --size 1M
usage --tls=yes
usage --tls=ON
usage --tls ''
usage --tls=require --size 1M                  # with no credentials
usage --tls-psk "$tmp/keys.psk" --size 1M      # without --tls
usage --tls-certificates "$tmp/server"
usage --tls-verify-peer
usage --tls=on --tls-psk "$tmp/keys.psk" --tls-certificates "$tmp/server"
usage --tls=on --tls-psk "$tmp/keys.psk" --tls-verify-peer
usage --tls=on --tls-psk ''
usage --tls=require --tls-certificates ''
runtime --tls=on --tls-psk "$tmp/no.psk" --size 1M
runtime --tls=on --tls-psk "$reg" --size 1M     # not USER:HEXKEY
runtime --tls=require --tls-certificates "$tmp/dir" --size 1M   # no server-cert.pem
runtime --tls=require --tls-certificates "$reg" --size 1M

# -f, -P, -v
serve -v -v --size 1M
serve --foreground --verbose --pidfile "$tmp/fg2.pid" --size 1M
serve -P "$tmp/fg.pid" --size 1M
detach --size 1M
usage -P ''
runtime -P "$tmp/no/such/dir/pid" --size 1M

# --stats-file, --stats-interval
serve --stats-file "$tmp/s1.prom" --size 1M
serve --stats-file "$tmp/s2.prom" --stats-interval 1 --size 1M
serve --stats-file "$tmp/s3.prom" --stats-interval 3600 --size 1M
detach --stats-file "$tmp/s4.prom" --size 1M
usage --stats-file ''
usage --stats-interval 5 --size 1M          # without --stats-file
usage --stats-file "$tmp/s5.prom" --stats-interval 0
usage --stats-file "$tmp/s5.prom" --stats-interval 3601
usage --stats-file "$tmp/s5.prom" --stats-interval 5s
usage --stats-file "$tmp/s5.prom" --stats-interval ''
runtime --stats-file "$tmp/no/such/dir/sgblk.prom" --size 1M
runtime --stats-file "$tmp/dir" --size 1M   # a directory

# --store-timeout and rbd: FILEs (served with a cluster in
# tests/test-rbd-*.sh; here what is refused before or without one)
printf '[global]\nmon host = v1:127.0.0.1:9\n' >"$tmp/nomon.conf"
usage --store-timeout 5 --size 1M           # not an rbd: FILE
usage --store-timeout 0 rbd:rbd/img
usage --store-timeout 86401 rbd:rbd/img
usage --store-timeout 5s rbd:rbd/img
usage --store-timeout '' rbd:rbd/img
usage --store-timeout 5 "$tmp/disk.img"
usage --create --size 1M rbd:rbd/img
usage --direct rbd:rbd/img
runtime rbd:no-image-named
runtime "rbd:rbd/img:conf=$tmp/no-such.conf"
runtime --store-timeout 1 "rbd:rbd/img:conf=$tmp/nomon.conf"

# The live daemon kept serving through every row that wanted its socket
# or port.
nbdinfo --size "nbd+unix:///?socket=$tmp/live.sock" | grep -qx 1048576 || fail "the live daemon stopped serving"
stop_sgblkd live

# Every option --help lists is in some row above.
"$SGBLKD" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u >"$tmp/opts"
for o in $(cat "$tmp/opts"); do
  grep -q -- "^[a-z]* .*$o\\b" "$0" || fail "no row tries $o"
done
echo "option table: $rows rows"
[ "$rows" -ge 100 ] || fail "the table has only $rows rows"
