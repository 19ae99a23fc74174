/* libFuzzer target: arbitrary CDBs with arbitrary data-out buffers
 * against a logical unit on a small in-memory disk (the block map, as
 * the daemon serves it).  Input layout: one byte of CDB length (1..32),
 * the CDB, then the data-out buffer.  Every command must complete with a
 * status and, on CHECK CONDITION, sense data that decodes. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"

static struct store *store;
static struct sgv_pool *sgv;
static struct scsi_lu *lu;

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static uint8_t sense[SCSI_SENSE_BUFFERSIZE];
  struct scsi_cmd c;

  if (lu == NULL) {
    struct sgv_pool_config sc = { .name = "fuzz" };
    store = cache_create (&(struct cache_config) { .size = 1 << 20 });
    sgv = sgv_pool_create (&sc);
    struct scsi_lu_config lc = { .store = store, .sgv = sgv, .block_size = 512 };
    lu = scsi_lu_create (&lc);
  }
  if (size < 2)
    return 0;
  unsigned cdb_len = data[0] % SCSI_CDB_MAX + 1;
  if (size < 1 + cdb_len)
    return 0;
  memset (&c, 0, sizeof c);
  c.sense = sense;
  memcpy (c.cdb, data + 1, cdb_len);
  c.cdb_len = cdb_len;
  size_t blen = size - 1 - cdb_len;
  if (blen > 0) {
    c.buf = sgv_alloc (sgv, blen);
    if (c.buf == NULL)
      return 0;
    sgv_copy_from_buf (c.buf, 0, data + 1 + cdb_len, blen);
    c.buf_len = (uint32_t) blen;
  }
  int st = scsi_exec (lu, &c);
  if (st == SCSI_STATUS_CHECK_CONDITION) {
    struct scsi_sense_info si;
    if (scsi_sense_decode (c.sense, c.sense_len, &si) != 0)
      abort ();
  }
  else if (st != SCSI_STATUS_GOOD)
    abort ();
  if (c.xfer > c.buf_len)
    abort ();
  (void) scsi_cmd_errno (&c);
  if (c.buf)
    sgv_free (sgv, c.buf);
  return 0;
}
