/* The spill file: where the in-memory disk puts its coldest blocks when
 * memory runs short, and reads them back from on demand.
 *
 * The file is scratch space.  Its first 4 KiB are a header that says so
 * (SPILL_MAGIC); then come slots of one block each, slot s at
 * SPILL_HEADER + s * block size.  A spilled block's entry keeps its flags
 * (HUGE, HC) and compressed size, gains SPILLED, and its handle is its
 * slot: the object is written as it was in memory, so reading it back is
 * one pread and the usual decode.  The file is truncated to its header at
 * open and at close: nothing in it survives a restart, and an existing
 * file that does not start with the header is somebody else's and is
 * refused.  flock keeps a second daemon off it.
 *
 * Slots: a bitmap of one bit per block (a block never needs two slots)
 * under 'lock', allocated next-fit so that one batch's slots are mostly
 * consecutive and go out in one pwrite.  A slot is released, under the
 * owning block's stripe lock, when the block is rewritten, trimmed or
 * brought back.
 *
 * The spiller thread wakes when memory in use passes the high watermark
 * (CACHE_SPILL_HIGH_PCT of mem_limit) and spills until it is under the
 * low one (CACHE_SPILL_LOW_PCT): incompressible blocks first, then the
 * others, each kind oldest write first, in the order of a histogram of
 * write ages taken at the start of the round; blocks written in the last
 * second go last.  A writer that finds the memory limit reached waits for
 * a round (spill_waits) instead of failing, and fails with ENOSPC only if
 * the round freed nothing.  Nothing is written to the file while memory
 * stays under the high watermark.
 *
 * Spilling one block: under its stripe lock the object is copied into
 * the batch buffer and the entry marked SPILLING; the batch is written
 * without any stripe lock; then, under the lock again, an entry still
 * marked SPILLING (nothing wrote it, nor recompressed it) gives up its
 * object for the slot.  Otherwise the slot is released.  Emptied chunks
 * only turn into free memory after compaction, which each round runs.
 * A failed write leaves every block of its batch in memory, is counted
 * (bd_errors) and ends the round.
 *
 * The file is opened O_DIRECT where the filesystem allows it, so that
 * spilling does not fill the page cache, which matters when the machine
 * is swapping onto this disk; buffers are aligned and whole blocks.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "sync.h"

#define SPILL_HEADER 4096u
#define SPILL_MAGIC "sgblk spill file\n"
#define SPILL_BATCH_BYTES (1u << 20)
#define ROUNDS 4                          /* rounds a pass tries before giving up */
#define AGE_BUCKETS 17                    /* 0, then log2 of the age: 1..16 */

struct cache_spill {
  int fd;
  uint64_t high, low;                    /* bytes of memory in use */
  pthread_mutex_t lock;                  /* bitmap, hint */
  uint64_t *bitmap, hint;
  uint8_t *buf;                          /* the batch, SPILL_BATCH_BYTES */
  uint64_t *batch_block, *batch_slot;
  uint32_t batch_max;
  uint64_t hand;                         /* where the next sweep starts */

  pthread_t thread;
  bool running;
  pthread_mutex_t tlock;                 /* the fields below */
  pthread_cond_t wake, progress;
  bool kicked, urgent, stopping;
  uint64_t started, done;                /* passes */
  bool freed;                            /* the last pass freed something */
  int error;                             /* its file error, 0 if none */
};

/* ---- slots ---- */

static int64_t
take_slot (struct cache *k)
{
  struct cache_spill *sp = k->spill;
  uint64_t words = (k->nblocks + 63) / 64;
  int64_t slot = -1;

  pthread_mutex_lock (&sp->lock);
  for (uint64_t i = 0; i < words; i++) {
    uint64_t w = (sp->hint / 64 + i) % words;
    if (sp->bitmap[w] != UINT64_MAX) {
      unsigned bit = (unsigned) __builtin_ctzll (~sp->bitmap[w]);
      if (w * 64 + bit >= k->nblocks)
        continue;
      sp->bitmap[w] |= UINT64_C (1) << bit;
      slot = (int64_t) (w * 64 + bit);
      sp->hint = (uint64_t) slot + 1;
      break;
    }
  }
  pthread_mutex_unlock (&sp->lock);
  return slot;
}

void
cache_spill_release (struct cache *k, uint64_t slot)
{
  struct cache_spill *sp = k->spill;

  pthread_mutex_lock (&sp->lock);
  sp->bitmap[slot / 64] &= ~(UINT64_C (1) << (slot % 64));
  pthread_mutex_unlock (&sp->lock);
}

static inline off_t
slot_offset (const struct cache *k, uint64_t slot)
{
  return (off_t) (SPILL_HEADER + (slot << k->shift));
}

int
cache_spill_read (struct cache *k, uint64_t slot, uint8_t *buf)
{
  ssize_t r = pread (k->spill->fd, buf, k->bs, slot_offset (k, slot));

  if (r != (ssize_t) k->bs) {
    atomic_store (&k->st.bd_last_error, (uint64_t) (r == -1 ? errno : EIO));
    atomic_fetch_add (&k->st.bd_errors, 1);
    errno = EIO;
    return -1;
  }
  atomic_fetch_add_explicit (&k->st.bd_reads, 1, memory_order_relaxed);
  return 0;
}

/* ---- watermarks ---- */

bool
cache_spill_room (struct cache *k)
{
  return zpool_mem_in_use (k->zp) < k->spill->low;
}

void
cache_spill_kick (struct cache *k)
{
  struct cache_spill *sp = k->spill;

  if (sp == NULL || zpool_mem_in_use (k->zp) <= sp->high)
    return;
  pthread_mutex_lock (&sp->tlock);
  if (!sp->kicked) {
    sp->kicked = true;
    pthread_cond_signal (&sp->wake);
  }
  pthread_mutex_unlock (&sp->tlock);
}

int
cache_spill_wait (struct cache *k)
{
  struct cache_spill *sp = k->spill;
  int err = 0;

  atomic_fetch_add (&k->st.spill_waits, 1);
  pthread_mutex_lock (&sp->tlock);
  uint64_t pass = sp->started + 1;       /* the first pass to see the kick */
  sp->kicked = sp->urgent = true;
  pthread_cond_signal (&sp->wake);
  while (sp->done < pass && !sp->stopping)
    pthread_cond_wait (&sp->progress, &sp->tlock);
  /* A pass that freed nothing fails the writer, unless another freed
   * enough before it (it then found nothing to do): there is room.  A
   * failing spill file is counted and reported apart; to the writer it
   * means what a full memory means. */
  if (sp->done >= pass && !sp->freed && zpool_mem_in_use (k->zp) > sp->low)
    err = ENOSPC;
  else if (sp->stopping)
    err = ESHUTDOWN;
  pthread_mutex_unlock (&sp->tlock);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

/* ---- spilling ---- */

static unsigned
bucket (unsigned age)
{
  return age == 0 ? 0 : 32 - (unsigned) __builtin_clz (age) > 16 ? 16 : 32 - (unsigned) __builtin_clz (age);
}

/* The order blocks go in: incompressible ones, oldest first, then the
 * others, oldest first; those written in the last second after both. */
static unsigned
rank (uint32_t flags, unsigned age)
{
  unsigned bk = bucket (age), huge = (flags & CM_HUGE) != 0;
  if (bk == 0)
    return huge ? 32 : 33;
  return huge ? 16 - bk : 32 - bk;
}

static inline unsigned
block_age (const struct cache *k, uint32_t flags)
{
  return (atomic_load_explicit (&k->now, memory_order_relaxed) - CM_STAMP (flags)) & 0xffffu;
}

static inline bool
spillable (uint32_t f)
{
  return (f & (CM_PRESENT | CM_SAME | CM_SPILLED | CM_SPILLING | CM_BAD)) == CM_PRESENT;
}

/* The highest rank to spill to free 'need' bytes, from a histogram of
 * object bytes by rank. */
static unsigned
cut_rank (struct cache *k, uint64_t need)
{
  uint64_t bytes[34] = { 0 }, sum = 0;

  for (uint64_t b = 0; b < k->nblocks; b++) {
    uint32_t f = k->meta[b].flags;
    if (spillable (f))
      bytes[rank (f, block_age (k, f))] += k->meta[b].csize;
  }
  for (unsigned r = 0; r < 34; r++) {
    sum += bytes[r];
    if (sum >= need)
      return r;
  }
  return 33;
}

/* Write the batch's n objects to their slots, consecutive slots in one
 * pwrite; then give each block its slot, or the slot back.  -1 with
 * errno if a write failed (every block stays in memory). */
static int
write_batch (struct cache *k, uint32_t n, uint64_t *spilled)
{
  struct cache_spill *sp = k->spill;
  int err = 0;

  for (uint32_t i = 0; i < n && !err; ) {
    uint32_t j = i + 1;
    while (j < n && sp->batch_slot[j] == sp->batch_slot[j - 1] + 1)
      j++;
    size_t len = (size_t) (j - i) << k->shift;
    ssize_t r = pwrite (sp->fd, sp->buf + ((size_t) i << k->shift), len,
                        slot_offset (k, sp->batch_slot[i]));
    if (r != (ssize_t) len)
      err = r == -1 ? errno : EIO;
    i = j;
  }
  for (uint32_t i = 0; i < n; i++) {
    uint64_t b = sp->batch_block[i];
    pthread_mutex_t *l = &k->stripes[b % CACHE_NSTRIPES];
    struct cmeta *m = &k->meta[b];
    pthread_mutex_lock (l);
    bool keep = (m->flags & CM_SPILLING) && cache_has_object (m);
    if (keep && !err) {
      struct cmeta o = *m;
      zpool_free (k->zp, m->handle);
      m->handle = sp->batch_slot[i];
      m->flags = (m->flags & ~(uint32_t) CM_SPILLING) | CM_SPILLED;
      cache_account (k, &o, m);
      (*spilled)++;
    }
    else {
      if (keep)
        m->flags &= ~(uint32_t) CM_SPILLING;
      cache_spill_release (k, sp->batch_slot[i]);
    }
    pthread_mutex_unlock (l);
  }
  if (err) {
    atomic_store (&k->st.bd_last_error, (uint64_t) err);
    atomic_fetch_add (&k->st.bd_errors, 1);
    errno = err;
    return -1;
  }
  atomic_fetch_add (&k->st.bd_writes, n);
  return 0;
}

/* One sweep over the map from the hand: spill blocks of rank <= cut
 * until 'need' bytes of objects are out.  Returns the blocks spilled, or
 * -1 with errno. */
static int64_t
sweep (struct cache *k, unsigned cut, uint64_t need)
{
  struct cache_spill *sp = k->spill;
  uint64_t spilled = 0, out = 0;
  uint32_t n = 0;

  for (uint64_t step = 0; step < k->nblocks && out < need; step++) {
    uint64_t b = sp->hand++ % k->nblocks;
    uint32_t f = k->meta[b].flags;           /* a quick look; checked locked */
    if (!spillable (f) || rank (f, block_age (k, f)) > cut)
      continue;
    pthread_mutex_t *l = &k->stripes[b % CACHE_NSTRIPES];
    struct cmeta *m = &k->meta[b];
    pthread_mutex_lock (l);
    if (spillable (m->flags) && rank (m->flags, block_age (k, m->flags)) <= cut) {
      int64_t slot = take_slot (k);
      if (slot >= 0) {
        memcpy (sp->buf + ((size_t) n << k->shift), zpool_map (k->zp, m->handle), m->csize);
        m->flags |= CM_SPILLING;
        out += m->csize;
        sp->batch_block[n] = b;
        sp->batch_slot[n++] = (uint64_t) slot;
      }
    }
    pthread_mutex_unlock (l);
    if (n == sp->batch_max || (n > 0 && (out >= need || step + 1 == k->nblocks))) {
      if (write_batch (k, n, &spilled) == -1)
        return -1;
      n = 0;
    }
  }
  if (n > 0 && write_batch (k, n, &spilled) == -1)
    return -1;
  return (int64_t) spilled;
}

/* Spill until memory in use is at most keep.  The blocks spilled, or -1
 * with errno if the file failed before anything was. */
static int64_t
spill_to (struct cache *k, uint64_t keep)
{
  int64_t total = 0;

  cache_tick (k);
  for (int round = 0; round < ROUNDS; round++) {
    uint64_t used = zpool_mem_in_use (k->zp);
    if (used <= keep)
      break;
    /* Objects leave holes that only compaction turns into free memory:
     * aim a quarter past what is needed. */
    uint64_t need = (used - keep) + (used - keep) / 4;
    int64_t n = sweep (k, cut_rank (k, need), need);
    if (n == -1)
      return total ? total : -1;
    cache_compact (&k->s);
    total += n;
    if (n == 0)
      break;
  }
  return total;
}

int64_t
cache_spill (struct store *s, uint64_t keep)
{
  struct cache *k = cache_of (s);

  if (k == NULL || k->spill == NULL) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock (&k->spill->tlock);       /* not beside the thread's pass */
  while (k->spill->started != k->spill->done)
    pthread_cond_wait (&k->spill->progress, &k->spill->tlock);
  k->spill->started++;
  pthread_mutex_unlock (&k->spill->tlock);
  int64_t r = spill_to (k, keep);
  int e = errno;
  pthread_mutex_lock (&k->spill->tlock);
  k->spill->done++;
  pthread_cond_broadcast (&k->spill->progress);
  pthread_mutex_unlock (&k->spill->tlock);
  errno = e;
  return r;
}

static void *
spiller (void *arg)
{
  struct cache *k = arg;
  struct cache_spill *sp = k->spill;

  cache_thread_setup (k);
  pthread_setname_np (pthread_self (), "sgblk-spill");
  pthread_mutex_lock (&sp->tlock);
  while (!sp->stopping) {
    if (!sp->kicked) {
      struct timespec dl = sync_deadline_ns (1000000000u);
      pthread_cond_timedwait (&sp->wake, &sp->tlock, &dl);
    }
    if (sp->stopping)
      break;
    if (sp->started != sp->done) {         /* cache_spill is running one */
      pthread_cond_wait (&sp->progress, &sp->tlock);
      continue;
    }
    bool urgent = sp->urgent;
    sp->kicked = sp->urgent = false;
    sp->started++;
    pthread_mutex_unlock (&sp->tlock);
    cache_tick (k);
    int64_t n = 0;
    int err = 0;
    if (urgent || zpool_mem_in_use (k->zp) > sp->high) {
      n = spill_to (k, sp->low);
      if (n == -1)
        err = errno;
    }
    pthread_mutex_lock (&sp->tlock);
    sp->done++;
    sp->freed = n > 0;
    sp->error = err;
    pthread_cond_broadcast (&sp->progress);
  }
  pthread_mutex_unlock (&sp->tlock);
  return NULL;
}

/* ---- open and close ---- */

/* Take 'path' as the spill file: new, empty, or an old spill file. */
static int
open_file (const char *path)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT, 0600);
  if (fd == -1 && errno == EINVAL)          /* no O_DIRECT here (tmpfs) */
    fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1)
    return -1;
  struct stat sb;
  if (fstat (fd, &sb) == -1 || !S_ISREG (sb.st_mode)) {
    close (fd);
    errno = EINVAL;                         /* not a regular file */
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    close (fd);
    errno = EBUSY;                          /* another daemon's */
    return -1;
  }
  uint8_t *head = aligned_alloc (4096, SPILL_HEADER);
  if (head == NULL) {
    close (fd);
    return -1;
  }
  if (sb.st_size > 0 &&
      (pread (fd, head, SPILL_HEADER, 0) < (ssize_t) strlen (SPILL_MAGIC) ||
       memcmp (head, SPILL_MAGIC, strlen (SPILL_MAGIC)) != 0)) {
    free (head);
    close (fd);
    errno = EEXIST;                         /* somebody's data */
    return -1;
  }
  memset (head, 0, SPILL_HEADER);
  snprintf ((char *) head, SPILL_HEADER, "%s%s", SPILL_MAGIC,
            "Scratch space of a running sgblkd: blocks of an in-memory disk.\n"
            "Nothing here survives a restart; the daemon empties it at start and exit.\n");
  int r = ftruncate (fd, 0) == 0 && pwrite (fd, head, SPILL_HEADER, 0) == SPILL_HEADER ? 0 : -1;
  int e = errno;
  free (head);
  if (r == -1) {
    close (fd);
    errno = e;
    return -1;
  }
  return fd;
}

int
cache_spill_open (struct cache *k, const char *path)
{
  struct cache_spill *sp = calloc (1, sizeof *sp);

  if (sp == NULL)
    return -1;
  sp->fd = -1;
  sp->high = k->mem_limit / 100 * CACHE_SPILL_HIGH_PCT;
  sp->low = k->mem_limit / 100 * CACHE_SPILL_LOW_PCT;
  sp->batch_max = SPILL_BATCH_BYTES >> k->shift;
  sp->bitmap = calloc ((k->nblocks + 63) / 64, sizeof *sp->bitmap);
  sp->buf = aligned_alloc (4096, SPILL_BATCH_BYTES);
  sp->batch_block = calloc (sp->batch_max, sizeof *sp->batch_block);
  sp->batch_slot = calloc (sp->batch_max, sizeof *sp->batch_slot);
  pthread_mutex_init (&sp->lock, NULL);
  pthread_mutex_init (&sp->tlock, NULL);
  pthread_cond_init (&sp->wake, NULL);
  pthread_cond_init (&sp->progress, NULL);
  k->spill = sp;
  if (sp->bitmap == NULL || sp->buf == NULL || sp->batch_block == NULL ||
      sp->batch_slot == NULL) {
    cache_spill_close (k);
    errno = ENOMEM;
    return -1;
  }
  /* Touched now: in swap mode nothing may fault in while spilling. */
  memset (sp->buf, 0, SPILL_BATCH_BYTES);
  sp->fd = open_file (path);
  if (sp->fd == -1) {
    int e = errno;
    cache_spill_close (k);
    errno = e;
    return -1;
  }
  return 0;
}

int
cache_spill_run (struct cache *k)
{
  struct cache_spill *sp = k->spill;

  if (sp == NULL || sp->running)
    return 0;
  if (cache_thread_start (k, &sp->thread, spiller, k) == -1)
    return -1;
  sp->running = true;
  return 0;
}

void
cache_spill_close (struct cache *k)
{
  struct cache_spill *sp = k->spill;

  if (sp == NULL)
    return;
  if (sp->running) {
    pthread_mutex_lock (&sp->tlock);
    sp->stopping = true;
    pthread_cond_signal (&sp->wake);
    pthread_cond_broadcast (&sp->progress);
    pthread_mutex_unlock (&sp->tlock);
    pthread_join (sp->thread, NULL);
  }
  if (sp->fd != -1) {
    if (ftruncate (sp->fd, SPILL_HEADER) == -1) {
      /* scratch space: what is left is overwritten at the next start */
    }
    close (sp->fd);
  }
  pthread_cond_destroy (&sp->progress);
  pthread_cond_destroy (&sp->wake);
  pthread_mutex_destroy (&sp->tlock);
  pthread_mutex_destroy (&sp->lock);
  free (sp->batch_slot);
  free (sp->batch_block);
  free (sp->buf);
  free (sp->bitmap);
  free (sp);
  k->spill = NULL;
}
