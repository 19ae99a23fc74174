#!/usr/bin/env bash
# Writes and reads of every power of two from 512 B to the advertised
# maximum (32 MiB), and of 32 MiB - 1, at offsets 0, 1 and 4095, round-trip
# over NBD with nbdsh and with qemu-io, on the in-memory disk and on a
# file behind the cache: the largest request the server advertises is one
# it serves.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh qemu-io

check_sizes () {
  # nbdsh sends the unaligned requests as they are (the server
  # read-modify-writes their edges); qemu-io aligns them to the advertised
  # minimum itself, as a kernel would.
  nbdsh -c '
import os
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri("'"$uri"'")
max_len = h.get_block_size(nbd.SIZE_MAXIMUM)
assert max_len == 32 << 20, "advertised maximum %d" % max_len
sizes = [1 << i for i in range(9, 26)] + [max_len - 1]
n = 0
for off in (0, 1, 4095):
    for size in sizes:
        data = os.urandom(size)
        h.pwrite(data, off)
        got = h.pread(size, off)
        assert got == data, "%d bytes at %d did not round-trip" % (size, off)
        n += 1
print("nbdsh: %d sizes round-tripped, the largest %d bytes" % (n, max(sizes)))
'
  local off size pat=0 n=0
  for off in 0 1 4095; do
    for size in $(for i in $(seq 9 25); do echo $((1 << i)); done) $(((32 << 20) - 1)); do
      pat=$(( (pat + 37) % 251 + 1 ))
      qemu-io -f raw "$uri" -c "write -P $pat $off $size" -c "read -P $pat $off $size" \
        >"$tmp/qemu-io.out" 2>&1 || { cat "$tmp/qemu-io.out"; fail "qemu-io: $size bytes at $off"; }
      grep -q "Pattern verification failed" "$tmp/qemu-io.out" && {
        cat "$tmp/qemu-io.out"; fail "qemu-io: $size bytes at $off read back wrong"; }
      n=$((n + 1))
    done
  done
  echo "qemu-io: $n sizes round-tripped"
}

start_sgblkd mem --size 64M
check_sizes
stop_sgblkd mem

start_sgblkd file --create --size 64M "$tmp/disk.img"
check_sizes
stop_sgblkd file
