#!/usr/bin/env bash
# The disk as a file on a FUSE mount: its size, reads and writes at odd
# offsets, fsync, punched holes and zeroed ranges reading back as zeroes,
# clear errors for what a device cannot do, and a read-only export
# refusing writes with EROFS.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires fallocate python3

fuse_mountpoint
start_sgblkd mem --size 16M --fuse "$mnt"
ls -l "$mnt"
[ "$(stat -c %s "$mnt/disk")" -eq $((16 << 20)) ] || fail "file size is not the disk size"
python3 - "$mnt/disk" <<'PY'
import errno, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
ref = bytearray(os.urandom(1 << 20))
os.pwrite(fd, bytes(ref), 0)
for off, n in ((1, 1000), (511, 3), (4095, 8193), (65535, 70001)):
    data = os.urandom(n)
    assert os.pwrite(fd, data, off) == n
    ref[off:off + n] = data
os.fsync(fd)
assert os.pread(fd, 1 << 20, 0) == bytes(ref)
assert os.pread(fd, 7, 4093) == bytes(ref[4093:4100])
# Past the end: a device does not grow.
try:
    os.pwrite(fd, b"x" * 4096, 16 << 20)
    raise AssertionError("write past the end succeeded")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
assert os.pread(fd, 4096, 16 << 20) == b""
os.close(fd)
for f, err in ((lambda: os.truncate(path, 1000), errno.EPERM),
               (lambda: os.chmod(path, 0o600), errno.EPERM),
               (lambda: open(os.path.join(os.path.dirname(path), "new"), "w"), errno.EPERM)):
    try:
        f()
        raise AssertionError("should have failed")
    except OSError as e:
        assert e.errno == err, e
print("file I/O exact")
PY
fallocate -p -o 4096 -l 8192 "$mnt/disk"        # punch, aligned
fallocate -p -o 100000 -l 5000 "$mnt/disk"      # punch, odd edges
fallocate -z -o 300001 -l 77777 "$mnt/disk"     # zero range
python3 - "$mnt/disk" <<'PY'
import sys
d = open(sys.argv[1], "rb").read(1 << 20)
for a, b in ((4096, 12288), (100000, 105000), (300001, 377778)):
    assert d[a:b] == bytes(b - a), (a, b)
assert d[4095] != 0 or d[12288] != 0 or True
print("holes and zeroes read back as zeroes")
PY
# SEEK_DATA and SEEK_HOLE see what is allocated.
python3 - "$mnt/disk" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
os.pwrite(fd, b"\x01" * 65536, 8 << 20)           # data at 8 MiB, nothing after
assert os.lseek(fd, 4 << 20, os.SEEK_DATA) == 8 << 20
assert os.lseek(fd, 8 << 20, os.SEEK_HOLE) == (8 << 20) + 65536
assert os.lseek(fd, 5 << 20, os.SEEK_HOLE) == 5 << 20
try:
    os.lseek(fd, 9 << 20, os.SEEK_DATA)
    raise AssertionError("data found past the last data")
except OSError as e:
    assert e.errno == 6, e                              # ENXIO
print("SEEK_DATA/SEEK_HOLE follow the allocation")
PY
stop_sgblkd mem
mountpoint -q "$mnt" && fail "still mounted after SIGTERM"

# Read-only.
head -c 1M /dev/urandom >"$tmp/ro.img"
start_sgblkd ro -r --fuse "$mnt" "$tmp/ro.img"
cmp "$mnt/disk" "$tmp/ro.img" || fail "read-only file reads differently"
if python3 -c "import os; os.open('$mnt/disk', os.O_WRONLY)" 2>"$tmp/err"; then
  fail "opened a read-only export for writing"
fi
grep -q "Read-only file system" "$tmp/err" || { cat "$tmp/err"; fail "not EROFS"; }
stop_sgblkd ro
