#!/usr/bin/env bash
# NBD servers of a file: sgblkd FILE (with its compressed write-back
# cache, large enough to hold the file), qemu-nbd with its default cache
# (the page cache) and nbd-server, each on its own preallocated file in
# /tmp, made the same way, each filled through its server first.  fio's
# nbd engine, one connection over a Unix socket, queue depth 16.
#
#   contrib/bench/nbd-file.sh [ROUNDS] [RUNTIME]
#
# Writes nbd-file.md and its plots into BENCH_OUT.
. "$(dirname "$0")/common.sh"
need fio fio
need qemu-utils qemu-nbd
need nbd-server nbd-server

section nbd-file "NBD, a file in /tmp: sgblkd FILE against qemu-nbd and nbd-server"
for key in sg qn ns; do fallocate -l "$size" "$tmp/$key.img"; done
cache=$(( $(numfmt --from=iec "$size") * 2 >> 20 ))M

serve_nbd sg sgblk "$tmp/sg.sock" "$SGBLKD" -f -U "$tmp/sg.sock" --cache-size "$cache" "$tmp/sg.img"
serve_nbd qn qemu-nbd "$tmp/qn.sock" qemu-nbd -f raw -t --shared=8 -k "$tmp/qn.sock" "$tmp/qn.img"

# nbd-server forks into the background (told not to, it serves a single
# client): its PID comes from its pidfile.  It names exports by their
# section, and listens only on its Unix socket (unixsock).
cat >"$tmp/ns.conf" <<CONF
[generic]
unixsock = $tmp/ns.sock
[disk]
exportname = $tmp/ns.img
CONF
label[ns]=nbd-server
nbd-server -C "$tmp/ns.conf" -p "$tmp/ns.pid" >"$tmp/ns.log" 2>&1 || { cat "$tmp/ns.log" >&2; exit 1; }
for i in $(seq 100); do [ -s "$tmp/ns.pid" ] && break; sleep 0.1; done
served ns "$(cat "$tmp/ns.pid")"
wait_until ns test -S "$tmp/ns.sock"
nbd_target ns "$tmp/ns.sock" disk

servers=(sg qn ns)
fill_all

workloads=("${nbd_workloads[@]}")
say "Each server has its own $size file, made by \`fallocate\` in a" \
    "\`mktemp -d\` directory in /tmp ($(df --output=fstype /tmp | tail -n 1)), filled through the server" \
    "with fio's incompressible data first.  \`sgblkd --cache-size $cache FILE\`" \
    "(write-back), \`qemu-nbd -f raw -t --shared=8 -k SOCKET FILE\`, nbd-server" \
    "with a configuration file holding the export and \`unixsock\`;" \
    "fio's nbd engine, one connection over a Unix socket.  nbd-server" \
    "serves each connection in a child process: its CPU time is counted."
bench
section_done
