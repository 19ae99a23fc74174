#!/usr/bin/env bash
# A read-only export says so in its flags and refuses every write-type
# command with EPERM, leaving the file untouched.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh nbdinfo

head -c 1M /dev/urandom >"$tmp/disk.img"
cp "$tmp/disk.img" "$tmp/orig.img"
chmod a-w "$tmp/disk.img"
start_sgblkd ro -r "$tmp/disk.img"
nbdinfo --json "$uri" | jq -e '.exports[0].is_read_only == true' >/dev/null || fail "not flagged read-only"
nbdsh -u "$uri" -c '
import errno
h.set_strict_mode(0)
for name, f in (("write", lambda: h.pwrite(b"y" * 4096, 0)),
                ("trim", lambda: h.trim(4096, 0)),
                ("zero", lambda: h.zero(4096, 0))):
    try:
        f()
        raise AssertionError(name + " succeeded on a read-only export")
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, (name, e.errno)
data = h.pread(1048576, 0)
assert data == open("'"$tmp"'/orig.img", "rb").read()
'
stop_sgblkd ro
cmp "$tmp/disk.img" "$tmp/orig.img" || fail "read-only file changed"
