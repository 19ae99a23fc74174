/* The command pool keeps I/O moving when memory is short: with every
 * normal allocation failing, commands come whole from the reserve; with
 * the reserve empty too, getters wait for a put instead of failing. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <unistd.h>

#include "scsi-test-helpers.h"

#define THREADS 4
#define PER_THREAD 2500            /* 10,000 commands in all */

struct worker_arg {
  struct scsi_cmd_pool *pool;
  struct scsi_lu *lu;
  struct sgv_pool *sgv;
  int id;
  int done;
  int bad;
};

static void *
io_worker (void *p)
{
  struct worker_arg *a = p;
  uint8_t pattern[512], back[512];

  for (int i = 0; i < PER_THREAD; i++) {
    struct scsi_cmd *c = scsi_cmd_get (a->pool, true);
    if (c == NULL || c->sense == NULL) {
      a->bad++;
      continue;
    }
    uint64_t lba = (uint64_t) a->id * 512 + (uint64_t) i % 512;   /* own blocks */
    struct sgv_vec *v = sgv_alloc (a->sgv, 512);
    memset (pattern, a->id + i, sizeof pattern);
    sgv_copy_from_buf (v, 0, pattern, 512);
    c->cdb_len = scsi_cdb_write16 (c->cdb, lba, 1, false);
    c->buf = v;
    c->buf_len = 512;
    if (scsi_exec (a->lu, c) != SCSI_STATUS_GOOD)
      a->bad++;
    sgv_zero (v, 0, 512);
    c->cdb_len = scsi_cdb_read16 (c->cdb, lba, 1, false);
    if (scsi_exec (a->lu, c) != SCSI_STATUS_GOOD)
      a->bad++;
    sgv_copy_to_buf (v, 0, back, 512);
    if (memcmp (back, pattern, 512) != 0)
      a->bad++;
    sgv_free (a->sgv, v);
    scsi_cmd_put (a->pool, c);
    a->done++;
  }
  return NULL;
}

static void
ten_thousand_commands_complete_from_the_reserve_alone (void **state)
{
  struct scsi_cmd_pool_config pc = { .reserve = 16 };
  struct scsi_cmd_pool *pool = scsi_cmd_pool_create (&pc);
  struct unit *u = unit_new (memdisk_new (1 << 20), 512, false, false);
  struct worker_arg args[THREADS];
  pthread_t t[THREADS];
  struct scsi_pool_stats st;

  scsi_cmd_pool_fail_every (pool, 1);           /* every normal allocation fails */
  for (int i = 0; i < THREADS; i++) {
    args[i] = (struct worker_arg) { .pool = pool, .lu = u->lu, .sgv = u->sgv, .id = i };
    pthread_create (&t[i], NULL, io_worker, &args[i]);
  }
  int done = 0, bad = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join (t[i], NULL);
    done += args[i].done;
    bad += args[i].bad;
  }
  assert_int_equal (done, THREADS * PER_THREAD);
  assert_int_equal (bad, 0);
  scsi_cmd_pool_get_stats (pool, &st);
  printf ("fallbacks %llu, alloc failures %llu, waits %llu, reserve %llu/%llu\n",
          (unsigned long long) st.fallbacks, (unsigned long long) st.alloc_failures,
          (unsigned long long) st.waits, (unsigned long long) st.reserve_level,
          (unsigned long long) st.reserve_size);
  assert_true (st.fallbacks >= THREADS * PER_THREAD);
  assert_true (st.alloc_failures >= THREADS * PER_THREAD);
  assert_int_equal (st.allocated, 0);           /* nothing came from the normal path */
  assert_int_equal (st.in_use, 0);
  assert_int_equal (st.reserve_level, st.reserve_size);
  assert_int_equal (st.reserve_size, 16);
  assert_int_equal (scsi_cmd_pool_destroy (pool), 0);
  unit_free (u);
}

struct getter {
  struct scsi_cmd_pool *pool;
  atomic_bool got;
  struct scsi_cmd *c;
};

static void *
blocking_get (void *p)
{
  struct getter *g = p;
  g->c = scsi_cmd_get (g->pool, true);
  atomic_store (&g->got, true);
  return NULL;
}

static void
an_empty_reserve_makes_getters_wait_for_a_put (void **state)
{
  struct scsi_cmd_pool_config pc = { .reserve = 2 };
  struct scsi_cmd_pool *pool = scsi_cmd_pool_create (&pc);
  struct scsi_pool_stats st;
  struct getter g = { .pool = pool };
  pthread_t t;

  scsi_cmd_pool_fail_every (pool, 1);
  struct scsi_cmd *a = scsi_cmd_get (pool, true), *b = scsi_cmd_get (pool, true);
  assert_non_null (a);
  assert_non_null (b);
  assert_true (a->from_reserve && b->from_reserve);
  errno = 0;
  assert_null (scsi_cmd_get (pool, false));
  assert_int_equal (errno, EAGAIN);

  pthread_create (&t, NULL, blocking_get, &g);
  usleep (200 * 1000);
  assert_false (atomic_load (&g.got));          /* still waiting: backpressure */
  scsi_cmd_pool_get_stats (pool, &st);
  assert_true (st.waits >= 1);
  scsi_cmd_put (pool, a);
  pthread_join (t, NULL);
  assert_true (atomic_load (&g.got));
  assert_ptr_equal (g.c, a);                    /* the very object put back */
  assert_non_null (g.c->sense);
  scsi_cmd_put (pool, g.c);
  scsi_cmd_put (pool, b);
  assert_int_equal (scsi_cmd_pool_destroy (pool), 0);
}

static void
every_third_failure_mixes_normal_and_reserve_objects_all_whole (void **state)
{
  struct scsi_cmd_pool_config pc = { .reserve = 8, .max_cached = 4 };
  struct scsi_cmd_pool *pool = scsi_cmd_pool_create (&pc);
  struct scsi_cmd *held[30];
  struct scsi_pool_stats st;
  int reserve = 0, normal = 0;

  scsi_cmd_pool_fail_every (pool, 3);
  for (int i = 0; i < 12; i++) {
    held[i] = scsi_cmd_get (pool, true);
    assert_non_null (held[i]);
    assert_non_null (held[i]->sense);           /* never half an object */
    memset (held[i]->sense, 0xa5, SCSI_SENSE_BUFFERSIZE);
    held[i]->from_reserve ? reserve++ : normal++;
  }
  assert_int_equal (reserve, 4);
  assert_int_equal (normal, 8);
  scsi_cmd_pool_get_stats (pool, &st);
  assert_int_equal (st.in_use, 12);
  assert_int_equal (st.fallbacks, 4);
  assert_int_equal (st.reserve_level, 4);
  /* With a command out, destroy refuses. */
  errno = 0;
  assert_int_equal (scsi_cmd_pool_destroy (pool), -1);
  assert_int_equal (errno, EBUSY);
  for (int i = 0; i < 12; i++)
    scsi_cmd_put (pool, held[i]);
  scsi_cmd_pool_get_stats (pool, &st);
  assert_int_equal (st.in_use, 0);
  assert_int_equal (st.reserve_level, 8);
  assert_int_equal (st.cached, 4);              /* the rest were freed */
  assert_int_equal (st.allocated, 4);
  /* A command comes back zeroed but for its sense buffer. */
  scsi_cmd_pool_fail_every (pool, 0);
  struct scsi_cmd *c = scsi_cmd_get (pool, true);
  assert_int_equal (c->status, 0);
  assert_int_equal (c->cdb_len, 0);
  assert_null (c->buf);
  assert_non_null (c->sense);
  scsi_cmd_put (pool, c);
  assert_int_equal (scsi_cmd_pool_destroy (pool), 0);
}

static void
prefill_allocates_up_front (void **state)
{
  struct scsi_cmd_pool *pool = scsi_cmd_pool_create (NULL);
  struct scsi_pool_stats st;

  assert_int_equal (scsi_cmd_pool_prefill (pool, 300), 0);
  scsi_cmd_pool_get_stats (pool, &st);
  assert_int_equal (st.cached, 300);
  assert_int_equal (st.allocated, 300);
  assert_int_equal (scsi_cmd_pool_destroy (pool), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (ten_thousand_commands_complete_from_the_reserve_alone),
    cmocka_unit_test (an_empty_reserve_makes_getters_wait_for_a_put),
    cmocka_unit_test (every_third_failure_mixes_normal_and_reserve_objects_all_whole),
    cmocka_unit_test (prefill_allocates_up_front),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
