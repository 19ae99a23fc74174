/* The idle pass: recompression, with LZ4HC, of blocks nobody writes.
 *
 * The write path compresses with lz4's fast compressor, which keeps
 * writes cheap but leaves a fifth to a third of the memory on the table.
 * A block not written for recomp_idle seconds is unlikely to be written
 * soon, so a background thread compresses it again, with LZ4HC against a
 * dictionary: 64 KiB of 256-byte pieces sampled evenly from the disk's
 * own blocks.  Each 4 KiB block alone leaves lz4 little history to match;
 * with the dictionary it finds the headers, tables and text its
 * neighbours share (measured on 64 MiB of shared libraries: fast lz4
 * 39.0 MiB, LZ4HC alone 36.7 MiB, LZ4HC with the dictionary 31.8 MiB).
 * The object stays an lz4 block, so reads decode it with the same
 * decompressor at the same speed, given the dictionary.
 *
 * The dictionary must not change while an object refers to it: it is
 * sampled again only when no block is held in LZ4HC (hc_blocks is 0),
 * so it follows what the disk holds once its old contents are gone.  A
 * reader decoding an HC block holds that block's stripe lock, and the
 * block counts in hc_blocks until a writer, under the same lock, replaces
 * it: hc_blocks == 0 means no reader is using the dictionary.
 *
 * A block's idle time is the age of its write stamp (CM_STAMP: seconds
 * modulo 2^16, kept in 'now' by the background threads).  The pass copies
 * a candidate out under its stripe lock and marks it RECOMP, compresses
 * it without the lock, checks that the object decodes back to the same
 * bytes, and stores it only if RECOMP survived (nothing wrote the block
 * meanwhile) and it takes a smaller size class; either way the contents
 * are marked COLD and not tried again.  Any write builds a new entry
 * without HC, RECOMP or COLD: the block is back on the fast path.
 *
 * The thread runs at nice 19 and keeps its CPU time under
 * CACHE_RECOMP_CPU_PCT percent of the wall time of a pass: it yields to
 * I/O, and a pass over a large idle disk is spread out instead of taking
 * a core.  Stripe locks are held only to copy a block out and to store
 * the new object, never while compressing.
 */
#include <config.h>

#include <errno.h>
#include <lz4.h>
#include <lz4hc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sync.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* LZ4HC's default level: level 12 saved 0.3% more on 4 KiB blocks at a
 * third of the speed. */
#define RECOMP_LEVEL 9
#define DICT_PIECE 256u                  /* bytes sampled from each block */
#define DICT_MIN_BLOCKS 16u              /* fewer compressed blocks: no pass */
#define CACHE_RECOMP_CPU_PCT 25u
#define THREAD_STACK (256u << 10)
#define STATE_BYTES ((sizeof (LZ4_streamHC_t) + 4095) / 4096 * 4096)
#define FAST_BYTES ((sizeof (LZ4_stream_t) + 4095) / 4096 * 4096)
#define CAND_BYTES (2 * CACHE_DICT_BYTES)
#define PIECES_BYTES ((2 * CACHE_DICT_BYTES / DICT_PIECE * sizeof (struct piece) + 4095) / 4096 * 4096)
/* The pass's memory, mapped once, given back after each pass. */
#define WORK_BYTES (2 * STATE_BYTES + FAST_BYTES + CAND_BYTES + PIECES_BYTES)

struct piece {
  uint32_t at;                           /* its place in the candidates */
  int score;                             /* what lz4 makes of it alone */
};

struct cache_idle {
  pthread_t thread;
  bool running;
  pthread_mutex_t lock;                  /* stopping, and the sleeps */
  pthread_cond_t wake;
  bool stopping;
  pthread_mutex_t pass_lock;             /* one pass at a time: the buffers */
  /* The compressor's states, 256 KiB each, mapped once and given back
   * to the kernel after each pass (not in swap mode, where they stay
   * locked): an idle disk should not keep them resident. */
  LZ4_streamHC_t *dict_state;            /* the dictionary, loaded for the pass */
  LZ4_streamHC_t *work;                  /* a copy of it for each block */
  LZ4_stream_t *fast;                    /* to score dictionary pieces */
  uint8_t *cand;                         /* candidate pieces, 2 dictionaries' worth */
  struct piece *pieces;
  uint8_t *buf, *out, *check;            /* a block each */
};

/* ---- threads of the cache ---- */

int
cache_thread_start (struct cache *k, pthread_t *t, void *(*fn) (void *), void *arg)
{
  pthread_attr_t attr;
  int r;

  (void) k;
  if (pthread_attr_init (&attr) != 0) {
    errno = ENOMEM;
    return -1;
  }
  pthread_attr_setstacksize (&attr, THREAD_STACK);
  r = pthread_create (t, &attr, fn, arg);
  pthread_attr_destroy (&attr);
  if (r != 0) {
    errno = r;
    return -1;
  }
  return 0;
}

void
cache_thread_setup (struct cache *k)
{
  /* Swap mode: a thread that writes the disk's memory, or its spill
   * file, must not be throttled by the reclaim it serves.  Whether the
   * process may do it was said when the main thread tried.  No scratch
   * (cache_thread_prepare) for these threads: they work in buffers of
   * their own and never decode a spilled block, so they would map it
   * only to keep it. */
  if (k->io_flusher)
    (void) prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0);
}

/* The write stamp's clock: seconds since the map was made, plus one,
 * modulo 2^16. */
void
cache_tick (struct cache *k)
{
  atomic_store_explicit (&k->now, (unsigned) ((sync_now_ns () - k->born_ns) / 1000000000u + 1) & 0xffffu,
                         memory_order_relaxed);
}

/* ---- the pass ---- */

static inline unsigned
age (const struct cache *k, uint32_t flags)
{
  return (atomic_load_explicit (&k->now, memory_order_relaxed) - CM_STAMP (flags)) & 0xffffu;
}

static inline bool
candidate (const struct cache *k, uint32_t f, unsigned min_idle)
{
  return (f & (CM_PRESENT | CM_SAME | CM_SPILLED | CM_HC | CM_COLD | CM_BAD)) == CM_PRESENT &&
         age (k, f) >= min_idle;
}

static uint64_t
thread_cpu_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Sample the dictionary from the compressed blocks, evenly over the disk.
 * pass_lock held, and no HC object exists.  False if there is too little
 * to sample, or the disk is still being filled: while fewer than half of
 * its compressed blocks are idle, a dictionary would describe the part
 * written first, and it is kept until every HC object is gone.
 *
 * Twice as many pieces as fit are taken, each from a different offset in
 * its block, and the half that lz4 compresses least by itself is kept:
 * padding, zeroes and repeats teach the compressor nothing the block
 * does not already say (measured on 64 MiB of shared libraries, the
 * LZ4HC objects took 31.2 MiB against 31.8 with every piece from the
 * start of its block; on an ext4 image 11.5 against 12.3). */
/* Shell sort: glibc's qsort may call malloc, which swap mode forbids
 * after start, and a few hundred pieces need nothing better. */
static bool
before_by_score (const struct piece *x, const struct piece *y)
{
  return x->score != y->score ? x->score > y->score : x->at < y->at;
}

static bool
before_by_place (const struct piece *x, const struct piece *y)
{
  return x->at < y->at;
}

static void
sort_pieces (struct piece *p, uint32_t n,
             bool (*before) (const struct piece *, const struct piece *))
{
  for (uint32_t gap = n / 2; gap > 0; gap /= 2)
    for (uint32_t i = gap; i < n; i++) {
      struct piece t = p[i];
      uint32_t j = i;
      for (; j >= gap && before (&t, &p[j - gap]); j -= gap)
        p[j] = p[j - gap];
      p[j] = t;
    }
}

static bool
build_dict (struct cache *k, struct cache_idle *d, unsigned min_idle)
{
  const uint32_t want = CACHE_DICT_BYTES / DICT_PIECE, ncand = 2 * want;
  uint64_t n = 0, idle = 0, seen = 0, step;
  uint32_t got = 0, len = 0;

  for (uint64_t b = 0; b < k->nblocks; b++) {
    uint32_t f = k->meta[b].flags;
    if ((f & (CM_PRESENT | CM_SAME | CM_SPILLED | CM_HUGE)) == CM_PRESENT) {
      n++;
      idle += age (k, f) >= min_idle;
    }
  }
  if (n < DICT_MIN_BLOCKS || idle * 2 < n)
    return false;
  step = n / ncand ? n / ncand : 1;
  for (uint64_t b = 0; b < k->nblocks && got < ncand; b++) {
    if ((k->meta[b].flags & (CM_PRESENT | CM_SAME | CM_SPILLED | CM_HUGE)) != CM_PRESENT ||
        seen++ % step != 0)
      continue;
    pthread_mutex_t *l = &k->stripes[b % CACHE_NSTRIPES];
    pthread_mutex_lock (l);
    bool ok = cache_has_object (&k->meta[b]) && cache_decode (k, b, d->buf) == 0;
    pthread_mutex_unlock (l);
    if (!ok)
      continue;
    struct piece *p = &d->pieces[got];
    uint32_t at = (uint32_t) ((got * 2654435761u) % (k->bs / DICT_PIECE)) * DICT_PIECE;
    memcpy (d->cand + (size_t) got * DICT_PIECE, d->buf + at, DICT_PIECE);
    p->at = got;
    p->score = LZ4_compress_fast_extState (d->fast, (const char *) d->buf + at,
                                           (char *) d->out, DICT_PIECE, (int) k->bs, 1);
    got++;
  }
  if (got < DICT_MIN_BLOCKS || atomic_load (&k->st.hc_blocks) != 0)
    return false;
  uint32_t keep = got > want ? want : got;
  sort_pieces (d->pieces, got, before_by_score);
  sort_pieces (d->pieces, keep, before_by_place);
  for (uint32_t i = 0; i < keep; i++, len += DICT_PIECE)
    memcpy (k->dict + len, d->cand + (size_t) d->pieces[i].at * DICT_PIECE, DICT_PIECE);
  atomic_store (&k->dict_len, len);
  return true;
}

/* The dictionary into the compressor's state, for one pass. */
static void
load_dict (struct cache *k, struct cache_idle *d)
{
  LZ4_initStreamHC (d->dict_state, sizeof *d->dict_state);
  LZ4_resetStreamHC_fast (d->dict_state, RECOMP_LEVEL);
  LZ4_loadDictHC (d->dict_state, (const char *) k->dict, (int) k->dict_len);
}

/* Compress d->buf (block b) against the dictionary into d->out; the
 * size, or 0 if it does not fit under the raw threshold or does not
 * decode back to the same bytes. */
static int
compress_hc (struct cache *k, struct cache_idle *d)
{
  memcpy (d->work, d->dict_state, sizeof *d->work);
  int r = LZ4_compress_HC_continue (d->work, (const char *) d->buf, (char *) d->out,
                                    (int) k->bs, (int) k->zp_threshold);
  if (r <= 0)
    return 0;
  if (LZ4_decompress_safe_usingDict ((const char *) d->out, (char *) d->check, r,
                                     (int) k->bs, (const char *) k->dict,
                                     (int) k->dict_len) != (int) k->bs ||
      memcmp (d->check, d->buf, k->bs) != 0)
    return 0;
  return r;
}

/* Recompress block b if it is still a candidate.  True if it got smaller. */
static bool
recompress_block (struct cache *k, struct cache_idle *d, uint64_t b, unsigned min_idle)
{
  pthread_mutex_t *l = &k->stripes[b % CACHE_NSTRIPES];
  struct cmeta *m = &k->meta[b];
  bool smaller = false;

  pthread_mutex_lock (l);
  if (!candidate (k, m->flags, min_idle) || cache_decode (k, b, d->buf) == -1) {
    pthread_mutex_unlock (l);
    return false;
  }
  m->flags |= CM_RECOMP;
  pthread_mutex_unlock (l);

  int r = compress_hc (k, d);
  atomic_fetch_add (&k->st.recomp_tried, 1);

  pthread_mutex_lock (l);
  if ((m->flags & CM_RECOMP) && cache_has_object (m)) {
    m->flags &= ~(uint32_t) CM_RECOMP;
    uint64_t h = 0;
    if (r > 0 && zpool_class_size (k->zp, (uint32_t) r) < zpool_class_size (k->zp, m->csize))
      h = zpool_alloc (k->zp, (uint32_t) r, (uint32_t) b, false);
    if (h) {
      memcpy (zpool_map (k->zp, h), d->out, (size_t) r);
      struct cmeta n = *m;
      n.handle = h;
      n.csize = (uint32_t) r;
      n.flags &= ~(uint32_t) (CM_HUGE | CM_SKIP (0xf) | CM_SPILLING);
      n.flags |= CM_HC | CM_COLD;
      zpool_free (k->zp, m->handle);
      atomic_fetch_add (&k->st.recomp_saved, m->csize - (uint32_t) r);
      cache_account (k, m, &n);
      *m = n;
      smaller = true;
    }
    else
      m->flags |= CM_COLD;             /* no better, or no memory: leave it */
  }
  pthread_mutex_unlock (l);
  return smaller;
}

/* Sleep (waking early to stop) so that the pass's CPU time stays under
 * its share of the wall time.  True if stopping. */
static bool
throttle (struct cache_idle *d, uint64_t cpu0, uint64_t wall0)
{
  uint64_t cpu = thread_cpu_ns () - cpu0, wall = sync_now_ns () - wall0;
  uint64_t want = cpu * 100 / CACHE_RECOMP_CPU_PCT;
  bool stop;

  pthread_mutex_lock (&d->lock);
  if (want > wall && !d->stopping) {
    struct timespec dl = sync_deadline_ns (want - wall);
    pthread_cond_timedwait (&d->wake, &d->lock, &dl);
  }
  stop = d->stopping;
  pthread_mutex_unlock (&d->lock);
  return stop;
}

static uint64_t
pass (struct cache *k, struct cache_idle *d, unsigned min_idle, bool budget)
{
  uint64_t made = 0, cpu0 = thread_cpu_ns (), wall0 = sync_now_ns (), n = 0;

  pthread_mutex_lock (&d->pass_lock);
  if (atomic_load (&k->st.hc_blocks) != 0 || build_dict (k, d, min_idle)) {
    load_dict (k, d);
    for (uint64_t b = 0; b < k->nblocks; b++) {
      if (!candidate (k, k->meta[b].flags, min_idle))   /* a quick look; checked locked */
        continue;
      if (recompress_block (k, d, b, min_idle))
        made++;
      if (budget && ++n % 16 == 0 && throttle (d, cpu0, wall0))
        break;
    }
    atomic_fetch_add (&k->st.recomp_blocks, made);
  }
  /* The old objects left holes in their chunks: what the pass saved is
   * memory only once compaction has moved the holes together. */
  if (made)
    cache_compact (&k->s);
  /* Not in swap mode: the memory is locked, and stays so. */
  if (!k->io_flusher)
    madvise (d->dict_state, WORK_BYTES, MADV_DONTNEED);
  atomic_fetch_add (&k->st.recomp_passes, 1);
  atomic_fetch_add (&k->st.recomp_cpu_ns, thread_cpu_ns () - cpu0);
  pthread_mutex_unlock (&d->pass_lock);
  return made;
}

static void *
idle_thread (void *arg)
{
  struct cache *k = arg;
  struct cache_idle *d = k->idle;
  unsigned every = k->recomp_idle / 2 ? k->recomp_idle / 2 : 1, waited = 0;

  cache_thread_setup (k);
  pthread_setname_np (pthread_self (), "sgblk-idle");
  (void) setpriority (PRIO_PROCESS, (id_t) gettid (), 19);
  pthread_mutex_lock (&d->lock);
  while (!d->stopping) {
    struct timespec dl = sync_deadline_ns (1000000000u);
    pthread_cond_timedwait (&d->wake, &d->lock, &dl);
    if (d->stopping)
      break;
    pthread_mutex_unlock (&d->lock);
    cache_tick (k);
    /* Blocks written just over recomp_idle ago are due: a pass every
     * half of it finds each within 1.5 times the idle time. */
    if (++waited >= every) {
      waited = 0;
      pass (k, d, k->recomp_idle, true);
    }
    pthread_mutex_lock (&d->lock);
  }
  pthread_mutex_unlock (&d->lock);
  return NULL;
}

int
cache_idle_start (struct cache *k)
{
  struct cache_idle *d = calloc (1, sizeof *d);

  if (d == NULL)
    return -1;
  void *states = mmap (NULL, WORK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  d->buf = malloc (3 * (size_t) k->bs);
  if (states == MAP_FAILED || d->buf == NULL) {
    if (states != MAP_FAILED)
      munmap (states, WORK_BYTES);
    free (d->buf);
    free (d);
    errno = ENOMEM;
    return -1;
  }
  d->dict_state = states;
  d->work = (LZ4_streamHC_t *) ((uint8_t *) states + STATE_BYTES);
  d->fast = (LZ4_stream_t *) ((uint8_t *) states + 2 * STATE_BYTES);
  d->cand = (uint8_t *) states + 2 * STATE_BYTES + FAST_BYTES;
  d->pieces = (struct piece *) (d->cand + CAND_BYTES);
  d->out = d->buf + k->bs;
  d->check = d->out + k->bs;
  pthread_mutex_init (&d->lock, NULL);
  pthread_cond_init (&d->wake, NULL);
  pthread_mutex_init (&d->pass_lock, NULL);
  k->idle = d;
  cache_tick (k);
  return 0;
}

int
cache_idle_run (struct cache *k)
{
  struct cache_idle *d = k->idle;

  if (d == NULL || d->running)
    return 0;
  if (cache_thread_start (k, &d->thread, idle_thread, k) == -1)
    return -1;
  d->running = true;
  return 0;
}

void
cache_idle_stop (struct cache *k)
{
  struct cache_idle *d = k->idle;

  if (d == NULL)
    return;
  if (d->running) {
    pthread_mutex_lock (&d->lock);
    d->stopping = true;
    pthread_cond_signal (&d->wake);
    pthread_mutex_unlock (&d->lock);
    pthread_join (d->thread, NULL);
  }
  pthread_cond_destroy (&d->wake);
  pthread_mutex_destroy (&d->lock);
  pthread_mutex_destroy (&d->pass_lock);
  munmap (d->dict_state, WORK_BYTES);
  free (d->buf);
  free (d);
  k->idle = NULL;
}

uint64_t
cache_recompress (struct store *s, unsigned min_idle)
{
  struct cache *k = cache_of (s);

  if (k == NULL || k->idle == NULL)
    return 0;
  cache_tick (k);
  return pass (k, k->idle, min_idle, false);
}
