/* The block map on its memory reserve (swap mode): writers wait, fail
 * only at the limit, and memory goes back above the high watermark.
 *
 * Writers in threads store blocks through an in-memory map whose object
 * pool takes chunk memory only from a reserve that its refill thread
 * keeps between two watermarks (cache_reserve_start).
 *
 * On a tiny reserve (less than one chunk of the largest class at its
 * low watermark), eight writers fill the map: each writes its own blocks
 * until a write fails.  Every failure is ENOSPC, and it comes only at the
 * memory limit (the data then takes the whole limit, bar the chunks a
 * class holds half used); writes waited for the refill thread, and the
 * map counted those waits; everything written reads back.
 *
 * On a small reserve, writers store most of a limit's worth of mostly
 * incompressible blocks; three in four are trimmed, which leaves chunks
 * a quarter full, and compaction empties them into the others.  The
 * memory they held joins the reserve, and the refill thread gives back
 * what is above the high watermark: the reserve drops to it, the bytes
 * returned are counted, and the process's resident memory drops with
 * them.  The blocks left read back, and writing again takes the memory
 * back.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cache.h"
#include "store.h"

#define BS 4096u
#define SEG (2u << 20)                 /* what the refill thread maps at a time */

struct run {
  struct store *s;
  uint64_t nblocks;
  unsigned nthreads;
  bool to_first_failure;           /* else: the first 'quota' blocks of each writer */
  uint64_t quota;
  atomic_uint_fast64_t written;
  atomic_uint failures_not_enospc, failures;
  atomic_uint finished;            /* writers that wrote all their blocks */
  uint64_t data_at_failure_min;    /* the data's memory when a write failed */
  pthread_mutex_t lock;
  uint8_t *ok;                     /* per block: written and not trimmed */
  uint64_t base;                   /* the map's memory with nothing stored */
};

struct writer {
  struct run *r;
  unsigned id;
  pthread_t thread;
};

/* Block b's contents in pass p: noise (stored raw), except one in four
 * which is half text (stored compressed). */
static void
fill (uint8_t *buf, uint64_t b, unsigned p)
{
  uint64_t x = (b * 0x9e3779b97f4a7c15ull) ^ ((uint64_t) p << 56) ^ 1;
  unsigned half = b % 4 == 0 ? BS / 2 : BS;

  for (unsigned i = 0; i < half; i += 8) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    memcpy (buf + i, &x, 8);
  }
  for (unsigned i = half; i < BS; i++)
    buf[i] = (uint8_t) "sgblk reserve "[i % 14];
}

/* The memory the stored data takes: the map's, less its reserve and
 * what it takes with nothing stored (the block table). */
static uint64_t
data_bytes (struct run *r)
{
  struct cache_stats cs;
  assert_int_equal (cache_get_stats (r->s, &cs), 0);
  return cs.mem_used - cs.reserve_bytes - r->base;
}

static void *
write_loop (void *arg)
{
  struct writer *w = arg;
  struct run *r = w->r;
  uint8_t buf[BS];

  for (uint64_t b = w->id; b < r->nblocks; b += r->nthreads) {
    if (!r->to_first_failure && b / r->nthreads >= r->quota)
      break;
    fill (buf, b, 1);
    struct iovec iov = { buf, BS };
    if (store_pwrite (r->s, &iov, 1, b * BS, 0) == 0) {
      r->ok[b] = 1;
      atomic_fetch_add (&r->written, 1);
      continue;
    }
    int e = errno;
    uint64_t data = data_bytes (r);
    pthread_mutex_lock (&r->lock);
    if (data < r->data_at_failure_min)
      r->data_at_failure_min = data;
    pthread_mutex_unlock (&r->lock);
    atomic_fetch_add (&r->failures, 1);
    if (e != ENOSPC) {
      print_message ("writer %u: block %llu: %s\n", w->id, (unsigned long long) b, strerror (e));
      atomic_fetch_add (&r->failures_not_enospc, 1);
    }
    if (r->to_first_failure)
      return NULL;
  }
  atomic_fetch_add (&r->finished, 1);
  return NULL;
}

static void
run_writers (struct run *r)
{
  struct writer w[8];

  assert_true (r->nthreads <= 8);
  for (unsigned i = 0; i < r->nthreads; i++) {
    w[i] = (struct writer) { .r = r, .id = i };
    assert_int_equal (pthread_create (&w[i].thread, NULL, write_loop, &w[i]), 0);
  }
  for (unsigned i = 0; i < r->nthreads; i++)
    pthread_join (w[i].thread, NULL);
}

static void
verify (struct run *r)
{
  uint8_t got[BS], want[BS];

  for (uint64_t b = 0; b < r->nblocks; b++) {
    struct iovec iov = { got, BS };
    assert_int_equal (store_pread (r->s, &iov, 1, b * BS), 0);
    if (r->ok[b])
      fill (want, b, 1);
    else
      memset (want, 0, BS);
    if (memcmp (got, want, BS) != 0)
      fail_msg ("block %llu differs", (unsigned long long) b);
  }
}

static struct run *
new_run (uint64_t nblocks, uint64_t mem_limit, uint64_t low, uint64_t high)
{
  struct run *r = calloc (1, sizeof *r);
  struct cache_config cc = { .size = nblocks * BS, .mem_limit = mem_limit };
  struct cache_stats cs;

  assert_non_null (r);
  r->nblocks = nblocks;
  r->ok = calloc (nblocks, 1);
  assert_non_null (r->ok);
  r->s = cache_create (&cc);
  assert_non_null (r->s);
  assert_int_equal (cache_reserve_start (r->s, low, high), 0);
  assert_int_equal (cache_get_stats (r->s, &cs), 0);
  assert_int_equal (cs.reserve_low, low);
  assert_int_equal (cs.reserve_high, high);
  assert_true (cs.reserve_bytes >= high);      /* filled before it returned */
  r->base = cs.mem_used - cs.reserve_bytes;
  r->data_at_failure_min = UINT64_MAX;
  pthread_mutex_init (&r->lock, NULL);
  return r;
}

static void
free_run (struct run *r)
{
  store_close (r->s);                          /* stops the refill thread */
  pthread_mutex_destroy (&r->lock);
  free (r->ok);
  free (r);
}

static void
writers_on_a_tiny_reserve_wait_and_fail_only_at_the_limit (void **state)
{
  (void) state;
  const uint64_t limit = 8u << 20;
  /* Low is half a raw chunk: the reserve runs dry between two refills. */
  struct run *r = new_run (16384, limit, 16u << 10, 32u << 10);
  struct cache_stats cs0, cs;

  assert_int_equal (cache_get_stats (r->s, &cs0), 0);
  r->nthreads = 8;
  r->to_first_failure = true;
  run_writers (r);
  assert_int_equal (cache_get_stats (r->s, &cs), 0);
  uint64_t data = cs.mem_used - cs.reserve_bytes - r->base;
  print_message ("%llu blocks written, %u failures; data %llu B of %llu at the first "
                 "failure, %llu now; reserve waits %llu, refilled %llu B\n",
                 (unsigned long long) atomic_load (&r->written), atomic_load (&r->failures),
                 (unsigned long long) r->data_at_failure_min, (unsigned long long) limit,
                 (unsigned long long) data, (unsigned long long) cs.reserve_waits,
                 (unsigned long long) cs.reserve_refills);
  assert_int_equal (atomic_load (&r->failures_not_enospc), 0);
  /* Each writer stopped at the limit, but one whose blocks compress may
   * have written all of them first, while the others were slower. */
  assert_true (atomic_load (&r->failures) >= 1);
  assert_int_equal (atomic_load (&r->failures) + atomic_load (&r->finished), r->nthreads);
  /* Failed only at the limit: the data took all of it, bar a chunk a
   * class and a run of descriptors (a few dozen KiB each). */
  assert_true (r->data_at_failure_min >= limit - (256u << 10));
  /* (The limit is checked before a chunk is taken, not with it: writers
   * of several classes may each take one past it.) */
  assert_true (data <= limit + r->nthreads * (96u << 10));
  assert_true (cs.reserve_waits > 0);
  assert_true (cs.reserve_refills >= cs0.reserve_refills + limit - 2 * SEG);
  verify (r);
  free_run (r);
}

static uint64_t
vm_rss_kib (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  unsigned long long kib = 0;

  assert_non_null (f);
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "VmRSS: %llu kB", &kib) == 1)
      break;
  fclose (f);
  return kib;
}

static void
memory_above_the_high_watermark_goes_back_after_trims_and_compaction (void **state)
{
  (void) state;
  const uint64_t limit = 32u << 20, high = 4u << 20;
  struct run *r = new_run (16384, limit, 1u << 20, high);
  struct cache_stats cs;

  r->nthreads = 4;
  r->quota = 1536;                             /* 24 MiB, most of it raw */
  run_writers (r);
  assert_int_equal (atomic_load (&r->failures), 0);
  uint64_t rss_full = vm_rss_kib (), held = data_bytes (r);

  /* Three in four of each writer's blocks go: however the writers took
   * turns, chunks are left a quarter full. */
  for (uint64_t b = 0; b < r->nblocks; b++)
    if (r->ok[b] && b / 4 % 4 != 0) {
      assert_int_equal (store_trim (r->s, b * BS, BS), 0);
      r->ok[b] = 0;
    }
  cache_compact (r->s);
  /* The refill thread gives back what is above high; it runs at least
   * once a second, and compaction wakes it. */
  for (int i = 0; i < 100; i++) {
    assert_int_equal (cache_get_stats (r->s, &cs), 0);
    if (cs.reserve_bytes <= high + SEG)
      break;
    struct timespec tick = { 0, 50000000L };
    nanosleep (&tick, NULL);
  }
  uint64_t rss_trimmed = vm_rss_kib (), left = data_bytes (r);
  print_message ("data %llu B, then %llu B after trims and compaction (%llu objects "
                 "moved); reserve %llu B (high %llu), %llu B returned; VmRSS %llu -> %llu kB\n",
                 (unsigned long long) held, (unsigned long long) left,
                 (unsigned long long) cs.compactions, (unsigned long long) cs.reserve_bytes,
                 (unsigned long long) high, (unsigned long long) cs.reserve_returned,
                 (unsigned long long) rss_full, (unsigned long long) rss_trimmed);
  assert_true (cs.compactions > 0);
  assert_true (left < held / 2);
  assert_true (cs.reserve_bytes <= high + SEG);
  assert_true (cs.reserve_returned >= held - left - high - 2 * SEG);
  /* The process holds less by about as much (half of it at least:
   * malloc and the test's own memory come and go too). */
  assert_true ((rss_full - rss_trimmed) * 1024 >= (held - left - high - SEG) / 2);
  verify (r);

  /* Writing again takes memory back through the refill thread. */
  uint64_t refilled = cs.reserve_refills;
  run_writers (r);                             /* (the same contents again) */
  assert_int_equal (atomic_load (&r->failures), 0);
  assert_int_equal (cache_get_stats (r->s, &cs), 0);
  assert_true (cs.reserve_refills > refilled);
  verify (r);
  free_run (r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (writers_on_a_tiny_reserve_wait_and_fail_only_at_the_limit),
    cmocka_unit_test (memory_above_the_high_watermark_goes_back_after_trims_and_compaction),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
