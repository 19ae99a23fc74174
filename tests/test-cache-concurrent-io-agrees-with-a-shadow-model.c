/* The write-back cache under concurrent I/O agrees with a shadow model of
 * what every read must return and what must have reached the file.
 *
 * Four threads do random plain writes, FUA writes, bursts of rewrites,
 * zeroes, trims, reads and flushes on a small cache over a temporary file:
 * write-back with 4 KiB blocks (1 MiB file, 96 KiB of memory: the flusher
 * runs all the time, clean blocks are evicted and writers wait for room),
 * write-back with 64 KiB blocks (4 MiB, 512 KiB) and write-through with
 * 4 KiB blocks.  The file store is wrapped in one that pauses up to
 * 100 us before each write or zero, like a busy disk, so that write-backs
 * and FUA writes are on their way long enough for other threads to write
 * to their blocks meanwhile.
 *
 * Ownership: every 512-byte sector has one owner thread, which alone
 * writes it, so that its expected content is exact; but the sectors of a
 * cache block belong to several threads, which race on the block.  The
 * first half of the file is owned sector by sector (sector s by thread
 * s % 4; a quarter of the requests go to its first 4 blocks), the second
 * half in runs of 8 KiB, so that multi-sector, two-segment and (with
 * 4 KiB blocks) whole-block requests happen too.
 *
 * Contents: a written sector holds a header (magic, sector, version,
 * filler kind) and a filler derived from (sector, version), compressible,
 * or random for a quarter of the writes to the second half (incompressible
 * blocks, tight memory).  The first half stays compressible so that its
 * blocks share a size class, where a rewrite most often gets back the
 * object slot its block had before.  Any 512 bytes decode to exactly one
 * version of their sector, or are all zeroes, or are garbage.
 *
 * The model, per sector: 'started' is the version of its owner's latest
 * operation (counted up before the request is issued), 'done' the latest
 * completed, and a ring of the kinds of the last 64 versions tells which
 * versions were zeroes or trims (version 0, the initial content, is
 * zeroes).  Rules:
 *   - A read of the cache returns a version in [done before the read,
 *     started after it]; for the reader's own sectors, exactly the last
 *     version.
 *   - After a flush returns, the file (read through a second descriptor,
 *     so "durable" means "handed to the file store") holds for every
 *     sector a version in [done before the flush started, started now]:
 *     what was written before a flush started is in the file after it.
 *   - A completed FUA write is in the file at once (the writer reads its
 *     sectors back from the file), and so is every completed write, zero
 *     and trim in write-through mode.
 *   - All-zero content matches if one of the acceptable versions is a
 *     zero or trim; if the owner has moved on more than 61 versions since,
 *     the ring cannot tell, and zeroes are accepted (and counted).
 *   - At the end, after joining, after a flush, and after closing the
 *     cache, the file and the cache hold exactly every sector's last
 *     version.
 * A flushing thread checks the whole file and then the whole cache; every
 * thread reads back its own ranges, and now and then the whole cache.  A
 * torn sector is read again until it is whole (up to 10 ms): buffered file
 * reads are not atomic against a write of the same sector, a write-back,
 * or a FUA write under a cache read that missed.  A stale sector is never
 * read again.
 *
 * What it proves: no acknowledged write is lost or undone, whether its
 * block is rewritten, written back, evicted, or bypassed by a FUA or
 * write-through write, while other threads write other sectors of the
 * same block; what a flush or a FUA write must have sent to the file is
 * there.  A failure names the sector, its block and owner, what it held
 * and what was expected, and for a stale file sector whether the cache
 * still has the right data (a write-back was skipped: a block marked
 * clean too early) or not (the cache lost the write).
 *
 * A fifth thread compacts the map every millisecond, so objects move
 * while their blocks are rewritten in place, and runs the idle pass over
 * every block (LZ4HC recompression, without waiting for blocks to be
 * idle), so blocks are recompressed while they are rewritten.
 *
 * A fourth case is the in-memory disk of 2 MiB with a spill file and
 * 512 KiB of memory (each size class in use holds a partly used chunk of
 * up to 36 KiB that spilling cannot empty; much less memory and writers
 * would find it all in such chunks): there is no file to check, only the
 * cache, and the fifth thread also spills the map down to a third of its
 * memory, on top of the spiller that writers wait for at the limit.  Blocks are spilled,
 * read back, rewritten, trimmed and recompressed while others race on
 * them.
 *
 * The first failure stops the run.  A case still running a minute after
 * its time is up is stuck (a deadlock, or memory the cache cannot get
 * back): a watchdog aborts it, saying what each thread is doing.  Each
 * case runs SGBLK_CACHE_STRESS_MS (default 3000 ms; 1000 ms under
 * valgrind); SGBLK_CACHE_STRESS_OPS=write,fua,zero,trim,burst,read,flush,
 * verify picks the operations, and SGBLK_CACHE_STRESS_SEED the seed of
 * the threads' choices (their interleaving is not reproducible). */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined __has_include
#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() false
#endif

#include "cache.h"
#include "sync.h"

#define SECTOR 512u
#define NTHREADS 4
#define RUN 16u                    /* second half: sectors per owner run (8 KiB) */
#define RING 64u                   /* versions whose kind is remembered */
#define MAGIC 0x5a4d4f44u
#define MAX_REPORTS 40
#define DISK_DELAY_US 100          /* writes to the file wait up to this */
#define BURST_GAP_US 50            /* between the rewrites of a burst */

/* Operations, and the kind each version of a sector was written by. */
enum op { OP_WRITE, OP_FUA, OP_ZERO, OP_TRIM, OP_BURST, OP_READ, OP_FLUSH, OP_VERIFY, NOPS };
static const char *const op_names[NOPS] = {
  "write", "fua", "zero", "trim", "burst", "read", "flush", "verify",
};
/* Relative frequencies. */
static const unsigned op_weight[NOPS] = { 30, 6, 3, 3, 12, 20, 6, 1 };
#define K_INITIAL NOPS             /* version 0 */

struct sector_state {
  _Atomic uint32_t started, done;
  _Atomic uint8_t kind[RING];      /* kind of version v at v % RING */
};

struct config {
  const char *name;
  uint32_t block_size;
  uint64_t size, mem_limit;
  enum cache_mode mode;
  bool memory;                     /* the in-memory disk with a spill file */
};

struct run {
  const struct config *cfg;
  struct store *s;
  char path[4096];
  int fd;                          /* the backing file, read-only, for the checks */
  char spill[4096 + 8];            /* memory: the spill file */
  uint32_t nsec, half;             /* sectors; first sector of the run-owned half */
  struct sector_state *sec;
  unsigned enabled;                /* bit per enum op */
  unsigned total_weight;
  uint64_t t0, deadline;
  atomic_bool stop;
  atomic_uint failures;
  atomic_uint_fast64_t first_failure;  /* ns after t0, 0 if none */
  atomic_uint_fast64_t undecidable, torn, file_checks, cache_checks;
  pthread_mutex_t log_lock;
  struct worker *ws;
  atomic_int phase;                /* 0 workers, 1 final checks, 2 closing, 3 done */
};

struct worker {
  struct run *r;
  unsigned id;
  uint64_t rng;
  pthread_t thread;
  uint64_t count[NOPS];
  uint8_t *buf;                    /* one request */
  uint8_t *img;                    /* the whole file or cache */
  uint32_t *lo;                    /* done[] snapshot */
  uint32_t v[RUN];
  atomic_int doing;                /* enum op under way, -1 between operations */
  _Atomic uint32_t doing_s0, doing_n;
};

static uint64_t
rnd (struct worker *w)
{
  uint64_t x = w->rng;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  w->rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

static uint32_t
below (struct worker *w, uint32_t n)
{
  return (uint32_t) ((rnd (w) >> 32) * n >> 32);
}

static uint64_t
mix (uint64_t x)
{
  x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* ---- sector contents ---- */

enum filler { F_COMPRESSIBLE, F_RANDOM };

static void
fill_sector (uint8_t *p, uint32_t s, uint32_t v, uint32_t filler)
{
  uint32_t h[4] = { MAGIC, s, v, filler };
  uint64_t x = mix ((uint64_t) s << 32 | v) | 1;

  memcpy (p, h, sizeof h);
  for (uint32_t i = sizeof h; i < SECTOR; i += 8) {
    if (filler == F_RANDOM) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    }
    memcpy (p + i, &x, 8);
  }
}

#define SEEN_ZERO UINT32_MAX
#define SEEN_GARBAGE (UINT32_MAX - 1)

/* The version a sector holds, SEEN_ZERO or SEEN_GARBAGE. */
static uint32_t
decode (const uint8_t *p, uint32_t s)
{
  static const uint8_t zero[SECTOR];
  uint8_t want[SECTOR];
  uint32_t h[4];

  if (memcmp (p, zero, SECTOR) == 0)
    return SEEN_ZERO;
  memcpy (h, p, sizeof h);
  if (h[0] != MAGIC || h[1] != s || h[3] > F_RANDOM || h[2] >= SEEN_GARBAGE)
    return SEEN_GARBAGE;
  fill_sector (want, s, h[2], h[3]);
  return memcmp (p, want, SECTOR) == 0 ? h[2] : SEEN_GARBAGE;
}

/* ---- a slower disk ---- */

/* The file store with a pause of up to delay_us before each write or
 * zero, as on a busy disk: a write-back or a FUA write is on its way long
 * enough for other threads to rewrite its blocks meanwhile. */
struct slow {
  struct store s;
  struct store *file;
  unsigned delay_us;
  atomic_uint_fast64_t n, writes, fua, zeroes, flushes;
};

static void
pause_a_little (struct slow *d)
{
  uint64_t x = mix (atomic_fetch_add (&d->n, 1));
  if (d->delay_us == 0)
    return;
  struct timespec ts = { 0, (long) (x % d->delay_us) * 1000 };
  nanosleep (&ts, NULL);
}

static int
slow_pread (struct store *s, const struct iovec *iov, int cnt, uint64_t off)
{
  return store_pread (((struct slow *) s)->file, iov, cnt, off);
}

static int
slow_pwrite (struct store *s, const struct iovec *iov, int cnt, uint64_t off, unsigned flags)
{
  struct slow *d = (struct slow *) s;
  pause_a_little (d);
  atomic_fetch_add (flags & STORE_FUA ? &d->fua : &d->writes, 1);
  return store_pwrite (d->file, iov, cnt, off, flags);
}

static int
slow_flush (struct store *s)
{
  struct slow *d = (struct slow *) s;
  atomic_fetch_add (&d->flushes, 1);
  return store_flush (d->file);
}

static int
slow_trim (struct store *s, uint64_t off, uint64_t len)
{
  struct slow *d = (struct slow *) s;
  pause_a_little (d);
  atomic_fetch_add (&d->zeroes, 1);
  return store_trim (d->file, off, len);
}

static int
slow_zero (struct store *s, uint64_t off, uint64_t len, unsigned flags)
{
  struct slow *d = (struct slow *) s;
  pause_a_little (d);
  atomic_fetch_add (&d->zeroes, 1);
  return store_zero (d->file, off, len, flags);
}

static int
slow_extent (struct store *s, uint64_t off, uint64_t len, uint64_t *ext_len, bool *allocated)
{
  return store_extent (((struct slow *) s)->file, off, len, ext_len, allocated);
}

static void
slow_stats (struct store *s, struct store_stats *st)
{
  store_get_stats (((struct slow *) s)->file, st);
}

static void
slow_close (struct store *s)
{
  store_close (((struct slow *) s)->file);
}

static const struct store_ops slow_ops = {
  .name = "slow", .pread = slow_pread, .pwrite = slow_pwrite, .flush = slow_flush,
  .trim = slow_trim, .zero = slow_zero, .extent = slow_extent, .stats = slow_stats,
  .close = slow_close,
};

/* ---- the model ---- */

static unsigned
owner (const struct run *r, uint32_t s)
{
  return s < r->half ? s % NTHREADS : (s - r->half) / RUN % NTHREADS;
}

static bool
zeroish (unsigned kind)
{
  return kind == OP_ZERO || kind == OP_TRIM || kind == K_INITIAL;
}

/* The owner announces versions for n sectors from s0 before the request. */
static void
begin (struct worker *w, uint32_t s0, uint32_t n, enum op kind)
{
  for (uint32_t i = 0; i < n; i++) {
    struct sector_state *st = &w->r->sec[s0 + i];
    uint32_t v = atomic_load (&st->started) + 1;
    atomic_store (&st->kind[v % RING], (uint8_t) kind);
    atomic_store (&st->started, v);
    w->v[i] = v;
  }
}

static void
finish (struct worker *w, uint32_t s0, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    atomic_store (&w->r->sec[s0 + i].done, w->v[i]);
}

static const char *
kind_name (const struct sector_state *st, uint32_t v, uint32_t started)
{
  if (v == 0)
    return "initial";
  if (v > started || started - v >= RING - 2)
    return "?";
  unsigned k = atomic_load (&st->kind[v % RING]);
  return k == K_INITIAL ? "initial" : op_names[k];
}

static void report (struct run *r, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
report (struct run *r, const char *fmt, ...)
{
  va_list ap;
  uint64_t t = sync_now_ns () - r->t0;
  uint64_t none = 0;

  atomic_compare_exchange_strong (&r->first_failure, &none, t ? t : 1);
  atomic_store (&r->stop, true);
  unsigned n = atomic_fetch_add (&r->failures, 1);
  if (n >= MAX_REPORTS)
    return;
  pthread_mutex_lock (&r->log_lock);
  printf ("  FAIL [%s, %.3f s] ", r->cfg->name, (double) t / 1e9);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("\n");
  fflush (stdout);
  pthread_mutex_unlock (&r->log_lock);
}

/* Is content 'seen' of sector s acceptable, given lo = done before the
 * content was taken?  Reads 'started' after it. */
static bool
acceptable (struct run *r, uint32_t s, uint32_t seen, uint32_t lo, uint32_t *hi_out)
{
  struct sector_state *st = &r->sec[s];
  uint32_t hi = atomic_load (&st->started);

  *hi_out = hi;
  if (seen == SEEN_GARBAGE)
    return false;
  if (seen != SEEN_ZERO)
    return lo <= seen && seen <= hi;
  if (lo == 0)
    return true;
  bool zero = false;
  for (uint32_t v = lo; v <= hi && v < lo + RING && !zero; v++)
    zero = zeroish (atomic_load (&st->kind[v % RING]));
  /* The kinds read are those of [lo, hi] unless the owner has written
   * over them since. */
  if (!zero && atomic_load (&st->started) > lo + RING - 3) {
    atomic_fetch_add (&r->undecidable, 1);
    return true;
  }
  return zero;
}

static void
describe (char *out, size_t n, const struct sector_state *st, uint32_t seen, uint32_t started)
{
  if (seen == SEEN_ZERO)
    snprintf (out, n, "zeroes");
  else if (seen == SEEN_GARBAGE)
    snprintf (out, n, "garbage");
  else
    snprintf (out, n, "v%u (%s)", seen, kind_name (st, seen, started));
}

static int
read_file (struct run *r, uint8_t *p, size_t len, uint64_t off)
{
  while (len > 0) {
    ssize_t n = pread (r->fd, p, len, (off_t) off);
    if (n <= 0)
      return -1;
    p += n;
    off += (uint64_t) n;
    len -= (size_t) n;
  }
  return 0;
}

static int
read_cache (struct run *r, uint8_t *p, size_t len, uint64_t off)
{
  struct iovec iov = { p, len };
  return store_pread (r->s, &iov, 1, off);
}

static void
snapshot (struct worker *w)
{
  for (uint32_t s = 0; s < w->r->nsec; s++)
    w->lo[s] = atomic_load (&w->r->sec[s].done);
}

/* Check sectors s0 .. s0 + n - 1, read into p from the file or the
 * cache, against w->lo (done before they were read).  Reports the first
 * few wrong ones and how many there were. */
static void
check_sectors (struct worker *w, bool file, const char *after, uint8_t *p,
               uint32_t s0, uint32_t n)
{
  struct run *r = w->r;
  uint32_t wrong = 0, first = 0, last = 0;

  for (uint32_t s = s0; s < s0 + n; s++, p += SECTOR) {
    uint32_t seen = decode (p, s), hi;
    bool ok = acceptable (r, s, seen, w->lo[s], &hi);
    /* A torn sector: the file's page cache does not make reads atomic
     * against a write of the same sector (a write-back; or, for a cache
     * read that missed, its owner's FUA write in flight).  Read again: it
     * must not stay torn. */
    for (int retry = 0; !ok && seen == SEEN_GARBAGE && (file || hi != w->lo[s]) && retry < 100;
         retry++) {
      atomic_fetch_add (&r->torn, 1);
      usleep (100);
      if ((file ? read_file : read_cache) (r, p, SECTOR, (uint64_t) s * SECTOR) == -1)
        break;
      seen = decode (p, s);
      ok = acceptable (r, s, seen, w->lo[s], &hi);
    }
    if (ok)
      continue;
    if (wrong++ == 0)
      first = s;
    last = s;
    if (wrong > 2)
      continue;
    char got[64], want[80], other[128] = "";
    describe (got, sizeof got, &r->sec[s], seen, hi);
    if (hi == w->lo[s])
      snprintf (want, sizeof want, "v%u (%s)", hi, kind_name (&r->sec[s], hi, hi));
    else
      snprintf (want, sizeof want, "v%u (%s) .. v%u", w->lo[s],
                kind_name (&r->sec[s], w->lo[s], hi), hi);
    if (file && r->s) {          /* what does the cache say? */
      uint8_t c[SECTOR];
      char cs[64];
      uint32_t chi, cseen = SEEN_GARBAGE;
      if (read_cache (r, c, SECTOR, (uint64_t) s * SECTOR) == 0)
        cseen = decode (c, s);
      bool cok = acceptable (r, s, cseen, w->lo[s], &chi);
      describe (cs, sizeof cs, &r->sec[s], cseen, chi);
      snprintf (other, sizeof other, "; the cache has %s%s", cs,
                cok ? ": a write-back was skipped" : " too: the cache lost it");
    }
    report (r, "t%u after %s: %s sector %u (block %u, owner t%u) holds %s, expected %s%s",
            w->id, after, file ? "file" : "cache", s,
            (uint32_t) ((uint64_t) s * SECTOR / r->cfg->block_size), owner (r, s),
            got, want, other);
  }
  if (wrong > 2)
    report (r, "t%u after %s: %u %s sectors wrong in all, from %u to %u",
            w->id, after, wrong, file ? "file" : "cache", first, last);
}

static void
check_cache_image (struct worker *w, const char *after)
{
  struct run *r = w->r;

  snapshot (w);
  if (read_cache (r, w->img, (size_t) r->nsec * SECTOR, 0) == -1) {
    report (r, "t%u: reading the cache failed: %s", w->id, strerror (errno));
    return;
  }
  atomic_fetch_add (&r->cache_checks, 1);
  check_sectors (w, false, after, w->img, 0, r->nsec);
}

/* The worker's own sectors, in the cache or the file, hold exactly their
 * last versions. */
static void
check_own (struct worker *w, uint32_t s0, uint32_t n, bool file, const char *after)
{
  struct run *r = w->r;
  size_t len = (size_t) n * SECTOR;
  uint64_t off = (uint64_t) s0 * SECTOR;

  for (uint32_t s = s0; s < s0 + n; s++)
    w->lo[s] = atomic_load (&r->sec[s].done);
  if ((file ? read_file (r, w->buf, len, off) : read_cache (r, w->buf, len, off)) == -1) {
    report (r, "t%u: reading sectors %u+%u from the %s failed: %s", w->id, s0, n,
            file ? "file" : "cache", strerror (errno));
    return;
  }
  check_sectors (w, file, after, w->buf, s0, n);
}

/* ---- operations ---- */

/* A range of the worker's own sectors: one sector in the first half
 * (often in a few hot blocks), up to a run in the second half. */
static void
pick_range (struct worker *w, uint32_t *s0, uint32_t *n)
{
  struct run *r = w->r;
  uint32_t spb = r->cfg->block_size / SECTOR;

  if (below (w, 2) == 0) {
    uint32_t span = r->half / NTHREADS;
    if (below (w, 2) == 0) {       /* the first 4 blocks are hot */
      uint32_t hot = 4 * spb / NTHREADS;
      span = hot < span ? hot : span;
    }
    *s0 = below (w, span) * NTHREADS + w->id;
    *n = 1;
    return;
  }
  uint32_t runs = (r->nsec - r->half) / RUN / NTHREADS;
  uint32_t base = r->half + (below (w, runs) * NTHREADS + w->id) * RUN;
  if (below (w, 4) == 0) {         /* the whole run */
    *s0 = base;
    *n = RUN;
    return;
  }
  uint32_t i = below (w, RUN);
  *s0 = base + i;
  *n = 1 + below (w, RUN - i);
}

static void
pick (struct worker *w, uint32_t *s0, uint32_t *n)
{
  pick_range (w, s0, n);
  atomic_store (&w->doing_s0, *s0);
  atomic_store (&w->doing_n, *n);
}

static void
do_write (struct worker *w, uint32_t s0, uint32_t n, enum op kind)
{
  struct run *r = w->r;
  /* Random fillers (some incompressible blocks) only in the run-owned
   * half: the first half keeps blocks of one size class. */
  uint32_t filler = s0 >= r->half && below (w, 4) == 0 ? F_RANDOM : F_COMPRESSIBLE;
  struct iovec iov[2];
  int cnt = 1;

  begin (w, s0, n, kind);
  for (uint32_t i = 0; i < n; i++)
    fill_sector (w->buf + (size_t) i * SECTOR, s0 + i, w->v[i], filler);
  iov[0] = (struct iovec) { w->buf, (size_t) n * SECTOR };
  if (n > 1 && below (w, 2) == 0) {  /* two segments, split at a sector */
    size_t cut = (size_t) (1 + below (w, n - 1)) * SECTOR;
    iov[0].iov_len = cut;
    iov[1] = (struct iovec) { w->buf + cut, (size_t) n * SECTOR - cut };
    cnt = 2;
  }
  if (store_pwrite (r->s, iov, cnt, (uint64_t) s0 * SECTOR, kind == OP_FUA ? STORE_FUA : 0) == -1)
    report (r, "t%u: %s of sectors %u+%u failed: %s", w->id, op_names[kind], s0, n, strerror (errno));
  finish (w, s0, n);
  /* FUA and write-through writes are in the file when they complete. */
  if (!r->cfg->memory && (kind == OP_FUA || r->cfg->mode == CACHE_MODE_WRITETHROUGH))
    check_own (w, s0, n, true, op_names[kind]);
}

static void
do_zero (struct worker *w, uint32_t s0, uint32_t n, enum op kind)
{
  struct run *r = w->r;
  uint64_t off = (uint64_t) s0 * SECTOR, len = (uint64_t) n * SECTOR;
  int e;

  begin (w, s0, n, kind);
  if (kind == OP_TRIM)
    e = store_trim (r->s, off, len);
  else
    e = store_zero (r->s, off, len, below (w, 2) ? STORE_MAY_TRIM : 0);
  if (e == -1)
    report (r, "t%u: %s of sectors %u+%u failed: %s", w->id, op_names[kind], s0, n, strerror (errno));
  finish (w, s0, n);
  if (r->cfg->mode == CACHE_MODE_WRITETHROUGH)
    check_own (w, s0, n, true, op_names[kind]);
}

/* Flush; then the file holds at least what was done before it, and the
 * cache agrees too. */
static void
do_flush (struct worker *w)
{
  struct run *r = w->r;

  snapshot (w);
  if (store_flush (r->s) == -1) {
    report (r, "t%u: flush failed: %s", w->id, strerror (errno));
    return;
  }
  if (r->cfg->memory) {
    check_cache_image (w, "flush");
    return;
  }
  if (read_file (r, w->img, (size_t) r->nsec * SECTOR, 0) == -1) {
    report (r, "t%u: reading the file failed: %s", w->id, strerror (errno));
    return;
  }
  atomic_fetch_add (&r->file_checks, 1);
  check_sectors (w, true, "flush", w->img, 0, r->nsec);
  check_cache_image (w, "flush");
}

static enum op
choose (struct worker *w)
{
  uint32_t x = below (w, w->r->total_weight);
  for (int k = 0; k < NOPS; k++) {
    if (!(w->r->enabled & 1u << k))
      continue;
    if (x < op_weight[k])
      return (enum op) k;
    x -= op_weight[k];
  }
  return OP_READ;
}

static void *
work (void *arg)
{
  struct worker *w = arg;
  struct run *r = w->r;
  uint32_t s0, n;

  while (!atomic_load (&r->stop) && sync_now_ns () < r->deadline) {
    enum op k = choose (w);
    w->count[k]++;
    atomic_store (&w->doing_n, 0);
    atomic_store (&w->doing, (int) k);
    switch (k) {
    case OP_WRITE: case OP_FUA:
      pick (w, &s0, &n);
      do_write (w, s0, n, k);
      break;
    case OP_BURST:               /* rewrites while a write-back may be on the way */
      pick (w, &s0, &n);
      for (uint32_t i = 2 + below (w, 3); i > 0; i--) {
        do_write (w, s0, n, OP_BURST);
        struct timespec ts = { 0, (long) below (w, BURST_GAP_US) * 1000 };
        nanosleep (&ts, NULL);
      }
      break;
    case OP_ZERO: case OP_TRIM:
      pick (w, &s0, &n);
      do_zero (w, s0, n, k);
      break;
    case OP_READ:
      pick (w, &s0, &n);
      check_own (w, s0, n, false, "read");
      break;
    case OP_FLUSH:
      do_flush (w);
      break;
    case OP_VERIFY:
      check_cache_image (w, "verify");
      break;
    default:
      break;
    }
    atomic_store (&w->doing, -1);
  }
  return NULL;
}

/* Compaction moves objects of sparse chunks while the workers rewrite
 * them: a rewrite in place during a move must not be lost. */
static void *
compactor (void *arg)
{
  struct run *r = arg;

  for (unsigned i = 0; atomic_load (&r->phase) == 0; i++) {
    cache_compact (r->s);
    if (i % 4 == 0)
      cache_recompress (r->s, 0);
    if (r->cfg->memory && i % 2 == 0 && cache_spill (r->s, r->cfg->mem_limit / 3) == -1)
      report (r, "spilling failed: %s", strerror (errno));
    struct timespec ts = { 0, 1000 * 1000 };
    nanosleep (&ts, NULL);
  }
  return NULL;
}

/* A cache that deadlocks fails the test, saying where everybody is,
 * instead of hanging it. */
static void *
watchdog (void *arg)
{
  struct run *r = arg;
  uint64_t limit = r->deadline + (UNDER_VALGRIND () ? 600 : 60) * UINT64_C (1000000000);

  while (atomic_load (&r->phase) < 3) {
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    nanosleep (&ts, NULL);
    if (sync_now_ns () < limit)
      continue;
    int phase = atomic_load (&r->phase);
    printf ("  STUCK [%s, %.3f s] %s\n", r->cfg->name, (double) (sync_now_ns () - r->t0) / 1e9,
            phase == 0 ? "in the workers" : phase == 1 ? "in the final checks" : "closing the cache");
    for (unsigned i = 0; phase == 0 && i < NTHREADS; i++) {
      int k = atomic_load (&r->ws[i].doing);
      uint32_t n = atomic_load (&r->ws[i].doing_n);
      if (k < 0)
        printf ("    t%u between operations\n", i);
      else if (n == 0)
        printf ("    t%u in %s\n", i, op_names[k]);
      else
        printf ("    t%u in %s of sectors %u+%u\n", i, op_names[k],
                atomic_load (&r->ws[i].doing_s0), n);
    }
    struct cache_stats st;
    if (phase < 2 && cache_get_stats (r->s, &st) == 0)
      printf ("    cache: memory used %llu of %llu, %llu blocks present, %llu dirty,"
              " %llu written back, %llu writer waits\n",
              (unsigned long long) st.mem_used, (unsigned long long) st.mem_limit,
              (unsigned long long) st.orig_bytes / st.block_size,
              (unsigned long long) st.dirty_blocks, (unsigned long long) st.written_back,
              (unsigned long long) st.writer_waits);
    fflush (stdout);
    abort ();
  }
  return NULL;
}

/* ---- one case ---- */

static unsigned
env_unsigned (const char *name, unsigned dflt)
{
  const char *e = getenv (name);
  return e && *e ? (unsigned) strtoul (e, NULL, 0) : dflt;
}

static unsigned
enabled_ops (void)
{
  const char *e = getenv ("SGBLK_CACHE_STRESS_OPS");
  unsigned m = 0;

  if (e == NULL || *e == '\0')
    return (1u << NOPS) - 1;
  for (int k = 0; k < NOPS; k++) {
    const char *p = strstr (e, op_names[k]);
    size_t l = strlen (op_names[k]);
    while (p && !((p == e || p[-1] == ',') && (p[l] == ',' || p[l] == '\0')))
      p = strstr (p + 1, op_names[k]);
    if (p)
      m |= 1u << k;
  }
  return m;
}

static void
final_check (struct run *r, struct worker *w, const char *what, bool file)
{
  for (uint32_t s = 0; s < r->nsec; s++) {
    uint32_t done = atomic_load (&r->sec[s].done);
    assert_int_equal (done, atomic_load (&r->sec[s].started));
    w->lo[s] = done;
  }
  if (file)
    assert_int_equal (read_file (r, w->img, (size_t) r->nsec * SECTOR, 0), 0);
  else
    assert_int_equal (read_cache (r, w->img, (size_t) r->nsec * SECTOR, 0), 0);
  check_sectors (w, file, what, w->img, 0, r->nsec);
}

static void
run_case (const struct config *cfg)
{
  struct run *r = calloc (1, sizeof *r);
  struct worker *ws = calloc (NTHREADS, sizeof *ws);
  const char *dir = getenv ("TMPDIR");
  unsigned ms = env_unsigned ("SGBLK_CACHE_STRESS_MS", UNDER_VALGRIND () ? 1000 : 3000);
  unsigned seed = env_unsigned ("SGBLK_CACHE_STRESS_SEED", (unsigned) sync_now_ns ());
  int fd;

  assert_non_null (r);
  assert_non_null (ws);
  r->cfg = cfg;
  r->nsec = (uint32_t) (cfg->size / SECTOR);
  r->half = r->nsec / 2;
  r->sec = calloc (r->nsec, sizeof *r->sec);
  assert_non_null (r->sec);
  for (uint32_t s = 0; s < r->nsec; s++)
    r->sec[s].kind[0] = K_INITIAL;
  r->enabled = enabled_ops ();
  for (int k = 0; k < NOPS; k++)
    if (r->enabled & 1u << k)
      r->total_weight += op_weight[k];
  assert_true (r->total_weight > 0);
  pthread_mutex_init (&r->log_lock, NULL);

  snprintf (r->path, sizeof r->path, "%s/test-cache-concurrent.XXXXXX",
            dir && *dir ? dir : "/tmp");
  fd = mkstemp (r->path);
  assert_true (fd >= 0);
  close (fd);
  struct slow *disk = calloc (1, sizeof *disk);
  assert_non_null (disk);
  struct cache_config cc = { .block_size = cfg->block_size, .mem_limit = cfg->mem_limit,
                             .mode = cfg->mode, .recompress_idle = 3600 };
  if (cfg->memory) {
    snprintf (r->spill, sizeof r->spill, "%s.spill", r->path);
    cc.size = cfg->size;
    cc.spill_path = r->spill;
    r->fd = -1;
  }
  else {
    disk->file = store_file_open (r->path, STORE_FILE_CREATE, cfg->size);
    assert_non_null (disk->file);
    disk->s = (struct store) { .ops = &slow_ops, .size = disk->file->size, .caps = disk->file->caps };
    disk->delay_us = DISK_DELAY_US;
    cc.backing = &disk->s;
    r->fd = open (r->path, O_RDONLY | O_CLOEXEC);
    assert_true (r->fd >= 0);
  }
  r->s = cache_create (&cc);
  assert_non_null (r->s);

  printf ("%s: %u threads, %llu KiB file, %u KiB blocks, %llu KiB memory, %u ms, seed %u\n",
          cfg->name, NTHREADS, (unsigned long long) cfg->size >> 10, cfg->block_size >> 10,
          (unsigned long long) cfg->mem_limit >> 10, ms, seed);
  fflush (stdout);
  r->t0 = sync_now_ns ();
  r->deadline = r->t0 + (uint64_t) ms * 1000000u;
  for (unsigned i = 0; i < NTHREADS; i++) {
    struct worker *w = &ws[i];
    w->r = r;
    w->id = i;
    w->rng = mix ((uint64_t) seed * NTHREADS + i) | 1;
    w->buf = malloc (RUN * SECTOR);
    w->img = malloc ((size_t) r->nsec * SECTOR);
    w->lo = malloc ((size_t) r->nsec * sizeof *w->lo);
    atomic_init (&w->doing, -1);
    assert_true (w->buf && w->img && w->lo);
  }
  r->ws = ws;
  pthread_t dog, mover;
  assert_int_equal (pthread_create (&dog, NULL, watchdog, r), 0);
  assert_int_equal (pthread_create (&mover, NULL, compactor, r), 0);
  for (unsigned i = 0; i < NTHREADS; i++)
    assert_int_equal (pthread_create (&ws[i].thread, NULL, work, &ws[i]), 0);
  for (unsigned i = 0; i < NTHREADS; i++)
    pthread_join (ws[i].thread, NULL);
  atomic_store (&r->phase, 1);
  pthread_join (mover, NULL);
  double secs = (double) (sync_now_ns () - r->t0) / 1e9;

  /* Everything, exactly: the cache, then the file after a flush, then
   * the file after closing the cache. */
  final_check (r, &ws[0], "the end", false);
  assert_int_equal (store_flush (r->s), 0);
  if (!cfg->memory)
    final_check (r, &ws[0], "the final flush", true);
  final_check (r, &ws[0], "the final flush", false);
  if (cfg->memory) {             /* all of it in memory again, then all spilled */
    assert_true (cache_spill (r->s, 0) >= 0);
    final_check (r, &ws[0], "spilling everything", false);
  }

  struct cache_stats st;
  uint64_t total = 0, count[NOPS] = { 0 };
  cache_get_stats (r->s, &st);
  for (unsigned i = 0; i < NTHREADS; i++)
    for (int k = 0; k < NOPS; k++) {
      count[k] += ws[i].count[k];
      total += ws[i].count[k];
    }
  printf ("  %.2f s, %llu ops:", secs, (unsigned long long) total);
  for (int k = 0; k < NOPS; k++)
    printf (" %s %llu", op_names[k], (unsigned long long) count[k]);
  printf ("\n  checked %llu file and %llu cache images (%llu torn sectors read again,"
          " %llu zero sectors undecidable); cache: %llu written back, %llu evicted,"
          " %llu writer waits, %llu misses, %llu objects moved, %llu recompressed, %llu spilled"
          " (%llu read back, %llu spill waits); file: %llu writes, %llu FUA writes, %llu zeroes,"
          " %llu flushes\n",
          (unsigned long long) r->file_checks, (unsigned long long) r->cache_checks,
          (unsigned long long) r->torn, (unsigned long long) r->undecidable,
          (unsigned long long) st.written_back, (unsigned long long) st.evicted,
          (unsigned long long) st.writer_waits, (unsigned long long) st.misses,
          (unsigned long long) st.compactions, (unsigned long long) st.recomp_blocks,
          (unsigned long long) st.bd_writes, (unsigned long long) st.bd_reads,
          (unsigned long long) st.spill_waits, (unsigned long long) disk->writes, (unsigned long long) disk->fua,
          (unsigned long long) disk->zeroes, (unsigned long long) disk->flushes);
  atomic_store (&r->phase, 2);
  store_close (r->s);
  atomic_store (&r->phase, 3);
  pthread_join (dog, NULL);
  free (disk);
  r->s = NULL;
  if (!cfg->memory)
    final_check (r, &ws[0], "closing the cache", true);
  unsigned failures = atomic_load (&r->failures);
  if (failures)
    printf ("  %u failures, the first after %.3f s\n", failures,
            (double) atomic_load (&r->first_failure) / 1e9);
  fflush (stdout);

  if (r->fd != -1)
    close (r->fd);
  unlink (r->path);
  if (cfg->memory) {
    struct stat sb;            /* scratch: emptied to its header at close */
    assert_int_equal (stat (r->spill, &sb), 0);
    assert_int_equal (sb.st_size, 4096);
    unlink (r->spill);
  }
  for (unsigned i = 0; i < NTHREADS; i++) {
    free (ws[i].buf);
    free (ws[i].img);
    free (ws[i].lo);
  }
  pthread_mutex_destroy (&r->log_lock);
  free (r->sec);
  free (r);
  free (ws);
  assert_int_equal (failures, 0);
}

static const struct config writeback_4k = {
  "write-back, 4 KiB blocks", 4096, 1 << 20, 96 << 10, CACHE_MODE_WRITEBACK, false,
};
static const struct config writeback_64k = {
  "write-back, 64 KiB blocks", 65536, 4 << 20, 512 << 10, CACHE_MODE_WRITEBACK, false,
};
static const struct config writethrough_4k = {
  "write-through, 4 KiB blocks", 4096, 1 << 20, 96 << 10, CACHE_MODE_WRITETHROUGH, false,
};

static const struct config memory_spill_4k = {
  "in-memory with a spill file, 4 KiB blocks", 4096, 2 << 20, 512 << 10, CACHE_MODE_WRITEBACK,
  true,
};

static void
in_memory_with_a_spill_file (void **state)
{
  run_case (&memory_spill_4k);
}

static void
write_back_with_4_kib_blocks (void **state)
{
  run_case (&writeback_4k);
}

static void
write_back_with_64_kib_blocks (void **state)
{
  run_case (&writeback_64k);
}

static void
write_through_with_4_kib_blocks (void **state)
{
  run_case (&writethrough_4k);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (write_back_with_4_kib_blocks),
    cmocka_unit_test (write_back_with_64_kib_blocks),
    cmocka_unit_test (write_through_with_4_kib_blocks),
    cmocka_unit_test (in_memory_with_a_spill_file),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
