/* nbd_server_listen_fd, as socket activation uses it: a listening Unix or
 * TCP stream socket is served and closed at the end, but its path stays
 * (its maker's); anything else (a file, a datagram socket, a socket
 * nobody listens on, one listener too many) is refused with its errno
 * and left open for the caller. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "nbd-test-client.h"

static char dir[] = "/tmp/sgblk-listen-fd.XXXXXX";

/* The stack of server_new, not yet started. */
static struct server *
unstarted_server (void)
{
  struct server *s = server_new (1u << 20, false);
  /* (server_new starts its server: listeners must come before that.) */
  nbd_server_stop (s->srv);
  nbd_server_destroy (s->srv);
  struct nbd_server_config nc = { .threads = 1, .exports = &s->exp, .nexports = 1 };
  s->srv = nbd_server_create (&nc);
  assert_non_null (s->srv);
  return s;
}

static int
unix_socket (const char *name, int type, bool listening)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, type, 0);
  assert_true (fd >= 0);
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  if (listening)
    assert_int_equal (listen (fd, 8), 0);
  return fd;
}

static bool
is_open (int fd)
{
  return fcntl (fd, F_GETFD) != -1;
}

static void
refused (struct nbd_server *srv, int fd, int want)
{
  errno = 0;
  assert_int_equal (nbd_server_listen_fd (srv, fd), -1);
  assert_int_equal (errno, want);
  assert_true (is_open (fd));           /* still the caller's */
  close (fd);
}

static void
anything_but_a_listening_stream_socket_is_refused_and_left_open (void **state)
{
  struct server *s = unstarted_server ();
  char path[128];

  snprintf (path, sizeof path, "%s/file", dir);
  refused (s->srv, open (path, O_RDWR | O_CREAT, 0600), ENOTSOCK);
  refused (s->srv, unix_socket ("dgram", SOCK_DGRAM, false), EPROTOTYPE);
  refused (s->srv, socket (AF_INET, SOCK_DGRAM, 0), EPROTOTYPE);
  refused (s->srv, unix_socket ("unlistened", SOCK_STREAM, false), EINVAL);
  int fds[8];
  for (int i = 0; i < 8; i++) {
    char name[16];
    snprintf (name, sizeof name, "l%d", i);
    fds[i] = unix_socket (name, SOCK_STREAM, true);
    assert_int_equal (nbd_server_listen_fd (s->srv, fds[i]), 0);
  }
  refused (s->srv, unix_socket ("ninth", SOCK_STREAM, true), EMFILE);
  nbd_server_start (s->srv);
  server_free (s);
  for (int i = 0; i < 8; i++)
    assert_false (is_open (fds[i]));     /* the server's, closed */
}

static void
unix_and_tcp_sockets_are_served_and_the_path_is_kept (void **state)
{
  struct server *s = unstarted_server ();
  int ufd = unix_socket ("nbd.sock", SOCK_STREAM, true);
  int tfd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sin;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct stat st;
  char magic[8];

  assert_int_equal (bind (tfd, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (listen (tfd, 8), 0);
  assert_int_equal (getsockname (tfd, (struct sockaddr *) &sin, &sl), 0);
  assert_int_equal (nbd_server_listen_fd (s->srv, ufd), 0);
  assert_int_equal (nbd_server_listen_fd (s->srv, tfd), 0);
  assert_true (fcntl (ufd, F_GETFD) & FD_CLOEXEC);
  assert_int_equal (nbd_server_start (s->srv), 0);

  snprintf (sa.sun_path, sizeof sa.sun_path, "%s/nbd.sock", dir);
  int c = socket (AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal (connect (c, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (rx (c, magic, 8), 0);
  assert_memory_equal (magic, "NBDMAGIC", 8);
  close (c);
  c = socket (AF_INET, SOCK_STREAM, 0);
  assert_int_equal (connect (c, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (rx (c, magic, 8), 0);
  assert_memory_equal (magic, "NBDMAGIC", 8);
  close (c);

  server_free (s);
  assert_false (is_open (ufd));
  assert_false (is_open (tfd));
  assert_int_equal (stat (sa.sun_path, &st), 0);      /* not unlinked */
  assert_true (S_ISSOCK (st.st_mode));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (anything_but_a_listening_stream_socket_is_refused_and_left_open),
    cmocka_unit_test (unix_and_tcp_sockets_are_served_and_the_path_is_kept),
  };
  assert_non_null (mkdtemp (dir));
  int r = cmocka_run_group_tests (tests, NULL, NULL);
  char cmd[64];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  if (system (cmd) != 0)
    r = r ? r : 1;
  return r;
}
