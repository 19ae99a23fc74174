/* serial-bridge: runs inside the test guest.  Bridges a virtio-serial port
 * (whose host end is a qemu chardev connected to sgblkd's Unix socket) to
 * a Unix socket that nbd-client can connect to, so the guest needs no
 * network.  One client at a time: a port is one byte stream.
 *
 *   serial-bridge /dev/vport0p1 /tmp/nbd.sock
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int
pump (int from, int to)
{
  char buf[65536];
  ssize_t n = read (from, buf, sizeof buf);
  if (n <= 0)
    return -1;
  for (ssize_t off = 0; off < n; ) {
    ssize_t w = write (to, buf + off, (size_t) (n - off));
    if (w <= 0)
      return -1;
    off += w;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int port, lfd, cfd;

  if (argc != 3 || strlen (argv[2]) >= sizeof sa.sun_path) {
    fprintf (stderr, "usage: serial-bridge PORT SOCKET\n");
    return 2;
  }
  port = open (argv[1], O_RDWR);
  if (port == -1) {
    perror (argv[1]);
    return 1;
  }
  strcpy (sa.sun_path, argv[2]);
  unlink (argv[2]);
  lfd = socket (AF_UNIX, SOCK_STREAM, 0);
  if (lfd == -1 || bind (lfd, (struct sockaddr *) &sa, sizeof sa) == -1 ||
      listen (lfd, 1) == -1) {
    perror (argv[2]);
    return 1;
  }
  cfd = accept (lfd, NULL, NULL);
  if (cfd == -1) {
    perror ("accept");
    return 1;
  }
  for (;;) {
    struct pollfd p[2] = { { port, POLLIN, 0 }, { cfd, POLLIN, 0 } };
    if (poll (p, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      return 1;
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && pump (port, cfd) == -1)
      return 0;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && pump (cfd, port) == -1)
      return 0;
  }
}
