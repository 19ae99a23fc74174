/* Logical units and command dispatch.
 *
 * A unit is immutable after create except for two flags (stopping,
 * D_SENSE) and its counters, all atomics, so scsi_exec takes no lock: any
 * number of threads execute commands on one unit at once.  The command
 * table below is the single list of what the unit implements; dispatch,
 * the NOT READY and write-protect checks, and REPORT SUPPORTED OPERATION
 * CODES all read it.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define M SCSI_F_MEDIA
#define W (SCSI_F_MEDIA | SCSI_F_WRITE)
const struct scsi_opinfo scsi_ops[] = {
  { SCSI_OP_TEST_UNIT_READY,      -1,  6, 0, spc_test_unit_ready },
  { SCSI_OP_REQUEST_SENSE,        -1,  6, 0, spc_request_sense },
  { SCSI_OP_READ_6,               -1,  6, M, sbc_read },
  { SCSI_OP_WRITE_6,              -1,  6, W, sbc_write },
  { SCSI_OP_INQUIRY,              -1,  6, 0, spc_inquiry },
  { SCSI_OP_MODE_SENSE_6,         -1,  6, 0, spc_mode_sense },
  { SCSI_OP_START_STOP_UNIT,      -1,  6, 0, sbc_start_stop },
  { SCSI_OP_READ_CAPACITY_10,     -1, 10, 0, sbc_read_capacity10 },
  { SCSI_OP_READ_10,              -1, 10, M, sbc_read },
  { SCSI_OP_WRITE_10,             -1, 10, W, sbc_write },
  { SCSI_OP_WRITE_AND_VERIFY_10,  -1, 10, W, sbc_write_verify },
  { SCSI_OP_VERIFY_10,            -1, 10, M, sbc_verify },
  { SCSI_OP_PRE_FETCH_10,         -1, 10, M, sbc_prefetch },
  { SCSI_OP_SYNCHRONIZE_CACHE_10, -1, 10, M, sbc_sync_cache },
  { SCSI_OP_WRITE_SAME_10,        -1, 10, W, sbc_write_same },
  { SCSI_OP_UNMAP,                -1, 10, W, sbc_unmap },
  { SCSI_OP_MODE_SENSE_10,        -1, 10, 0, spc_mode_sense },
  { SCSI_OP_READ_16,              -1, 16, M, sbc_read },
  { SCSI_OP_COMPARE_AND_WRITE,    -1, 16, W, sbc_compare_and_write },
  { SCSI_OP_WRITE_16,             -1, 16, W, sbc_write },
  { SCSI_OP_WRITE_AND_VERIFY_16,  -1, 16, W, sbc_write_verify },
  { SCSI_OP_VERIFY_16,            -1, 16, M, sbc_verify },
  { SCSI_OP_PRE_FETCH_16,         -1, 16, M, sbc_prefetch },
  { SCSI_OP_SYNCHRONIZE_CACHE_16, -1, 16, M, sbc_sync_cache },
  { SCSI_OP_WRITE_SAME_16,        -1, 16, W, sbc_write_same },
  { SCSI_OP_SERVICE_ACTION_IN_16, SCSI_SAI_READ_CAPACITY_16, 16, 0, sbc_read_capacity16 },
  { SCSI_OP_SERVICE_ACTION_IN_16, SCSI_SAI_GET_LBA_STATUS,   16, M, sbc_get_lba_status },
  { SCSI_OP_REPORT_LUNS,          -1, 12, 0, spc_report_luns },
  { SCSI_OP_MAINTENANCE_IN, SCSI_MI_REPORT_SUPPORTED_OPS,    12, 0, spc_report_supported_ops },
  { SCSI_OP_READ_12,              -1, 12, M, sbc_read },
  { SCSI_OP_WRITE_12,             -1, 12, W, sbc_write },
};
#undef M
#undef W
const size_t scsi_nops = sizeof scsi_ops / sizeof scsi_ops[0];

/* Opcodes with service actions keep them in the low 5 bits of byte 1. */
int
scsi_service_action (const uint8_t *cdb)
{
  switch (cdb[0]) {
  case SCSI_OP_SERVICE_ACTION_IN_16:
  case SCSI_OP_MAINTENANCE_IN:
    return cdb[1] & 0x1f;
  default:
    return -1;
  }
}

const struct scsi_opinfo *
scsi_find_op (uint8_t op, int sa)
{
  for (size_t i = 0; i < scsi_nops; i++)
    if (scsi_ops[i].op == op && scsi_ops[i].sa == sa)
      return &scsi_ops[i];
  return NULL;
}

struct scsi_lu *
scsi_lu_create (const struct scsi_lu_config *cfg)
{
  struct scsi_lu *lu;

  if (cfg == NULL || cfg->store == NULL || cfg->sgv == NULL ||
      (cfg->block_size != 512 && cfg->block_size != 4096) ||
      cfg->store->size < cfg->block_size) {
    errno = EINVAL;
    return NULL;
  }
  lu = calloc (1, sizeof *lu);
  if (lu == NULL)
    return NULL;
  lu->store = cfg->store;
  lu->sgv = cfg->sgv;
  lu->bs = cfg->block_size;
  lu->bs_shift = cfg->block_size == 512 ? 9 : 12;
  lu->nblocks = cfg->store->size >> lu->bs_shift;
  lu->read_only = cfg->read_only || (cfg->store->caps & STORE_CAP_READ_ONLY);
  lu->write_cache = cfg->write_cache;
  /* INQUIRY strings are space-padded ASCII of fixed width. */
  snprintf (lu->vendor, sizeof lu->vendor, "%-8.8s", cfg->vendor ? cfg->vendor : "SGBLK");
  snprintf (lu->product, sizeof lu->product, "%-16.16s",
            cfg->product ? cfg->product : "sgblk disk");
  if (cfg->serial)
    snprintf (lu->serial, sizeof lu->serial, "%.32s", cfg->serial);
  else
    snprintf (lu->serial, sizeof lu->serial, "%016llx",
              (unsigned long long) ((uintptr_t) lu ^ (uint64_t) lu->nblocks << 20));
  pthread_mutex_init (&lu->caw_lock, NULL);
  return lu;
}

void
scsi_lu_destroy (struct scsi_lu *lu)
{
  if (lu == NULL)
    return;
  pthread_mutex_destroy (&lu->caw_lock);
  free (lu);
}

uint64_t scsi_lu_nblocks (const struct scsi_lu *lu) { return lu->nblocks; }
uint32_t scsi_lu_block_size (const struct scsi_lu *lu) { return lu->bs; }
struct store *scsi_lu_store (const struct scsi_lu *lu) { return lu->store; }

int
scsi_lu_thread_prepare (struct scsi_lu *lu)
{
  assert (lu != NULL);
  return store_thread_prepare (lu->store);
}

void
scsi_lu_set_stopping (struct scsi_lu *lu, bool stopping)
{
  atomic_store (&lu->stopping, stopping);
}

void
scsi_lu_set_descriptor_sense (struct scsi_lu *lu, bool on)
{
  atomic_store (&lu->dsense, on);
}

void
scsi_lu_get_stats (struct scsi_lu *lu, struct scsi_lu_stats *st)
{
  st->commands = lu->st.commands;
  st->reads = lu->st.reads;
  st->writes = lu->st.writes;
  st->read_bytes = lu->st.read_bytes;
  st->write_bytes = lu->st.write_bytes;
  st->syncs = lu->st.syncs;
  st->unmaps = lu->st.unmaps;
  st->write_sames = lu->st.write_sames;
  st->errors = lu->st.errors;
  st->store_errors = lu->st.store_errors;
  unsigned last = atomic_load_explicit (&lu->st.last_store_error, memory_order_relaxed);
  st->last_store_errno = (int) (last >> 8);
  st->last_store_op = (uint8_t) last;
}

bool
scsi_lu_async (const struct scsi_lu *lu)
{
  return store_can_submit (lu->store);
}

void
scsi_submit (struct scsi_lu *lu, struct scsi_cmd *c,
             void (*done) (struct scsi_cmd *c, void *arg), void *arg)
{
  uint8_t op = c->cdb[0];

  c->done = done;
  c->done_arg = arg;
  c->aio_lu = lu;
  if ((op == SCSI_OP_READ_16 || (op == SCSI_OP_WRITE_16 && !lu->read_only)) &&
      c->cdb_len >= 16 && scsi_lu_async (lu) &&
      !atomic_load_explicit (&lu->stopping, memory_order_relaxed)) {
    if (sbc_submit_rw (lu, c))
      return;                             /* done is called by it */
  }
  scsi_exec (lu, c);
  done (c, arg);
}

int
scsi_exec (struct scsi_lu *lu, struct scsi_cmd *c)
{
  const struct scsi_opinfo *op;

  STAT_INC (lu, commands);
  c->status = SCSI_STATUS_GOOD;
  c->sense_len = 0;
  c->xfer = 0;

  /* The two hot commands skip the table walk. */
  if (c->cdb[0] == SCSI_OP_READ_16 && c->cdb_len >= 16 &&
      !atomic_load_explicit (&lu->stopping, memory_order_relaxed)) {
    sbc_read (lu, c);
    return c->status;
  }
  op = scsi_find_op (c->cdb[0], scsi_service_action (c->cdb));
  if (op == NULL) {
    if (scsi_service_action (c->cdb) >= 0)
      scsi_fail_field (lu, c, 1, 4);       /* unknown service action */
    else
      scsi_fail (lu, c, SCSI_SK_ILLEGAL_REQUEST, 0x20, 0x00);
    return c->status;
  }
  if (c->cdb_len < op->cdb_len) {
    scsi_fail_field (lu, c, c->cdb_len, -1);
    return c->status;
  }
  if ((op->flags & SCSI_F_MEDIA) &&
      atomic_load_explicit (&lu->stopping, memory_order_relaxed)) {
    scsi_fail (lu, c, SCSI_SK_NOT_READY, 0x04, SCSI_ASCQ_STOPPING);
    return c->status;
  }
  if ((op->flags & SCSI_F_WRITE) && lu->read_only) {
    scsi_fail (lu, c, SCSI_SK_DATA_PROTECT, 0x27, 0x00);
    return c->status;
  }
  op->fn (lu, c);
  return c->status;
}
