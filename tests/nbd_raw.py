# A deliberately minimal, misbehaving NBD client for sgblk's tests: it
# speaks just enough of the fixed newstyle handshake to reach the
# transmission phase, so that tests can break the protocol on purpose.
import socket
import struct

NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
OPT_EXPORT_NAME = 1
REQUEST_MAGIC = 0x25609513
CMD_READ, CMD_WRITE, CMD_DISC = 0, 1, 2


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def handshake(s, name=b""):
    """Fixed newstyle with NO_ZEROES, then NBD_OPT_EXPORT_NAME; returns
    (size, transmission flags)."""
    magic, opt, gflags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad server greeting"
    s.sendall(struct.pack(">I", 3))           # FIXED_NEWSTYLE | NO_ZEROES
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_EXPORT_NAME, len(name)) + name)
    size, tflags = struct.unpack(">QH", recv_exact(s, 10))
    return size, tflags


def request(s, cmd, offset, length, cookie=1, flags=0):
    s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie,
                          offset, length))
