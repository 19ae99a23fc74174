/* Compaction never undoes a rewrite in place.
 *
 * A rewrite whose compressed size falls in the block's current size class
 * reuses its object in place, while compaction may be moving that object
 * to another chunk at the same moment.  Two writer threads each own half
 * the blocks of an in-memory map (block b belongs to thread b % 2).  In
 * rounds, each writes all its blocks, trims three in four of them (which
 * leaves chunks a quarter full, so compaction has objects to move), and
 * rewrites the rest in place a few times; every block is read before and
 * after each write or trim: it must hold exactly its latest version.  A third thread compacts all the time.  At the end every
 * block holds its last version, and compaction must have moved objects,
 * or the test proved nothing.
 *
 * Contents: 1 KiB of noise seeded by (block, version), then that 16-byte
 * tag repeated, so every version compresses to the same size (a few
 * dozen objects a chunk, many chunks); version 0 is a hole (zeroes).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cache.h"
#include "store.h"

#define BS 4096u
#define NBLOCKS 4096u
#define NOISE 1024u                /* incompressible bytes a block */
#define RUN_MS 1500
#define MIN_ROUNDS 3

struct run {
  struct store *s;
  uint32_t version[NBLOCKS];       /* the owner's latest; 0 after a trim */
  atomic_bool stop;
  atomic_uint failures;
};

struct writer {
  struct run *r;
  unsigned id;
  uint64_t rng;
  pthread_t thread;
  uint64_t writes, trims;
  atomic_uint rounds;              /* rounds completed */
};

static uint64_t
next (uint64_t *x)
{
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void
fill (uint8_t *buf, uint32_t b, uint32_t v)
{
  uint64_t x = ((uint64_t) b << 32 | v) * 0x9e3779b97f4a7c15ull | 1;

  for (uint32_t i = 0; i < NOISE; i += 8) {
    uint64_t y = next (&x);
    memcpy (buf + i, &y, 8);
  }
  for (uint32_t i = NOISE; i < BS; i += 16) {
    uint64_t tag[2] = { b, v };
    memcpy (buf + i, tag, 16);
  }
}

/* Block b holds exactly version v (or zeroes for v == 0). */
static bool
holds (struct run *r, uint32_t b, uint32_t v)
{
  static _Thread_local uint8_t got[BS], want[BS];
  struct iovec iov = { got, BS };

  if (store_pread (r->s, &iov, 1, (uint64_t) b * BS) == -1) {
    print_message ("block %u: read failed: %s\n", b, strerror (errno));
    return false;
  }
  if (v == 0)
    memset (want, 0, BS);
  else
    fill (want, b, v);
  if (memcmp (got, want, BS) == 0)
    return true;
  uint64_t tag[2];
  memcpy (tag, got, 16);
  print_message ("block %u: expected version %u, read block %llu version %llu\n",
                 b, v, (unsigned long long) tag[0], (unsigned long long) tag[1]);
  return false;
}

static void
check (struct run *r, uint32_t b)
{
  if (!holds (r, b, r->version[b])) {
    atomic_fetch_add (&r->failures, 1);
    atomic_store (&r->stop, true);
  }
}

/* Check block b, write its next version or trim it, and check it again:
 * a move that undid a write is seen at the block's next visit. */
static void
step (struct writer *w, uint32_t b, bool trim)
{
  struct run *r = w->r;
  static _Thread_local uint8_t buf[BS];

  check (r, b);
  if (trim) {
    assert_int_equal (store_trim (r->s, (uint64_t) b * BS, BS), 0);
    r->version[b] = 0;
    w->trims++;
  }
  else {
    uint32_t v = ++r->version[b] == 0 ? ++r->version[b] : r->version[b];
    fill (buf, b, v);
    struct iovec iov = { buf, BS };
    assert_int_equal (store_pwrite (r->s, &iov, 1, (uint64_t) b * BS, 0), 0);
    w->writes++;
  }
  check (r, b);
}

/* Rounds of: write every block of ours, trim three in four (the chunks
 * are left a quarter full: compaction moves their objects), then rewrite
 * the survivors in place a few times while they move. */
static void *
write_loop (void *arg)
{
  struct writer *w = arg;
  struct run *r = w->r;

  for (uint32_t round = 0; !atomic_load (&r->stop); round++) {
    for (uint32_t b = w->id; b < NBLOCKS && !atomic_load (&r->stop); b += 2)
      step (w, b, false);
    for (uint32_t b = w->id; b < NBLOCKS && !atomic_load (&r->stop); b += 2)
      if (b / 2 % 4 != round % 4)
        step (w, b, true);
    for (int i = 0; i < 4; i++)
      for (uint32_t b = w->id; b < NBLOCKS && !atomic_load (&r->stop); b += 2)
        if (b / 2 % 4 == round % 4)
          step (w, b, false);
    atomic_fetch_add (&w->rounds, 1);
  }
  return NULL;
}

static void *
compact_loop (void *arg)
{
  struct run *r = arg;

  while (!atomic_load (&r->stop))
    cache_compact (r->s);
  return NULL;
}

static void
rewrites_in_place_survive_compaction (void **state)
{
  (void) state;
  struct run *r = calloc (1, sizeof *r);
  assert_non_null (r);
  struct cache_config cc = { .size = (uint64_t) NBLOCKS * BS, .block_size = BS };
  r->s = cache_create (&cc);
  assert_non_null (r->s);

  struct writer w[2];
  pthread_t mover;
  for (unsigned i = 0; i < 2; i++) {
    w[i] = (struct writer) { .r = r, .id = i, .rng = 0x9e3779b97f4a7c15ull * (i + 1) };
    assert_int_equal (pthread_create (&w[i].thread, NULL, write_loop, &w[i]), 0);
  }
  assert_int_equal (pthread_create (&mover, NULL, compact_loop, r), 0);
  /* RUN_MS, and at least MIN_ROUNDS rounds each however slow the machine
   * (valgrind), so that compaction has had sparse chunks to empty. */
  struct timespec ts = { RUN_MS / 1000, (RUN_MS % 1000) * 1000000L }, tick = { 0, 10000000L };
  nanosleep (&ts, NULL);
  for (int waited = 0; waited < 12000 && !atomic_load (&r->stop) &&
       (atomic_load (&w[0].rounds) < MIN_ROUNDS || atomic_load (&w[1].rounds) < MIN_ROUNDS);
       waited++)
    nanosleep (&tick, NULL);
  atomic_store (&r->stop, true);
  for (unsigned i = 0; i < 2; i++)
    pthread_join (w[i].thread, NULL);
  pthread_join (mover, NULL);

  for (uint32_t b = 0; b < NBLOCKS; b++)
    if (!holds (r, b, r->version[b]))
      atomic_fetch_add (&r->failures, 1);
  struct cache_stats st;
  assert_int_equal (cache_get_stats (r->s, &st), 0);
  print_message ("%u rounds, %llu writes, %llu trims, %llu objects moved, %u failures\n",
                 atomic_load (&w[0].rounds) + atomic_load (&w[1].rounds),
                 (unsigned long long) (w[0].writes + w[1].writes),
                 (unsigned long long) (w[0].trims + w[1].trims),
                 (unsigned long long) st.compactions, atomic_load (&r->failures));
  assert_int_equal (atomic_load (&r->failures), 0);
  assert_true (st.compactions > 0);
  store_close (r->s);
  free (r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (rewrites_in_place_survive_compaction),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
