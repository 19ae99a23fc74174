#!/usr/bin/env bash
# Someone truncates the backing file under a running daemon: reads of the
# missing range get EIO (not zeroes), the range still there reads right,
# writes past the end fail rather than extend the file, the daemon says
# so in one log line, and the file keeps the size the truncation left.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

for mode in writeback off; do
  random_file "$tmp/disk.img" 8
  cp "$tmp/disk.img" "$tmp/want"
  start_sgblkd "$mode" --cache-mode "$mode" "$tmp/disk.img"
  truncate -s 3M "$tmp/disk.img"
  nbdsh -u "$uri" -c "$nbd_expect" -c '
want = open("'"$tmp/want"'", "rb").read()
expect(errno.EIO, h.pread, 65536, 5 << 20)
expect(errno.EIO, h.pread, 8192, (3 << 20) - 4096)     # straddles the end
assert h.pread(65536, (3 << 20) - 65536) == want[(3 << 20) - 65536:3 << 20]
if "'"$mode"'" == "off":
    expect(errno.EIO, h.pwrite, b"x" * 4096, 6 << 20)
expect(errno.EIO, h.pread, 4096, 7 << 20)
'
  sleep 1.5                     # the daemon reports once a second
  stop_sgblkd "$mode"
  [ "$(stat -c %s "$tmp/disk.img")" = $((3 << 20)) ] ||
    fail "$mode: the daemon changed the file's size to $(stat -c %s "$tmp/disk.img")"
  cmp -n $((3 << 20)) "$tmp/disk.img" "$tmp/want" || fail "$mode: the data left changed"
  [ "$(grep -c "the file shrank under the daemon to 3145728 bytes" "$tmp/$mode.log")" = 1 ] ||
    { cat "$tmp/$mode.log"; fail "$mode: not one log line about the shrunken file"; }
  echo "$mode: EIO past the new end, the rest intact, the size left alone, one log line"
done

# Behind the write-back cache a write past the end is accepted, then
# cannot be written back: FLUSH fails, and so does the exit, and the
# file is still not extended.
random_file "$tmp/disk.img" 8
start_sgblkd dirty "$tmp/disk.img"
truncate -s 3M "$tmp/disk.img"
nbdsh -u "$uri" -c "$nbd_expect" -c '
h.pwrite(b"x" * 4096, 6 << 20)
expect(errno.EIO, h.flush)
'
kill -TERM "$pid_dirty"
wait "$pid_dirty" && fail "sgblkd exited 0 with a block it could not write back"
[ "$(stat -c %s "$tmp/disk.img")" = $((3 << 20)) ] || fail "write-back extended the file"
echo "write-back: a dirty block past the end fails FLUSH and exit, and never extends the file"
