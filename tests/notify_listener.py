#!/usr/bin/env python3
"""Stand in for systemd's notification socket: notify_listener.py SOCKET
LOG [NBD_SOCKET [FILE]]

Binds the datagram socket SOCKET (for NOTIFY_SOCKET) and writes each
message to LOG, one line a field, prefixed by the sender's PID ("PID
FIELD=VALUE").  On READY=1 it checks at once what readiness promises:
NBD_SOCKET answers with the NBD greeting, and FILE (the FUSE file)
exists; it logs "checked: ..." with what it found.  Runs until killed.
"""
import os
import socket
import struct
import sys

path, log = sys.argv[1], sys.argv[2]
nbd_sock = sys.argv[3] if len(sys.argv) > 3 else None
file = sys.argv[4] if len(sys.argv) > 4 else None

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(path)
out = open(log, "a", buffering=1)
ucred = struct.calcsize("3i")
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(ucred))
    pid = 0
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("3i", data[:ucred])[0]
    lines = msg.decode(errors="replace").splitlines()
    checks = []
    if "READY=1" in lines:
        if nbd_sock:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            try:
                c.connect(nbd_sock)
                greeting = c.recv(8)
            except OSError as e:
                greeting = str(e).encode()
            c.close()
            checks.append("greeting=" + greeting.decode(errors="replace"))
        if file:
            checks.append("file=" + ("yes" if os.path.exists(file) else "no"))
    for line in lines:
        out.write("%d %s\n" % (pid, line))
    if checks:
        out.write("checked: %s\n" % " ".join(checks))
