/* Shared by the cache's unit tests: a backing store in memory that
 * records its writes, can hang them (blocked) and can fail them (fail). */
#ifndef SGBLK_CACHE_FAKE_BACKING_H
#define SGBLK_CACHE_FAKE_BACKING_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct fake {
  struct store s;
  uint8_t *data;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool blocked;            /* pwrite waits while set */
  int fail;                /* errno for every pwrite while set */
  unsigned flushes, fua, nwrites, nzeroes;
  uint64_t woff[64], wlen[64];
};

static int
f_pread (struct store *s, const struct iovec *iov, int n, uint64_t off)
{
  struct fake *f = (struct fake *) s;
  for (int i = 0; i < n; i++) {
    memcpy (iov[i].iov_base, f->data + off, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  return 0;
}

static int
f_pwrite (struct store *s, const struct iovec *iov, int n, uint64_t off, unsigned flags)
{
  struct fake *f = (struct fake *) s;
  pthread_mutex_lock (&f->lock);
  while (f->blocked)
    pthread_cond_wait (&f->cond, &f->lock);
  if (f->fail) {
    pthread_mutex_unlock (&f->lock);
    errno = f->fail;
    return -1;
  }
  uint64_t len = 0;
  for (int i = 0; i < n; i++) {
    memcpy (f->data + off + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  if (f->nwrites < 64) {
    f->woff[f->nwrites] = off;
    f->wlen[f->nwrites] = len;
  }
  f->nwrites++;
  if (flags & STORE_FUA)
    f->fua++;
  pthread_mutex_unlock (&f->lock);
  return 0;
}

static int f_flush (struct store *s) { ((struct fake *) s)->flushes++; return 0; }
static int
f_zero (struct store *s, uint64_t off, uint64_t len, unsigned flags)
{
  struct fake *f = (struct fake *) s;
  memset (f->data + off, 0, len);
  f->nzeroes++;
  return 0;
}
static int f_trim (struct store *s, uint64_t off, uint64_t len) { return f_zero (s, off, len, 0); }
static int
f_extent (struct store *s, uint64_t off, uint64_t len, uint64_t *e, bool *a)
{
  *e = len;
  *a = true;
  return 0;
}
static void f_stats (struct store *s, struct store_stats *st) { memset (st, 0, sizeof *st); }
static void f_close (struct store *s) { }

static const struct store_ops fake_backing_ops = {
  .name = "fake", .pread = f_pread, .pwrite = f_pwrite, .flush = f_flush,
  .trim = f_trim, .zero = f_zero, .extent = f_extent, .stats = f_stats, .close = f_close,
};

static inline struct fake *
fake_new (uint64_t size)
{
  struct fake *f = calloc (1, sizeof *f);
  f->s = (struct store) { .ops = &fake_backing_ops, .size = size, .caps = STORE_CAP_PERSISTENT };
  f->data = calloc (1, size);
  pthread_mutex_init (&f->lock, NULL);
  pthread_cond_init (&f->cond, NULL);
  return f;
}

static inline void
fake_free (struct fake *f)
{
  free (f->data);
  free (f);
}

#endif
