#!/usr/bin/env bash
# SIGHUP re-reads the --config file while clients are connected:
# - an unchanged export keeps its clients, on the same connections;
# - a removed export refuses new clients, serves the ones it has, and is
#   closed (its cache flushed to its file) when the last one leaves;
# - an added export is served at once; a changed one once its old
#   version's last client has left;
# - a file with an error is rejected with its line number, and the
#   running exports stay as they were.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh nbdinfo

conf=$tmp/sgblkd.conf
cat >"$conf" <<CONF
[keep]
size = 64M
description = stays

[gone]
file = $tmp/gone.img
create = yes
size = 64M
CONF
start_sgblkd cfg --config "$conf"
sock=$tmp/cfg.sock

nbdsh -c 'import os, signal, subprocess, time' -c '
sock, conf, log, pid = "'"$sock"'", "'"$conf"'", "'"$tmp/cfg.log"'", '"$pid_cfg"'
def uri(name): return "nbd+unix:///%s?socket=%s" % (name, sock)
def connect(name):
    h = nbd.NBD(); h.connect_uri(uri(name)); return h
def reload(expect):
    n = open(log).read().count(expect)
    os.kill(pid, signal.SIGHUP)
    for _ in range(100):
        if open(log).read().count(expect) > n: return
        time.sleep(0.1)
    raise AssertionError("no \"%s\" in the log after SIGHUP" % expect)
def names():
    out = subprocess.run(["nbdinfo", "--list", "--json", uri("")], capture_output=True, check=True).stdout
    import json
    return sorted(e["export-name"] for e in json.loads(out)["exports"])

keep, gone = connect("keep"), connect("gone")
a, b = os.urandom(1 << 20), os.urandom(1 << 20)
keep.pwrite(a, 0)
gone.pwrite(b, 4096)                 # in its cache: not flushed yet

# Remove "gone", add "added", leave "keep" alone.
text = open(conf).read().split("[gone]")[0] + "[added]\nsize = 32M\ndescription = new\n"
open(conf, "w").write(text)
reload("reloaded: 1 export unchanged, 1 added, 0 changed, 1 removed")
assert names() == ["added", "keep"], names()
try:
    connect("gone"); raise AssertionError("a removed export took a new client")
except nbd.Error:
    pass
assert connect("added").get_size() == 32 << 20

# The connections made before the reload carry on.
assert keep.pread(len(a), 0) == a
assert gone.pread(len(b), 4096) == b
gone.pwrite(b[::-1], 8 << 20)
assert "export \x27gone\x27 closed" not in open(log).read()
gone.shutdown()
for _ in range(50):
    if "export \x27gone\x27 closed: flushed" in open(log).read(): break
    time.sleep(0.1)
else:
    raise AssertionError("the removed export was not closed after its last client left")
with open("'"$tmp/gone.img"'", "rb") as f:
    f.seek(4096); assert f.read(len(b)) == b, "data written before the reload was lost"
    f.seek(8 << 20); assert f.read(len(b)) == b[::-1], "data written after the reload was lost"

# A file with an error: rejected, nothing changes.
open(conf, "a").write("\n[broken\n")
reload("not reloaded")
assert names() == ["added", "keep"], names()
assert keep.pread(len(a), 0) == a

# A changed export: its old version serves its client to the end, then
# the new one takes the name.
old = connect("added")
open(conf, "w").write(text.replace("size = 32M", "size = 48M"))
reload("1 export unchanged, 0 added, 1 changed, 0 removed")
assert old.get_size() == 32 << 20 and old.pread(4096, 0) == bytes(4096)
old.shutdown()
for _ in range(50):
    if open(log).read().count("as export 'added'") == 2: break
    time.sleep(0.1)
assert connect("added").get_size() == 48 << 20
keep.shutdown()
' || fail "the reload did not keep, remove and add exports as it should"
grep -q "not reloaded, the running exports are kept: $conf:9: a section header is \[NAME\]" "$tmp/cfg.log" ||
  fail "the rejected file's error does not name its line: $(grep 'not reloaded' "$tmp/cfg.log")"
stop_sgblkd cfg
