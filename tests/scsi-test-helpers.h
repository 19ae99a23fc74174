/* Shared by the SCSI core's unit tests: a unit over a store, raw CDB
 * execution with a data buffer, sense assertions, the daemon's in-memory
 * disk, and a fake store whose failures a test can choose. */
#ifndef SGBLK_SCSI_TEST_HELPERS_H
#define SGBLK_SCSI_TEST_HELPERS_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "cache.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"

struct fake_store {
  struct store s;
  uint8_t *data;          /* NULL: every byte reads zero (huge stores) */
  int fail_pread, fail_pwrite, fail_flush, fail_trim;   /* errno to return once */
  unsigned flushes, trims, zeroes, fua_writes;
  uint64_t hole_start, hole_len;   /* reported by extent() */
};

static int
fake_pread (struct store *s, const struct iovec *iov, int n, uint64_t off)
{
  struct fake_store *f = (struct fake_store *) s;
  if (f->fail_pread) { errno = f->fail_pread; f->fail_pread = 0; return -1; }
  for (int i = 0; i < n; i++) {
    if (f->data) memcpy (iov[i].iov_base, f->data + off, iov[i].iov_len);
    else memset (iov[i].iov_base, 0, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  return 0;
}

static int
fake_pwrite (struct store *s, const struct iovec *iov, int n, uint64_t off, unsigned flags)
{
  struct fake_store *f = (struct fake_store *) s;
  if (f->fail_pwrite) { errno = f->fail_pwrite; f->fail_pwrite = 0; return -1; }
  if (flags & STORE_FUA) f->fua_writes++;
  for (int i = 0; i < n; i++) {
    if (f->data) memcpy (f->data + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  return 0;
}

static int
fake_flush (struct store *s)
{
  struct fake_store *f = (struct fake_store *) s;
  f->flushes++;
  if (f->fail_flush) { errno = f->fail_flush; f->fail_flush = 0; return -1; }
  return 0;
}

static int
fake_trim (struct store *s, uint64_t off, uint64_t len)
{
  struct fake_store *f = (struct fake_store *) s;
  f->trims++;
  if (f->fail_trim) { errno = f->fail_trim; f->fail_trim = 0; return -1; }
  if (f->data) memset (f->data + off, 0, len);
  return 0;
}

static int
fake_zero (struct store *s, uint64_t off, uint64_t len, unsigned flags)
{
  struct fake_store *f = (struct fake_store *) s;
  f->zeroes++;
  if (f->fail_pwrite) { errno = f->fail_pwrite; f->fail_pwrite = 0; return -1; }
  if (f->data) memset (f->data + off, 0, len);
  return 0;
}

static int
fake_extent (struct store *s, uint64_t off, uint64_t len, uint64_t *ext, bool *alloc)
{
  struct fake_store *f = (struct fake_store *) s;
  uint64_t hs = f->hole_start, he = f->hole_start + f->hole_len;
  if (off >= hs && off < he) { *alloc = false; *ext = he - off; }
  else { *alloc = true; *ext = off < hs ? hs - off : s->size - off; }
  if (*ext > len) *ext = len;
  return 0;
}

static void fake_stats (struct store *s, struct store_stats *st) { memset (st, 0, sizeof *st); }
static void fake_close (struct store *s) { struct fake_store *f = (struct fake_store *) s; free (f->data); free (f); }

static const struct store_ops fake_ops = {
  .name = "fake", .pread = fake_pread, .pwrite = fake_pwrite, .flush = fake_flush,
  .trim = fake_trim, .zero = fake_zero, .extent = fake_extent, .stats = fake_stats,
  .close = fake_close,
};

/* A fake store of size bytes; with backed false nothing is allocated and
 * every byte reads zero (for sizes past 2 TiB). */
static inline struct fake_store *
fake_store_new (uint64_t size, bool backed)
{
  struct fake_store *f = calloc (1, sizeof *f);
  f->s.ops = &fake_ops;
  f->s.size = size;
  f->s.caps = STORE_CAP_TRIM | STORE_CAP_EXTENTS | STORE_CAP_PERSISTENT;
  if (backed) f->data = calloc (1, size);
  return f;
}

/* The in-memory disk the daemon serves: the block map, no backing store. */
static inline struct store *
memdisk_new (uint64_t size)
{
  struct store *s = cache_create (&(struct cache_config) { .size = size });
  assert_non_null (s);
  return s;
}

struct unit {
  struct store *store;
  struct sgv_pool *sgv;
  struct scsi_lu *lu;
  struct scsi_cmd cmd;
  uint8_t sense[SCSI_SENSE_BUFFERSIZE];
};

static inline struct unit *
unit_new (struct store *store, uint32_t bs, bool read_only, bool wce)
{
  struct unit *u = calloc (1, sizeof *u);
  struct sgv_pool_config sc = { .name = "test" };
  struct scsi_lu_config lc = { .store = store, .block_size = bs, .read_only = read_only,
                               .write_cache = wce, .serial = "SERIAL0123" };
  u->store = store;
  u->sgv = sgv_pool_create (&sc);
  lc.sgv = u->sgv;
  u->lu = scsi_lu_create (&lc);
  return u;
}

static inline void
unit_free (struct unit *u)
{
  scsi_lu_destroy (u->lu);
  sgv_pool_destroy (u->sgv);
  store_close (u->store);
  free (u);
}

/* Execute cdb; 'out' (len bytes) is the data-out buffer, or 'in' receives
 * up to len bytes of data-in.  Returns the status. */
static inline int
exec_cdb (struct unit *u, const uint8_t *cdb, unsigned cdb_len,
          const void *out, void *in, size_t len)
{
  struct scsi_cmd *c = &u->cmd;
  struct sgv_vec *v = NULL;

  memset (c, 0, sizeof *c);
  c->sense = u->sense;
  memcpy (c->cdb, cdb, cdb_len);
  c->cdb_len = cdb_len;
  if (len) {
    v = sgv_alloc (u->sgv, len);
    if (out) sgv_copy_from_buf (v, 0, out, len);
    else sgv_zero (v, 0, len);
    c->buf = v;
    c->buf_len = (uint32_t) len;
  }
  scsi_exec (u->lu, c);
  if (in && v)
    sgv_copy_to_buf (v, 0, in, c->xfer < len ? c->xfer : len);
  if (v)
    sgv_free (u->sgv, v);
  return c->status;
}

#define assert_good(u) do {                                              \
    if ((u)->cmd.status != SCSI_STATUS_GOOD) {                           \
      struct scsi_sense_info si_;                                        \
      scsi_sense_decode ((u)->cmd.sense, (u)->cmd.sense_len, &si_);      \
      fail_msg ("CHECK CONDITION %x/%02x/%02x", si_.key, si_.asc, si_.ascq); \
    }                                                                    \
  } while (0)

static inline void
assert_sense (struct unit *u, uint8_t key, uint8_t asc, uint8_t ascq)
{
  struct scsi_sense_info si;
  assert_int_equal (u->cmd.status, SCSI_STATUS_CHECK_CONDITION);
  assert_int_equal (scsi_sense_decode (u->cmd.sense, u->cmd.sense_len, &si), 0);
  assert_int_equal (si.key, key);
  assert_int_equal (si.asc, asc);
  assert_int_equal (si.ascq, ascq);
}

#endif
