/* The stats file of several exports (one daemon stack each): each
 * metric family's HELP and TYPE come once, before all of its samples,
 * with one sample per export, each export's own figures under its own
 * label; the NBD server's figures come once, unlabelled.  The file is
 * replaced by the rename of PATH.tmp, which is gone afterwards. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "nbd.h"

/* A stack of an in-memory disk of 1 MiB named name, on the server srv
 * (which has no listener), as the daemon builds one per export. */
static void
build (struct daemon_stack *d, struct cli_options *o, const char *name,
       struct nbd_server *srv)
{
  char *argv[] = { (char *) "sgblkd", (char *) "--size", (char *) "1M",
                   (char *) "-e", (char *) name, NULL };

  assert_int_equal (cli_parse (5, argv, o, stderr), 0);
  o->port = -1;
  memset (d, 0, sizeof *d);
  assert_int_equal (daemon_stack_build (d, o), 0);
  d->srv = srv;
  assert_int_equal (nbd_server_add_export (srv, &d->export), 0);
}

static size_t
count (const char *text, const char *needle)
{
  size_t n = 0;
  for (const char *p = text; (p = strstr (p, needle)) != NULL; p++)
    n++;
  return n;
}

static void
families_come_once_with_a_sample_per_export (void **state)
{
  struct cli_options oa, ob;
  struct daemon_stack a, b;
  struct daemon_stack *stacks[] = { &a, &b };

  struct nbd_server_config nc = { .threads = 1 };
  struct nbd_server *srv = nbd_server_create (&nc);
  assert_non_null (srv);
  build (&a, &oa, "alpha", srv);
  build (&b, &ob, "beta", srv);
  /* Different traffic on each: the figures must not mix. */
  blkio_count (&a.io, BLKIO_OP_WRITE, 4096, 0);
  blkio_count (&b.io, BLKIO_OP_WRITE, 512, 0);
  blkio_count (&b.io, BLKIO_OP_WRITE, 512, ENOSPC);

  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&text, &len);
  assert_non_null (f);
  assert_int_equal (daemon_metrics_render (f, stacks, 2), 0);
  assert_int_equal (fclose (f), 0);

  assert_int_equal (count (text, "# TYPE sgblk_written_bytes_total counter\n"), 1);
  assert_int_equal (count (text, "# HELP sgblk_written_bytes_total "), 1);
  assert_non_null (strstr (text, "sgblk_written_bytes_total{export=\"alpha\"} 4096\n"
                                 "sgblk_written_bytes_total{export=\"beta\"} 512\n"));
  assert_non_null (strstr (text, "sgblk_errors_total{export=\"beta\",kind=\"nospc\"} 1\n"));
  assert_non_null (strstr (text, "sgblk_errors_total{export=\"alpha\",kind=\"nospc\"} 0\n"));
  assert_non_null (strstr (text, "sgblk_requests_total{export=\"beta\",op=\"write\"} 2\n"));
  /* Every family: HELP, then TYPE, then its samples; no family twice. */
  char *save = NULL, *family = NULL;
  size_t families = 0;
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
    if (strncmp (line, "# HELP ", 7) == 0) {
      families++;
      family = line + 7;
      *strchr (family, ' ') = '\0';
      char type[256];
      snprintf (type, sizeof type, "# TYPE %s ", family);
      line = strtok_r (NULL, "\n", &save);
      assert_non_null (line);
      assert_int_equal (strncmp (line, type, strlen (type)), 0);
      continue;
    }
    assert_non_null (family);
    assert_int_equal (strncmp (line, family, strlen (family)), 0);
    assert_true (line[strlen (family)] == '{' || line[strlen (family)] == ' ');
  }
  assert_true (families > 40);
  free (text);

  /* Unlabelled, once: the server's own figures. */
  f = open_memstream (&text, &len);
  assert_int_equal (daemon_metrics_render (f, stacks, 2), 0);
  fclose (f);
  assert_int_equal (count (text, "\nsgblk_nbd_max_connections "), 1);
  free (text);

  /* Written whole through PATH.tmp, which does not stay. */
  char dir[] = "/tmp/sgblk-metrics.XXXXXX", path[64], tmp[64];
  assert_non_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/s.prom", dir);
  snprintf (tmp, sizeof tmp, "%s/s.prom.tmp", dir);
  assert_int_equal (daemon_metrics_write (path, stacks, 2), 0);
  assert_int_equal (access (path, R_OK), 0);
  assert_int_equal (access (tmp, F_OK), -1);
  unlink (path);
  rmdir (dir);

  nbd_server_destroy (srv);
  assert_int_equal (daemon_stack_teardown (&b), 0);
  assert_int_equal (daemon_stack_teardown (&a), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (families_come_once_with_a_sample_per_export),
  };
  log_init ("test", false, -1);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
