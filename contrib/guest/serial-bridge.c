/* serial-bridge: runs inside the test guest.  Bridges virtio-serial ports
 * (whose host ends are qemu chardevs, each connected to sgblkd's Unix
 * socket) to a Unix socket that nbd-client can connect to, so the guest
 * needs no network.
 *
 *   serial-bridge SOCKET PORT...
 *
 * Structure: a port is one byte stream, already connected to the daemon,
 * so it can carry exactly one NBD connection.  The bridge opens every
 * port, listens on SOCKET, and hands the k-th accepted connection to the
 * k-th port: nbd-client -C N connects N times in turn, negotiating each
 * connection before opening the next, so connection k of the kernel's
 * device is port k.  Each accepted connection gets a child process that
 * copies bytes both ways (pump) until either side closes, then says how
 * many bytes went each way, which tells the test that every connection
 * carried requests; the parent stops listening once every port is taken
 * and waits for its children.
 *
 * A child is on the path of the guest's swap I/O, so it locks its memory:
 * paged out onto the very device it serves, it could never come back.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Copies what one read returns from FROM to TO and adds it to *BYTES;
 * -1 when either side is closed or fails. */
static int
pump (int from, int to, unsigned long long *bytes)
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
  *bytes += (unsigned long long) n;
  return 0;
}

/* A child's whole life: PORT <-> CONN until one of them closes. */
static int
bridge (int k, const char *name, int port, int conn)
{
  unsigned long long out = 0, in = 0;
  int status = 0;

  if (mlockall (MCL_CURRENT | MCL_FUTURE) == -1)
    perror ("serial-bridge: mlockall");
  for (;;) {
    struct pollfd p[2] = { { port, POLLIN, 0 }, { conn, POLLIN, 0 } };
    if (poll (p, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      perror ("serial-bridge: poll");
      status = 1;
      break;
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && pump (port, conn, &in) == -1)
      break;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && pump (conn, port, &out) == -1)
      break;
  }
  fprintf (stderr, "serial-bridge: connection %d on %s closed: %llu bytes to the server, %llu from it\n",
           k, name, out, in);
  return status;
}

int
main (int argc, char **argv)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int nports = argc - 2, ports[16], lfd, status = 0;

  if (argc < 3 || nports > 16 || strlen (argv[1]) >= sizeof sa.sun_path) {
    fprintf (stderr, "usage: serial-bridge SOCKET PORT... (up to 16 ports)\n");
    return 2;
  }
  for (int k = 0; k < nports; k++) {
    ports[k] = open (argv[k + 2], O_RDWR | O_CLOEXEC);
    if (ports[k] == -1) {
      perror (argv[k + 2]);
      return 1;
    }
  }
  strcpy (sa.sun_path, argv[1]);
  unlink (argv[1]);
  lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd == -1 || bind (lfd, (struct sockaddr *) &sa, sizeof sa) == -1 ||
      listen (lfd, nports) == -1) {
    perror (argv[1]);
    return 1;
  }
  for (int k = 0; k < nports; k++) {
    int cfd = accept (lfd, NULL, NULL);
    if (cfd == -1) {
      if (errno == EINTR) {
        k--;
        continue;
      }
      perror ("serial-bridge: accept");
      return 1;
    }
    pid_t pid = fork ();
    if (pid == -1) {
      perror ("serial-bridge: fork");
      return 1;
    }
    if (pid == 0) {
      close (lfd);
      for (int j = k + 1; j < nports; j++)
        close (ports[j]);
      _exit (bridge (k + 1, argv[k + 2], ports[k], cfd));
    }
    fprintf (stderr, "serial-bridge: connection %d on %s\n", k + 1, argv[k + 2]);
    close (cfd);
    close (ports[k]);
  }
  close (lfd);
  unlink (argv[1]);
  for (int k = 0; k < nports; k++) {
    int st;
    if (wait (&st) == -1) {
      if (errno == EINTR) {
        k--;
        continue;
      }
      break;
    }
    if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
      status = 1;
  }
  return status;
}
