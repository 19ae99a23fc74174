/* The disconnect of SCST's infinite-cleanup bug, made on purpose: a
 * client sends writes to a slow store and vanishes while they execute.
 * Their vectors go back into the sgv pool's cache while the connection is
 * being unjammed; cleanup must still end, and only after the commands are
 * done may it flush the pool, so that those vectors are released too.
 * Afterwards every command, vector and connection counter is back to zero
 * and every vector's release callback has run. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "nbd-test-client.h"

/* A store over the in-memory disk whose writes take 50 ms. */
struct slow {
  struct store s;
  struct store *inner;
  atomic_int executing, max_executing;
};

static int s_pread (struct store *s, const struct iovec *iov, int n, uint64_t off)
{ return store_pread (((struct slow *) s)->inner, iov, n, off); }
static int
s_pwrite (struct store *s, const struct iovec *iov, int n, uint64_t off, unsigned f)
{
  struct slow *w = (struct slow *) s;
  int now = atomic_fetch_add (&w->executing, 1) + 1;
  if (now > w->max_executing) w->max_executing = now;
  struct timespec ts = { 0, 50 * 1000 * 1000 };
  nanosleep (&ts, NULL);
  int r = store_pwrite (w->inner, iov, n, off, f);
  atomic_fetch_sub (&w->executing, 1);
  return r;
}
static int s_flush (struct store *s) { return store_flush (((struct slow *) s)->inner); }
static int s_trim (struct store *s, uint64_t o, uint64_t l) { return store_trim (((struct slow *) s)->inner, o, l); }
static int s_zero (struct store *s, uint64_t o, uint64_t l, unsigned f) { return store_zero (((struct slow *) s)->inner, o, l, f); }
static int s_extent (struct store *s, uint64_t o, uint64_t l, uint64_t *e, bool *a) { return store_extent (((struct slow *) s)->inner, o, l, e, a); }
static void s_stats (struct store *s, struct store_stats *st) { store_get_stats (((struct slow *) s)->inner, st); }
static void s_close (struct store *s) { store_close (((struct slow *) s)->inner); free (s); }
static const struct store_ops slow_ops = {
  .name = "slow", .pread = s_pread, .pwrite = s_pwrite, .flush = s_flush, .trim = s_trim,
  .zero = s_zero, .extent = s_extent, .stats = s_stats, .close = s_close,
};

static atomic_int released;
static void count_release (struct sgv_vec *v, void *opaque) { atomic_fetch_add (&released, 1); }

static void
cleanup_after_a_client_vanishes_mid_execution_releases_everything (void **state)
{
  struct slow *w = calloc (1, sizeof *w);
  w->inner = cache_create (&(struct cache_config) { .size = 16 << 20 });
  w->s = (struct store) { .ops = &slow_ops, .size = 16 << 20, .caps = STORE_CAP_TRIM };
  struct sgv_pool_config sc = { .name = "t", .release = count_release };
  struct sgv_pool *sgv = sgv_pool_create (&sc);
  struct scsi_cmd_pool *cmds = scsi_cmd_pool_create (NULL);
  struct scsi_lu_config lc = { .store = &w->s, .sgv = sgv, .block_size = 512 };
  struct scsi_lu *lu = scsi_lu_create (&lc);
  struct blkio io;
  blkio_init (&io, lu, sgv);
  struct nbd_export exp = { .name = "disk", .lu = lu, .cmds = cmds, .sgv = sgv, .io = &io };
  struct nbd_server_config nc = { .threads = 2, .exports = &exp, .nexports = 1 };
  struct nbd_server *srv = nbd_server_create (&nc);
  struct server fake = { .srv = srv };
  static uint8_t payload[65536];

  nbd_server_start (srv);
  int fd = client_new (&fake);
  negotiate (fd, true);
  for (int i = 0; i < 32; i++)
    request (fd, NBD_CMD_WRITE, 0, (uint64_t) i, (uint64_t) i * 65536, sizeof payload, payload);
  /* Wait until writes are executing, then vanish. */
  for (int i = 0; i < 200 && atomic_load (&w->executing) == 0; i++)
    usleep (5000);
  assert_true (atomic_load (&w->executing) > 0);
  close (fd);

  struct nbd_server_stats st;
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 1000; i++) {
    nbd_server_get_stats (srv, &st);
    if (st.connections_open == 0)
      break;
    usleep (10000);
  }
  clock_gettime (CLOCK_MONOTONIC, &t1);
  assert_int_equal (st.connections_open, 0);          /* cleanup ended */
  assert_int_equal (st.cleanup_stuck, 0);             /* by progress, not by giving up */

  struct sgv_stats sv;
  struct scsi_pool_stats cp;
  sgv_pool_get_stats (sgv, &sv);
  scsi_cmd_pool_get_stats (cmds, &cp);
  printf ("cleanup took %.2f s; sgv allocated %llu in use %llu cached %llu flushed %llu,"
          " released %d; commands in use %llu\n",
          (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9,
          (unsigned long long) sv.allocated, (unsigned long long) sv.in_use,
          (unsigned long long) sv.cached, (unsigned long long) sv.flushed,
          atomic_load (&released), (unsigned long long) cp.in_use);
  assert_int_equal (atomic_load (&w->executing), 0);
  assert_true (w->max_executing >= 2);    /* writes ran side by side in workers */
  assert_int_equal (cp.in_use, 0);
  assert_int_equal (sv.in_use, 0);
  assert_int_equal (sv.cached, 0);      /* vectors cached while unjamming were flushed */
  assert_int_equal (sv.allocated, 0);
  assert_true (sv.flushed > 0);
  assert_int_equal (atomic_load (&released), sv.misses);   /* every vector ever made */

  nbd_server_stop (srv);
  nbd_server_destroy (srv);
  blkio_fini (&io);
  scsi_lu_destroy (lu);
  assert_int_equal (scsi_cmd_pool_destroy (cmds), 0);
  assert_int_equal (sgv_pool_destroy (sgv), 0);
  store_close (&w->s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (cleanup_after_a_client_vanishes_mid_execution_releases_everything),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
