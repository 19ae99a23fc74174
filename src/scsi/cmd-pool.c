/* The command pool: command objects with their sense buffers attached.
 *
 * Three lists of objects, all under one mutex (held only to link and
 * unlink):
 *   cache    normal objects idle for reuse (at most max_cached);
 *   reserve  complete objects (command and sense buffer) allocated at
 *            create and kept until destroy, handed out only when the
 *            normal path fails;
 *   (out)    objects handed out, counted in in_use.
 * Allocation of a new normal object needs two allocations, command and
 * sense buffer; if either fails nothing half-made is kept, and the get
 * falls back to the reserve (the lesson of Linux's sense_slab livelock
 * fix).  With the reserve empty too, getters wait for a put: no request
 * ever fails for lack of memory, it waits.
 *
 * A prefilled pool is fixed (swap mode): the normal path is the cache
 * alone, an empty cache counts as a failed normal allocation, and puts
 * always cache, so after start-up the pool never calls the allocator.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sync.h"

struct scsi_cmd_pool {
  pthread_mutex_t lock;
  pthread_cond_t returned;
  struct scsi_cmd *cache, *reserve;
  unsigned max_cached, reserve_size;
  uint64_t allocated, in_use, cached, reserve_level;
  uint64_t fallbacks, waits, alloc_failures;
  unsigned fail_every, fail_count;
  unsigned waiters;
  bool fixed;                   /* prefilled: never allocate or free again */
};

static struct scsi_cmd *
new_object (void)
{
  struct scsi_cmd *c = malloc (sizeof *c);
  if (c == NULL)
    return NULL;
  uint8_t *sense = malloc (SCSI_SENSE_BUFFERSIZE);
  if (sense == NULL) {
    free (c);                   /* never keep half an object */
    return NULL;
  }
  memset (c, 0, sizeof *c);
  c->sense = sense;
  return c;
}

static void
free_object (struct scsi_cmd *c)
{
  free (c->sense);
  free (c);
}

struct scsi_cmd_pool *
scsi_cmd_pool_create (const struct scsi_cmd_pool_config *cfg)
{
  struct scsi_cmd_pool *p = calloc (1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->reserve_size = cfg && cfg->reserve ? cfg->reserve : 16;
  p->max_cached = cfg && cfg->max_cached ? cfg->max_cached : 256;
  sync_mutex_init_adaptive (&p->lock);
  pthread_cond_init (&p->returned, NULL);
  for (unsigned i = 0; i < p->reserve_size; i++) {
    struct scsi_cmd *c = new_object ();
    if (c == NULL) {
      int e = errno;
      p->reserve_size = i;
      scsi_cmd_pool_destroy (p);
      errno = e;
      return NULL;
    }
    c->from_reserve = true;
    c->pool_next = p->reserve;
    p->reserve = c;
  }
  p->reserve_level = p->reserve_size;
  return p;
}

int
scsi_cmd_pool_destroy (struct scsi_cmd_pool *p)
{
  if (p == NULL)
    return 0;
  pthread_mutex_lock (&p->lock);
  if (p->in_use) {
    pthread_mutex_unlock (&p->lock);
    errno = EBUSY;
    return -1;
  }
  pthread_mutex_unlock (&p->lock);
  for (struct scsi_cmd *c = p->cache, *n; c; c = n) {
    n = c->pool_next;
    free_object (c);
  }
  for (struct scsi_cmd *c = p->reserve, *n; c; c = n) {
    n = c->pool_next;
    free_object (c);
  }
  pthread_cond_destroy (&p->returned);
  pthread_mutex_destroy (&p->lock);
  free (p);
  return 0;
}

/* The test hook: true if this normal allocation is to fail.  Lock held.
 * Only scsi_cmd_pool_fail_every turns it on, and sgblkd never calls it
 * (tests/sgblkd-test does). */
static bool
injected_failure (struct scsi_cmd_pool *p)
{
  return p->fail_every && ++p->fail_count % p->fail_every == 0;
}

static void
prepare (struct scsi_cmd *c)
{
  uint8_t *sense = c->sense;
  bool reserve = c->from_reserve;

  memset (c, 0, sizeof *c);
  c->sense = sense;
  c->from_reserve = reserve;
}

struct scsi_cmd *
scsi_cmd_get (struct scsi_cmd_pool *p, bool wait)
{
  struct scsi_cmd *c = NULL;

  pthread_mutex_lock (&p->lock);
  for (;;) {
    bool fail = injected_failure (p);
    /* Normal path: the cache, then a new object outside the lock. */
    if (!fail && p->cache) {
      c = p->cache;
      p->cache = c->pool_next;
      p->cached--;
      break;
    }
    if (!fail && !p->fixed) {
      pthread_mutex_unlock (&p->lock);
      c = new_object ();
      pthread_mutex_lock (&p->lock);
      if (c) {
        p->allocated++;
        break;
      }
    }
    p->alloc_failures++;
    /* Fallback: a complete object from the reserve. */
    if (p->reserve) {
      c = p->reserve;
      p->reserve = c->pool_next;
      p->reserve_level--;
      p->fallbacks++;
      break;
    }
    if (!wait) {
      pthread_mutex_unlock (&p->lock);
      errno = EAGAIN;
      return NULL;
    }
    /* Backpressure: wait for a command to come back. */
    p->waits++;
    p->waiters++;
    pthread_cond_wait (&p->returned, &p->lock);
    p->waiters--;
  }
  p->in_use++;
  pthread_mutex_unlock (&p->lock);
  prepare (c);
  return c;
}

void
scsi_cmd_put (struct scsi_cmd_pool *p, struct scsi_cmd *c)
{
  struct scsi_cmd *to_free = NULL;

  pthread_mutex_lock (&p->lock);
  p->in_use--;
  if (c->from_reserve) {
    c->pool_next = p->reserve;
    p->reserve = c;
    p->reserve_level++;
  }
  else if (p->fixed || p->cached < p->max_cached) {
    c->pool_next = p->cache;
    p->cache = c;
    p->cached++;
  }
  else {
    p->allocated--;
    to_free = c;
  }
  if (p->waiters)
    pthread_cond_signal (&p->returned);
  pthread_mutex_unlock (&p->lock);
  if (to_free)
    free_object (to_free);
}

void
scsi_cmd_pool_get_stats (struct scsi_cmd_pool *p, struct scsi_pool_stats *st)
{
  pthread_mutex_lock (&p->lock);
  st->allocated = p->allocated;
  st->in_use = p->in_use;
  st->cached = p->cached;
  st->reserve_size = p->reserve_size;
  st->reserve_level = p->reserve_level;
  st->fallbacks = p->fallbacks;
  st->waits = p->waits;
  st->alloc_failures = p->alloc_failures;
  pthread_mutex_unlock (&p->lock);
}

int
scsi_cmd_pool_prefill (struct scsi_cmd_pool *p, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    struct scsi_cmd *c = new_object ();
    if (c == NULL)
      return -1;
    pthread_mutex_lock (&p->lock);
    p->fixed = true;
    c->pool_next = p->cache;
    p->cache = c;
    p->cached++;
    p->allocated++;
    pthread_mutex_unlock (&p->lock);
  }
  return 0;
}

void
scsi_cmd_pool_fail_every (struct scsi_cmd_pool *p, unsigned nth)
{
  pthread_mutex_lock (&p->lock);
  p->fail_every = nth;
  p->fail_count = 0;
  pthread_mutex_unlock (&p->lock);
}
