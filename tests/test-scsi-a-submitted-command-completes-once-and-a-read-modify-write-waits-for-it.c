/* scsi_submit and blkio_submit over a store that answers later.
 *
 * The store here holds every submitted request until the test releases
 * it (from this thread, or from another), as librbd does until the
 * cluster answers.  What a front-end relies on:
 * - a submitted READ(16) or WRITE(16) completes exactly once, after the
 *   store answers, with its data, or with the sense the synchronous path
 *   gives for the same store error;
 * - what cannot be submitted (FUA, a range past the end, a 10-byte CDB,
 *   a write to a read-only unit) completes before scsi_submit returns;
 * - a read-modify-write of a block waits for a submitted write of that
 *   block, so the write is never lost under the stale copy.
 */
#include <config.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "blkio.h"
#include "scsi-test-helpers.h"

#define MiB (1024 * 1024)
#define MAX_HELD 16

/* A fake store whose submit holds requests. */
struct held_store {
  struct fake_store *f;          /* data and the synchronous ops */
  struct store s;
  pthread_mutex_t lock;
  struct store_aio *held[MAX_HELD];
  int nheld;
  int answer;                    /* errno the next release gives */
  unsigned preads;               /* synchronous reads (the rmw's) */
};

static struct held_store *hs_of (struct store *s)
{ return (struct held_store *) ((char *) s - offsetof (struct held_store, s)); }

static int
held_pread (struct store *s, const struct iovec *iov, int n, uint64_t off)
{
  struct held_store *h = hs_of (s);
  pthread_mutex_lock (&h->lock);
  h->preads++;
  pthread_mutex_unlock (&h->lock);
  return h->f->s.ops->pread (&h->f->s, iov, n, off);
}
static int held_pwrite (struct store *s, const struct iovec *iov, int n, uint64_t off, unsigned fl)
{ return hs_of (s)->f->s.ops->pwrite (&hs_of (s)->f->s, iov, n, off, fl); }
static int held_flush (struct store *s) { return hs_of (s)->f->s.ops->flush (&hs_of (s)->f->s); }
static int held_trim (struct store *s, uint64_t o, uint64_t l)
{ return hs_of (s)->f->s.ops->trim (&hs_of (s)->f->s, o, l); }
static int held_zero (struct store *s, uint64_t o, uint64_t l, unsigned fl)
{ return hs_of (s)->f->s.ops->zero (&hs_of (s)->f->s, o, l, fl); }
static int held_extent (struct store *s, uint64_t o, uint64_t l, uint64_t *e, bool *a)
{ return hs_of (s)->f->s.ops->extent (&hs_of (s)->f->s, o, l, e, a); }
static void held_stats (struct store *s, struct store_stats *st) { memset (st, 0, sizeof *st); (void) s; }
static void
held_close (struct store *s)
{
  struct held_store *h = hs_of (s);
  assert_int_equal (h->nheld, 0);
  store_close (&h->f->s);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static void
held_submit (struct store *s, struct store_aio *a)
{
  struct held_store *h = hs_of (s);
  pthread_mutex_lock (&h->lock);
  assert_true (h->nheld < MAX_HELD);
  h->held[h->nheld++] = a;
  pthread_mutex_unlock (&h->lock);
}

static const struct store_ops held_ops = {
  .name = "held", .pread = held_pread, .pwrite = held_pwrite, .flush = held_flush,
  .submit = held_submit, .trim = held_trim, .zero = held_zero, .extent = held_extent,
  .stats = held_stats, .close = held_close,
};

static struct held_store *
held_new (uint64_t size)
{
  struct held_store *h = calloc (1, sizeof *h);
  h->f = fake_store_new (size, true);
  h->s.ops = &held_ops;
  h->s.size = size;
  h->s.caps = h->f->s.caps;
  pthread_mutex_init (&h->lock, NULL);
  return h;
}

static int
held_count (struct held_store *h)
{
  pthread_mutex_lock (&h->lock);
  int n = h->nheld;
  pthread_mutex_unlock (&h->lock);
  return n;
}

/* Answer the oldest held request: move its data (unless failing), then
 * tell its submitter. */
static void
release_one (struct held_store *h)
{
  pthread_mutex_lock (&h->lock);
  assert_true (h->nheld > 0);
  struct store_aio *a = h->held[0];
  memmove (h->held, h->held + 1, (size_t) --h->nheld * sizeof h->held[0]);
  int err = h->answer;
  pthread_mutex_unlock (&h->lock);
  if (err == 0) {
    int r = a->op == STORE_AIO_READ ?
      h->f->s.ops->pread (&h->f->s, a->iov, a->iovcnt, a->offset) :
      h->f->s.ops->pwrite (&h->f->s, a->iov, a->iovcnt, a->offset, 0);
    assert_int_equal (r, 0);
  }
  a->done (a, err);
}

/* ---- The SCSI core ---- */

struct completion {
  int calls;
  struct scsi_cmd *cmd;
};

static void
count_done (struct scsi_cmd *c, void *arg)
{
  struct completion *k = arg;
  k->calls++;
  k->cmd = c;
}

static void
prepare (struct unit *u, struct sgv_vec *v, bool write, uint64_t lba, uint32_t n, bool fua)
{
  memset (&u->cmd, 0, sizeof u->cmd);
  u->cmd.sense = u->sense;
  u->cmd.cdb_len = write ? scsi_cdb_write16 (u->cmd.cdb, lba, n, fua) :
                           scsi_cdb_read16 (u->cmd.cdb, lba, n, false);
  u->cmd.buf = v;
  u->cmd.buf_len = (uint32_t) v->len;
}

static void
a_submitted_read_and_write_complete_once_after_the_store_answers (void **state)
{
  (void) state;
  struct held_store *h = held_new (MiB);
  struct unit *u = unit_new (&h->s, 512, false, true);
  struct completion k = { 0 };
  struct sgv_vec *v = sgv_alloc (u->sgv, 4096);
  uint8_t buf[4096];

  assert_true (scsi_lu_async (u->lu));
  memset (h->f->data + 8192, 0xab, 4096);
  prepare (u, v, false, 16, 8, false);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 0);                  /* the store has it */
  assert_int_equal (held_count (h), 1);
  release_one (h);
  assert_int_equal (k.calls, 1);
  assert_ptr_equal (k.cmd, &u->cmd);
  assert_good (u);
  assert_int_equal (u->cmd.xfer, 4096);
  sgv_copy_to_buf (v, 0, buf, sizeof buf);
  for (size_t i = 0; i < sizeof buf; i++)
    assert_int_equal (buf[i], 0xab);

  memset (buf, 0x5c, sizeof buf);
  sgv_copy_from_buf (v, 0, buf, sizeof buf);
  prepare (u, v, true, 100, 8, false);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 1);
  assert_int_equal (h->f->data[100 * 512], 0);    /* not yet written */
  release_one (h);
  assert_int_equal (k.calls, 2);
  assert_good (u);
  assert_memory_equal (h->f->data + 100 * 512, buf, sizeof buf);

  struct scsi_lu_stats st;
  scsi_lu_get_stats (u->lu, &st);
  assert_int_equal (st.commands, 2);
  assert_int_equal (st.reads, 1);
  assert_int_equal (st.writes, 1);
  sgv_free (u->sgv, v);
  unit_free (u);
}

static void
a_store_error_gives_the_sense_of_the_synchronous_path (void **state)
{
  (void) state;
  static const int errs[] = { EIO, ENOSPC, EROFS };
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
    for (int write = 0; write <= 1; write++) {
      struct held_store *h = held_new (MiB);
      struct unit *u = unit_new (&h->s, 512, false, true);
      struct completion k = { 0 };
      struct sgv_vec *v = sgv_alloc (u->sgv, 512);
      struct scsi_sense_info want, got;

      /* The synchronous path over the same store, failing once. */
      if (write)
        h->f->fail_pwrite = errs[i];
      else
        h->f->fail_pread = errs[i];
      prepare (u, v, write, 0, 1, false);
      scsi_exec (u->lu, &u->cmd);
      assert_int_equal (u->cmd.status, SCSI_STATUS_CHECK_CONDITION);
      assert_int_equal (scsi_sense_decode (u->cmd.sense, u->cmd.sense_len, &want), 0);
      int want_errno = scsi_cmd_errno (&u->cmd);

      h->answer = errs[i];
      prepare (u, v, write, 0, 1, false);
      scsi_submit (u->lu, &u->cmd, count_done, &k);
      assert_int_equal (k.calls, 0);
      release_one (h);
      assert_int_equal (k.calls, 1);
      assert_int_equal (u->cmd.status, SCSI_STATUS_CHECK_CONDITION);
      assert_int_equal (scsi_sense_decode (u->cmd.sense, u->cmd.sense_len, &got), 0);
      assert_int_equal (got.key, want.key);
      assert_int_equal (got.asc, want.asc);
      assert_int_equal (got.ascq, want.ascq);
      assert_int_equal (scsi_cmd_errno (&u->cmd), want_errno);
      sgv_free (u->sgv, v);
      unit_free (u);
    }
}

static void
what_cannot_be_submitted_completes_before_submit_returns (void **state)
{
  (void) state;
  struct held_store *h = held_new (MiB);
  struct unit *u = unit_new (&h->s, 512, false, true);
  struct completion k = { 0 };
  struct sgv_vec *v = sgv_alloc (u->sgv, 4096);

  /* FUA: a write and a flush, synchronously. */
  prepare (u, v, true, 0, 8, true);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 1);
  assert_good (u);
  assert_int_equal (h->f->fua_writes, 1);

  /* Past the end: LOGICAL BLOCK ADDRESS OUT OF RANGE, now. */
  prepare (u, v, false, MiB / 512 - 4, 8, false);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 2);
  assert_sense (u, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);

  /* A buffer longer than the transfer. */
  prepare (u, v, false, 0, 4, false);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 3);
  assert_good (u);

  /* A 10-byte READ goes the table's way. */
  memset (&u->cmd, 0, sizeof u->cmd);
  u->cmd.sense = u->sense;
  u->cmd.cdb[0] = SCSI_OP_READ_10;
  u->cmd.cdb[8] = 8;
  u->cmd.cdb_len = 10;
  u->cmd.buf = v;
  u->cmd.buf_len = 4096;
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 4);
  assert_good (u);
  assert_int_equal (held_count (h), 0);
  sgv_free (u->sgv, v);
  unit_free (u);

  /* A read-only unit: DATA PROTECT, now. */
  h = held_new (MiB);
  u = unit_new (&h->s, 512, true, true);
  v = sgv_alloc (u->sgv, 512);
  prepare (u, v, true, 0, 1, false);
  scsi_submit (u->lu, &u->cmd, count_done, &k);
  assert_int_equal (k.calls, 5);
  assert_sense (u, SCSI_SK_DATA_PROTECT, 0x27, 0x00);
  assert_int_equal (held_count (h), 0);
  sgv_free (u->sgv, v);
  unit_free (u);
}

/* ---- The block-I/O seam ---- */

struct seam_done {
  struct blkio_aio a;
  int calls, err;
};

static void
seam_done (struct blkio_aio *a, int err)
{
  struct seam_done *d = (struct seam_done *) a;
  d->calls++;
  d->err = err;
}

struct rmw_arg {
  struct blkio *io;
  struct scsi_cmd *c;
  struct sgv_vec *v;
  int err;
  bool finished;
  pthread_mutex_t lock;
};

static void *
rmw_thread (void *arg)
{
  struct rmw_arg *r = arg;
  int err = blkio_write (r->io, r->c, 1000, 100, r->v, 0);
  pthread_mutex_lock (&r->lock);
  r->err = err;
  r->finished = true;
  pthread_mutex_unlock (&r->lock);
  return NULL;
}

static void
a_read_modify_write_waits_for_a_submitted_write_of_its_block (void **state)
{
  (void) state;
  struct held_store *h = held_new (MiB);
  struct unit *u = unit_new (&h->s, 4096, false, true);
  struct blkio io;
  struct scsi_cmd c2;
  uint8_t sense2[SCSI_SENSE_BUFFERSIZE];
  uint8_t a[4096], b[100];

  assert_int_equal (blkio_init (&io, u->lu, u->sgv), 0);
  memset (&u->cmd, 0, sizeof u->cmd);
  u->cmd.sense = u->sense;
  memset (&c2, 0, sizeof c2);
  c2.sense = sense2;

  /* The whole block, submitted and held by the store. */
  struct seam_done d = { .a = { .write = true, .off = 0, .len = 4096, .done = seam_done } };
  d.a.v = sgv_alloc (u->sgv, 4096);
  memset (a, 0xaa, sizeof a);
  sgv_copy_from_buf (d.a.v, 0, a, sizeof a);
  assert_true (blkio_submit_async (&io, &d.a));
  blkio_submit (&io, &u->cmd, &d.a);
  assert_int_equal (d.calls, 0);
  assert_int_equal (held_count (h), 1);

  /* 100 bytes in the middle of it, from another thread. */
  struct rmw_arg r = { .io = &io, .c = &c2 };
  pthread_mutex_init (&r.lock, NULL);
  r.v = sgv_alloc (u->sgv, 100);
  memset (b, 0xbb, sizeof b);
  sgv_copy_from_buf (r.v, 0, b, sizeof b);
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, rmw_thread, &r), 0);
  usleep (200 * 1000);
  pthread_mutex_lock (&r.lock);
  bool finished = r.finished;
  pthread_mutex_unlock (&r.lock);
  assert_false (finished);                       /* it waits for the write */
  assert_int_equal (h->preads, 0);               /* without reading the block */

  release_one (h);
  assert_int_equal (d.calls, 1);
  assert_int_equal (d.err, 0);
  pthread_join (t, NULL);
  assert_int_equal (r.err, 0);
  assert_int_equal (h->preads, 1);
  /* Both writes, in the only order the two allow. */
  assert_memory_equal (h->f->data, a, 1000);
  assert_memory_equal (h->f->data + 1000, b, 100);
  assert_memory_equal (h->f->data + 1100, a + 1100, 4096 - 1100);

  sgv_free (u->sgv, d.a.v);
  sgv_free (u->sgv, r.v);
  pthread_mutex_destroy (&r.lock);
  blkio_fini (&io);
  unit_free (u);
}

/* A read the store answers from another thread, after blkio_fini was
 * called: fini waits for it. */
static void *
late_release (void *arg)
{
  usleep (100 * 1000);
  release_one (arg);
  return NULL;
}

static void
fini_waits_for_a_submitted_read (void **state)
{
  (void) state;
  struct held_store *h = held_new (MiB);
  struct unit *u = unit_new (&h->s, 512, false, true);
  struct blkio io;
  pthread_t t;

  assert_int_equal (blkio_init (&io, u->lu, u->sgv), 0);
  memset (&u->cmd, 0, sizeof u->cmd);
  u->cmd.sense = u->sense;
  struct seam_done d = { .a = { .write = false, .off = 512, .len = 512, .done = seam_done } };
  d.a.v = sgv_alloc (u->sgv, 512);
  blkio_submit (&io, &u->cmd, &d.a);
  assert_int_equal (d.calls, 0);
  assert_int_equal (pthread_create (&t, NULL, late_release, h), 0);
  blkio_fini (&io);
  assert_int_equal (d.calls, 1);
  pthread_join (t, NULL);
  sgv_free (u->sgv, d.a.v);
  unit_free (u);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (a_submitted_read_and_write_complete_once_after_the_store_answers),
    cmocka_unit_test (a_store_error_gives_the_sense_of_the_synchronous_path),
    cmocka_unit_test (what_cannot_be_submitted_completes_before_submit_returns),
    cmocka_unit_test (a_read_modify_write_waits_for_a_submitted_write_of_its_block),
    cmocka_unit_test (fini_waits_for_a_submitted_read),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
