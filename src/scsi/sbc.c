/* SBC: the block commands of a direct-access unit.
 *
 * Data moves straight between the store and the command's vector: a
 * READ is one store_pread into cmd->buf's iovec, a WRITE one store_pwrite
 * from it.  Commands that need memory of their own (VERIFY, COMPARE AND
 * WRITE, WRITE SAME with a pattern) take a scratch vector from the unit's
 * sgv pool and give it back before they complete.
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

#define MAX_IOV 512
#define SCRATCH_BYTES (1024u * 1024)

struct rw {
  uint64_t lba;
  uint32_t n;
  bool fua;
  unsigned len_byte;     /* where the transfer length field starts, for sense */
};

/* Decode LBA, length and FUA of the READ/WRITE/VERIFY family. */
static void
decode_rw (const uint8_t *cdb, struct rw *rw)
{
  memset (rw, 0, sizeof *rw);
  switch (cdb[0]) {
  case SCSI_OP_READ_6: case SCSI_OP_WRITE_6:
    rw->lba = (uint64_t) (cdb[1] & 0x1f) << 16 | be_get16 (cdb + 2);
    rw->n = cdb[4] ? cdb[4] : 256;
    rw->len_byte = 4;
    break;
  case SCSI_OP_READ_10: case SCSI_OP_WRITE_10: case SCSI_OP_VERIFY_10:
  case SCSI_OP_WRITE_AND_VERIFY_10: case SCSI_OP_PRE_FETCH_10:
  case SCSI_OP_SYNCHRONIZE_CACHE_10: case SCSI_OP_WRITE_SAME_10:
    rw->lba = be_get32 (cdb + 2);
    rw->n = be_get16 (cdb + 7);
    rw->fua = (cdb[1] & 0x08) != 0;
    rw->len_byte = 7;
    break;
  case SCSI_OP_READ_12: case SCSI_OP_WRITE_12:
    rw->lba = be_get32 (cdb + 2);
    rw->n = be_get32 (cdb + 6);
    rw->fua = (cdb[1] & 0x08) != 0;
    rw->len_byte = 6;
    break;
  default:                            /* the 16-byte CDBs */
    rw->lba = be_get64 (cdb + 2);
    rw->n = be_get32 (cdb + 10);
    rw->fua = (cdb[1] & 0x08) != 0;
    rw->len_byte = 10;
    break;
  }
}

/* LBA range check; fails the command and returns false if out of range. */
static bool
in_range (struct scsi_lu *lu, struct scsi_cmd *c, uint64_t lba, uint64_t n)
{
  if (lba > lu->nblocks || n > lu->nblocks - lba) {
    scsi_fail_lba (lu, c, lba);
    return false;
  }
  return true;
}

/* Decode a READ/WRITE/VERIFY-family CDB and check its range and size.
 * Returns false when the command is already complete: failed, or a
 * transfer of zero blocks (GOOD, nothing to do). */
static bool
decode_transfer (struct scsi_lu *lu, struct scsi_cmd *c, struct rw *rw)
{
  decode_rw (c->cdb, rw);
  if (!in_range (lu, c, rw->lba, rw->n) || rw->n == 0)
    return false;
  if (((size_t) rw->n << lu->bs_shift) > SCSI_MAX_XFER_BYTES) {
    scsi_fail_field (lu, c, rw->len_byte, -1);
    return false;
  }
  return true;
}

/* The iovec covering the first len bytes of the command's buffer; NULL
 * (and the command failed) if the buffer is too short. */
static const struct iovec *
buf_iov (struct scsi_lu *lu, struct scsi_cmd *c, size_t off, size_t len,
         struct iovec *tmp, int *cnt, unsigned field)
{
  if (c->buf == NULL || c->buf_len < off + len || c->buf->len < off + len) {
    scsi_fail_field (lu, c, field, -1);
    return NULL;
  }
  if (off == 0 && c->buf->len == len) {
    *cnt = c->buf->nents;
    return c->buf->iov;
  }
  *cnt = sgv_slice (c->buf, off, len, tmp, MAX_IOV);
  if (*cnt < 0) {
    scsi_fail (lu, c, SCSI_SK_HARDWARE_ERROR, 0x44, 0x00);
    return NULL;
  }
  return tmp;
}

void
sbc_read (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct iovec tmp[MAX_IOV];
  const struct iovec *iov;
  struct rw rw;
  int cnt;

  if (!decode_transfer (lu, c, &rw))
    return;
  size_t len = (size_t) rw.n << lu->bs_shift;
  iov = buf_iov (lu, c, 0, len, tmp, &cnt, rw.len_byte);
  if (iov == NULL)
    return;
  if (store_pread (lu->store, iov, cnt, rw.lba << lu->bs_shift) == -1) {
    scsi_fail_errno (lu, c, errno, false);
    return;
  }
  c->xfer = (uint32_t) len;
  STAT_INC (lu, reads);
  STAT_ADD (lu, read_bytes, len);
}

/* The store's answer to a command of sbc_submit_rw. */
static void
submit_done (struct store_aio *a, int err)
{
  struct scsi_cmd *c = (struct scsi_cmd *) ((char *) a - offsetof (struct scsi_cmd, aio));
  struct scsi_lu *lu = c->aio_lu;
  bool write = a->op == STORE_AIO_WRITE;
  size_t len = c->buf->len;

  if (err)
    scsi_fail_errno (lu, c, err, write);
  else if (write) {
    STAT_INC (lu, writes);
    STAT_ADD (lu, write_bytes, len);
  }
  else {
    c->xfer = (uint32_t) len;
    STAT_INC (lu, reads);
    STAT_ADD (lu, read_bytes, len);
  }
  c->done (c, c->done_arg);
}

bool
sbc_submit_rw (struct scsi_lu *lu, struct scsi_cmd *c)
{
  bool write = c->cdb[0] == SCSI_OP_WRITE_16;
  struct rw rw;

  decode_rw (c->cdb, &rw);
  /* The store reads the iovec until it answers: only the buffer's own
   * will do (no slice on this stack), and FUA is a write and a flush. */
  size_t len = (size_t) rw.n << lu->bs_shift;
  if ((write && rw.fua) || c->buf == NULL || c->buf->len != len ||
      c->buf_len != len)
    return false;
  STAT_INC (lu, commands);
  c->status = SCSI_STATUS_GOOD;
  c->sense_len = 0;
  c->xfer = 0;
  if (!decode_transfer (lu, c, &rw)) {
    c->done (c, c->done_arg);
    return true;
  }
  c->aio.op = write ? STORE_AIO_WRITE : STORE_AIO_READ;
  c->aio.iov = c->buf->iov;
  c->aio.iovcnt = c->buf->nents;
  c->aio.offset = rw.lba << lu->bs_shift;
  c->aio.done = submit_done;
  store_submit (lu->store, &c->aio);
  return true;
}

/* Write n blocks at lba from the command buffer at byte offset off. */
static bool
write_blocks (struct scsi_lu *lu, struct scsi_cmd *c, uint64_t lba,
              uint32_t n, size_t off, bool fua, unsigned field)
{
  struct iovec tmp[MAX_IOV];
  const struct iovec *iov;
  int cnt;
  size_t len = (size_t) n << lu->bs_shift;

  iov = buf_iov (lu, c, off, len, tmp, &cnt, field);
  if (iov == NULL)
    return false;
  if (store_pwrite (lu->store, iov, cnt, lba << lu->bs_shift,
                    fua ? STORE_FUA : 0) == -1) {
    scsi_fail_errno (lu, c, errno, true);
    return false;
  }
  STAT_INC (lu, writes);
  STAT_ADD (lu, write_bytes, len);
  return true;
}

void
sbc_write (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;

  if (!decode_transfer (lu, c, &rw))
    return;
  write_blocks (lu, c, rw.lba, rw.n, 0, rw.fua, rw.len_byte);
}

/* Compare the medium at [lba, lba+n) with the buffer at byte offset off
 * (or, with buf NULL, just read it).  Returns true if equal; on a
 * mismatch the command fails MISCOMPARE with the byte offset. */
static bool
compare_medium (struct scsi_lu *lu, struct scsi_cmd *c, uint64_t lba,
                uint32_t n, size_t off, bool check)
{
  struct sgv_vec *scratch;
  uint64_t pos = 0, total = (uint64_t) n << lu->bs_shift;
  uint8_t a[4096], b[4096];

  scratch = sgv_alloc (lu->sgv, total < SCRATCH_BYTES ? total : SCRATCH_BYTES);
  if (scratch == NULL) {
    scsi_fail (lu, c, SCSI_SK_HARDWARE_ERROR, 0x44, 0x00);
    return false;
  }
  while (pos < total) {
    size_t chunk = total - pos < scratch->len ? total - pos : scratch->len;
    struct iovec iov[MAX_IOV];
    int cnt = sgv_slice (scratch, 0, chunk, iov, MAX_IOV);
    if (cnt < 0 || store_pread (lu->store, iov, cnt,
                                (lba << lu->bs_shift) + pos) == -1) {
      scsi_fail_errno (lu, c, cnt < 0 ? EINVAL : errno, false);
      sgv_free (lu->sgv, scratch);
      return false;
    }
    for (size_t i = 0; check && i < chunk; i += sizeof a) {
      size_t m = chunk - i < sizeof a ? chunk - i : sizeof a;
      sgv_copy_to_buf (scratch, i, a, m);
      sgv_copy_to_buf (c->buf, off + pos + i, b, m);
      if (memcmp (a, b, m) != 0) {
        size_t k = 0;
        while (a[k] == b[k])
          k++;
        sgv_free (lu->sgv, scratch);
        scsi_fail_info (lu, c, SCSI_SK_MISCOMPARE, 0x1d, 0x00, pos + i + k);
        return false;
      }
    }
    pos += chunk;
  }
  sgv_free (lu->sgv, scratch);
  return true;
}

static bool
check_data_out (struct scsi_lu *lu, struct scsi_cmd *c, size_t need, unsigned field)
{
  if (c->buf == NULL || c->buf_len < need || c->buf->len < need) {
    scsi_fail_field (lu, c, field, -1);
    return false;
  }
  return true;
}

void
sbc_verify (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;
  unsigned bytchk = (c->cdb[1] >> 1) & 3;

  if (bytchk == 2 || bytchk == 3) {
    scsi_fail_field (lu, c, 1, 2);
    return;
  }
  if (!decode_transfer (lu, c, &rw))
    return;
  if (bytchk && !check_data_out (lu, c, (size_t) rw.n << lu->bs_shift, rw.len_byte))
    return;
  compare_medium (lu, c, rw.lba, rw.n, 0, bytchk == 1);
}

void
sbc_write_verify (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;

  if (!decode_transfer (lu, c, &rw))
    return;
  if (!write_blocks (lu, c, rw.lba, rw.n, 0, true, rw.len_byte))
    return;
  compare_medium (lu, c, rw.lba, rw.n, 0, true);
}

void
sbc_sync_cache (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;

  decode_rw (c->cdb, &rw);
  /* NUMBER OF LOGICAL BLOCKS 0 means "to the end of the medium". */
  if (!in_range (lu, c, rw.lba, rw.n))
    return;
  STAT_INC (lu, syncs);
  if (store_flush (lu->store) == -1)
    scsi_fail_errno (lu, c, errno, true);
}

void
sbc_prefetch (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;

  decode_rw (c->cdb, &rw);
  in_range (lu, c, rw.lba, rw.n);
}

void
sbc_write_same (struct scsi_lu *lu, struct scsi_cmd *c)
{
  struct rw rw;
  bool unmap = (c->cdb[1] & 0x08) != 0;
  bool ndob = c->cdb[0] == SCSI_OP_WRITE_SAME_16 && (c->cdb[1] & 0x01);
  uint64_t off, len;

  decode_rw (c->cdb, &rw);
  if (rw.n == 0) {                    /* WSNZ is set in the block limits */
    scsi_fail_field (lu, c, rw.len_byte, -1);
    return;
  }
  if (!in_range (lu, c, rw.lba, rw.n))
    return;
  STAT_INC (lu, write_sames);
  off = rw.lba << lu->bs_shift;
  len = (uint64_t) rw.n << lu->bs_shift;
  if (!ndob && !check_data_out (lu, c, lu->bs, rw.len_byte))
    return;
  if (ndob || sgv_is_zero (c->buf, 0, lu->bs)) {
    if (store_zero (lu->store, off, len, unmap ? STORE_MAY_TRIM : 0) == -1)
      scsi_fail_errno (lu, c, errno, true);
    return;
  }
  if (unmap) {                        /* UNMAP needs a zero pattern here */
    scsi_fail_field (lu, c, 1, 3);
    return;
  }
  /* Replicate the pattern block over a scratch vector, then write it out
   * as many times as needed. */
  uint8_t block[4096];
  struct sgv_vec *scratch;
  uint64_t chunk = len < SCRATCH_BYTES ? len : SCRATCH_BYTES;

  sgv_copy_to_buf (c->buf, 0, block, lu->bs);
  scratch = sgv_alloc (lu->sgv, chunk);
  if (scratch == NULL) {
    scsi_fail (lu, c, SCSI_SK_HARDWARE_ERROR, 0x44, 0x00);
    return;
  }
  for (uint64_t i = 0; i < chunk; i += lu->bs)
    sgv_copy_from_buf (scratch, i, block, lu->bs);
  for (uint64_t pos = 0; pos < len; pos += chunk) {
    uint64_t m = len - pos < chunk ? len - pos : chunk;
    struct iovec iov[MAX_IOV];
    int cnt = sgv_slice (scratch, 0, m, iov, MAX_IOV);
    if (cnt < 0 || store_pwrite (lu->store, iov, cnt, off + pos, 0) == -1) {
      scsi_fail_errno (lu, c, cnt < 0 ? EINVAL : errno, true);
      break;
    }
  }
  sgv_free (lu->sgv, scratch);
}

void
sbc_unmap (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t param[8 + 16 * SCSI_MAX_UNMAP_DESCRIPTORS];
  uint32_t plen = be_get16 (c->cdb + 7);

  if (plen == 0)
    return;                           /* nothing to do, not an error */
  if (plen < 8 || c->buf == NULL || c->buf_len < plen || c->buf->len < plen) {
    scsi_fail (lu, c, SCSI_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
    return;
  }
  if (plen > sizeof param)
    plen = sizeof param;
  sgv_copy_to_buf (c->buf, 0, param, plen);
  uint32_t dlen = be_get16 (param + 2);
  if (dlen % 16 != 0 || dlen > plen - 8) {
    scsi_fail (lu, c, SCSI_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
    return;
  }
  unsigned n = dlen / 16;
  /* Check every descriptor before trimming anything. */
  for (unsigned i = 0; i < n; i++) {
    const uint8_t *d = param + 8 + 16 * i;
    if (!in_range (lu, c, be_get64 (d), be_get32 (d + 8)))
      return;
  }
  STAT_INC (lu, unmaps);
  for (unsigned i = 0; i < n; i++) {
    const uint8_t *d = param + 8 + 16 * i;
    uint64_t lba = be_get64 (d);
    uint32_t nb = be_get32 (d + 8);
    if (nb && store_trim (lu->store, lba << lu->bs_shift,
                          (uint64_t) nb << lu->bs_shift) == -1) {
      scsi_fail_errno (lu, c, errno, true);
      return;
    }
  }
}

void
sbc_compare_and_write (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint64_t lba = be_get64 (c->cdb + 2);
  uint32_t n = c->cdb[13];

  if (n == 0)
    return;
  if (!in_range (lu, c, lba, n))
    return;
  if (!check_data_out (lu, c, (size_t) 2 * n << lu->bs_shift, 13))
    return;
  pthread_mutex_lock (&lu->caw_lock);
  if (compare_medium (lu, c, lba, n, 0, true))
    write_blocks (lu, c, lba, n, (size_t) n << lu->bs_shift, false, 13);
  pthread_mutex_unlock (&lu->caw_lock);
}

void
sbc_get_lba_status (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint64_t lba = be_get64 (c->cdb + 2);
  uint32_t alloc = be_get32 (c->cdb + 10);
  uint8_t data[8 + 16 * 64];
  unsigned max = alloc >= 8 ? (alloc - 8) / 16 : 0, n = 0;

  if (lba >= lu->nblocks) {
    scsi_fail_lba (lu, c, lba);
    return;
  }
  if (max > 64)
    max = 64;
  if (max == 0)
    max = 1;                          /* the header tells the length anyway */
  memset (data, 0, sizeof data);
  uint64_t pos = lba;
  while (pos < lu->nblocks && n < max) {
    uint64_t ext_len;
    bool allocated;
    uint64_t left = (lu->nblocks - pos) << lu->bs_shift;
    if (store_extent (lu->store, pos << lu->bs_shift, left, &ext_len, &allocated) == -1) {
      scsi_fail_errno (lu, c, errno, false);
      return;
    }
    uint64_t nb = ext_len >> lu->bs_shift;
    if (nb == 0) {                    /* a sub-block extent counts as mapped */
      nb = 1;
      allocated = true;
    }
    if (nb > UINT32_MAX)
      nb = UINT32_MAX;
    uint8_t prov = allocated ? 0 : 1;
    uint8_t *prev = data + 8 + 16 * (n - 1);
    if (n > 0 && (prev[12] & 0x0f) == prov &&
        (uint64_t) be_get32 (prev + 8) + nb <= UINT32_MAX) {
      be_put32 (prev + 8, be_get32 (prev + 8) + (uint32_t) nb);
    }
    else {
      uint8_t *d = data + 8 + 16 * n;
      be_put64 (d, pos);
      be_put32 (d + 8, (uint32_t) nb);
      d[12] = prov;
      n++;
    }
    pos += nb;
  }
  be_put32 (data, 4 + 16 * n);
  size_t out = 8 + 16 * (size_t) n;
  scsi_data_in (c, data, out < alloc ? out : alloc);
}

void
sbc_read_capacity10 (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t data[8];
  uint64_t last = lu->nblocks - 1;

  be_put32 (data, last > 0xfffffffeu ? 0xffffffffu : (uint32_t) last);
  be_put32 (data + 4, lu->bs);
  scsi_data_in (c, data, sizeof data);
}

void
sbc_read_capacity16 (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t data[32] = { 0 };
  uint32_t alloc = be_get32 (c->cdb + 10);

  be_put64 (data, lu->nblocks - 1);
  be_put32 (data + 8, lu->bs);
  /* 512-byte logical blocks on 4096-byte pages: 8 per physical block. */
  data[13] = lu->bs == 512 ? 3 : 0;
  if (lu->store->caps & STORE_CAP_TRIM)
    data[14] |= 0x80;                 /* LBPME */
  data[14] |= 0x40;                   /* LBPRZ: unmapped blocks read zero */
  scsi_data_in (c, data, alloc < sizeof data ? alloc : sizeof data);
}

void
sbc_start_stop (struct scsi_lu *lu, struct scsi_cmd *c)
{
  /* A virtual disk has no motor or medium to eject: always GOOD. */
}
