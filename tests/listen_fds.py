#!/usr/bin/env python3
"""Run a command as systemd's socket activation would, with sockets a test
chooses, good or bad: listen_fds.py SPEC... -- COMMAND [ARGS...]

Each SPEC becomes descriptor 3, 4, ... in COMMAND, with LISTEN_FDS and
LISTEN_PID set (the PID is ours: exec keeps it) and LISTEN_FDNAMES:
  unix:PATH        a listening Unix stream socket
  tcp:PORT         a listening TCP socket on 127.0.0.1:PORT
  dgram:PATH       a Unix datagram socket (not a stream)
  unlistened:PATH  a bound Unix stream socket nobody called listen on
  file:PATH        a regular file (not a socket)
LISTEN_PID=other:  before the SPECs: the variables name another PID.
"""
import os
import socket
import sys


def make(spec):
    kind, _, arg = spec.partition(":")
    if kind in ("unix", "unlistened", "dgram"):
        t = socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_UNIX, t)
        s.bind(arg)
        if kind == "unix":
            s.listen(16)
        return s.detach()
    if kind == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(arg)))
        s.listen(16)
        return s.detach()
    if kind == "file":
        return os.open(arg, os.O_RDWR | os.O_CREAT, 0o600)
    sys.exit("listen_fds.py: unknown socket spec " + spec)


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    specs, cmd = args[:sep], args[sep + 1:]
    pid = os.getpid()
    if specs and specs[0] == "LISTEN_PID=other:":
        specs, pid = specs[1:], 1
    fds = [make(s) for s in specs]
    # Move them to 3, 4, ... (above every target first, so none is lost).
    high = [os.dup(fd) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)
    env = dict(os.environ, LISTEN_PID=str(pid), LISTEN_FDS=str(len(fds)),
               LISTEN_FDNAMES=":".join(s.partition(":")[0] for s in specs))
    os.execvpe(cmd[0], cmd, env)


main()
