/* daemon/stats: the statistics of every layer as log lines.
 *
 * Reads only: each layer hands out a snapshot of its own counters
 * (*_get_stats), so the lines may be written while the stack serves.  The
 * only state is what daemon_stack says was already reported (damaged
 * blocks, spill file errors, store errors, a shrunken file), touched only
 * by the main thread.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cache.h"
#include "daemon.h"
#include "log.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"

/* What the unit's last failed store call was, for a log line. */
static const char *
op_name (uint8_t op)
{
  switch (op) {
  case 0x88: case 0x28: case 0x08: case 0xa8: return "read";
  case 0x8a: case 0x2a: case 0x0a: case 0xaa: return "write";
  case 0x35: case 0x91: return "flush (SYNCHRONIZE CACHE)";
  case 0x93: case 0x41: return "zero (WRITE SAME)";
  case 0x42: return "trim (UNMAP)";
  case 0x2f: case 0x8f: return "verify";
  case 0x2e: case 0x8e: return "write and verify";
  case 0x89: return "compare and write";
  default: return "command";
  }
}

/* Store failures that clients saw as EIO: the unit counts them; say how
 * many came since the last tick and what the last one was.  A file that
 * someone else truncated: said once for each size it is found at. */
static void
report_store_errors (struct daemon_stack *d)
{
  struct scsi_lu_stats lu;
  struct store_stats st;

  if (d->lu == NULL)
    return;
  scsi_lu_get_stats (d->lu, &lu);
  if (d->file) {
    store_get_stats (d->file, &st);
    if (st.short_file_errors > 0 &&
        (!d->short_file_said || st.short_file_size != d->short_file_size_said)) {
      log_error ("%s: the file shrank under the daemon to %" PRIu64 " bytes, "
                 "short of the disk's %" PRIu64 " (truncated by someone else?); "
                 "reads and writes past its end fail with EIO, and its size is "
                 "left as it is", d->opt->file, st.short_file_size, d->file->size);
      d->short_file_said = true;
      d->short_file_size_said = st.short_file_size;
      /* Those failures are what this line says; not again below. */
      d->store_errors_seen = lu.store_errors;
    }
  }
  if (lu.store_errors == d->store_errors_seen)
    return;
  uint64_t n = lu.store_errors - d->store_errors_seen;
  log_error ("%s: %" PRIu64 " store error%s answered with EIO (last: %s, %s)%s",
             d->opt->file ? d->opt->file : "in-memory disk", n, n > 1 ? "s" : "",
             op_name (lu.last_store_op), strerror (lu.last_store_errno),
             lu.last_store_errno == EROFS ? "; the file's filesystem is read-only: "
             "clients get I/O errors, not a read-only disk" : "");
  d->store_errors_seen = lu.store_errors;
}

/* The data path only counts blocks found damaged; say so once for each
 * new one (the last one's number, if several came at once). */
static void
report_corrupt (struct daemon_stack *d)
{
  struct cache_stats cs;

  report_store_errors (d);
  if (cache_get_stats (d->cache, &cs) == -1)
    return;
  /* Spill file failures: counted by the cache, said here once per tick. */
  if (cs.bd_errors != d->spill_errors_seen) {
    log_error ("%s: %" PRIu64 " spill file read%s or write%s failed (last: %s); "
               "blocks that could not be written stay in memory, reads of blocks "
               "that could not be read fail with EIO",
               d->opt->spill, cs.bd_errors - d->spill_errors_seen,
               cs.bd_errors - d->spill_errors_seen > 1 ? "s" : "",
               cs.bd_errors - d->spill_errors_seen > 1 ? "s" : "",
               strerror (cs.bd_last_error));
    d->spill_errors_seen = cs.bd_errors;
  }
  if (cs.corrupt_blocks == d->corrupt_seen)
    return;
  log_error ("cache: %" PRIu64 " more block%s failed to decompress (last: "
             "byte offset %" PRIu64 "); %s",
             cs.corrupt_blocks - d->corrupt_seen,
             cs.corrupt_blocks - d->corrupt_seen > 1 ? "s" : "",
             cs.last_corrupt * cs.block_size,
             d->opt->file ? "a clean one is read again from the file; a dirty one "
             "fails reads and FLUSH with EIO until it is rewritten"
             : "reads of it fail with EIO until it is rewritten");
  d->corrupt_seen = cs.corrupt_blocks;
}

void
daemon_stats_report_corrupt (struct daemon *dm)
{
  for (struct daemon_stack *d = dm->stacks; d; d = d->next)
    report_corrupt (d);
}

/* One export's lines; with several exports each starts with its name. */
static void
log_stack (const struct daemon_stack *d, bool named)
{
  struct sgv_stats sv;
  struct scsi_pool_stats cp;
  struct scsi_lu_stats lu;
  struct store_stats st;
  struct cache_stats cs;
  char pfx[4200] = "";

  if (named)
    snprintf (pfx, sizeof pfx, "export '%s': ", d->opt->export_name);
  sgv_pool_get_stats (d->sgv, &sv);
  scsi_cmd_pool_get_stats (d->cmds, &cp);
  scsi_lu_get_stats (d->lu, &lu);
  store_get_stats (d->store, &st);
  bool cached = cache_get_stats (d->cache, &cs) == 0;
  if (cached)
    log_info ("%scache %s, %" PRIu32 "-byte blocks: original %" PRIu64
              " B compressed %" PRIu64 " B memory used %" PRIu64
              " B (limit %" PRIu64 ") same-filled %" PRIu64 " raw %" PRIu64
              " hits %" PRIu64 " misses %" PRIu64 " dirty %" PRIu64
              " written back %" PRIu64 " evicted %" PRIu64
              " writer waits %" PRIu64 " compacted %" PRIu64
              " corrupt %" PRIu64, pfx,
              d->opt->file ? cache_mode_name (cs.mode) : "in-memory",
              cs.block_size, cs.orig_bytes,
              cs.compr_bytes, cs.mem_used, cs.mem_limit, cs.same_blocks,
              cs.huge_blocks, cs.hits, cs.misses, cs.dirty_blocks,
              cs.written_back, cs.evicted, cs.writer_waits, cs.compactions,
              cs.corrupt_blocks);
  if (cached) {
    /* The same figures in zram's terms and units (mm_stat, bd_stat:
     * bytes, and 4 KiB pages for the counts), so that zram users read
     * them as they read zram's. */
    uint64_t pg = cs.block_size / 4096;
    log_info ("%scache mm_stat: orig_data_size %" PRIu64 " compr_data_size %" PRIu64
              " mem_used_total %" PRIu64 " mem_limit %" PRIu64 " mem_used_max %" PRIu64
              " same_pages %" PRIu64 " pages_compacted %" PRIu64 " huge_pages %" PRIu64, pfx,
              cs.orig_bytes - cs.spilled_blocks * cs.block_size, cs.compr_bytes,
              cs.mem_used, cs.mem_limit, cs.mem_used_max, cs.same_blocks * pg,
              cs.compacted_bytes / 4096, cs.huge_blocks * pg);
    if (cs.spill)
      log_info ("%scache bd_stat: bd_count %" PRIu64 " bd_reads %" PRIu64 " bd_writes %" PRIu64
                " errors %" PRIu64 " writer waits %" PRIu64, pfx,
                cs.spilled_blocks * pg, cs.bd_reads * pg, cs.bd_writes * pg,
                cs.bd_errors, cs.spill_waits);
    if (cs.recompress_idle)
      log_info ("%scache recompression: idle %u s passes %" PRIu64 " hc_blocks %" PRIu64
                " recompressed %" PRIu64 " tried %" PRIu64 " saved %" PRIu64
                " B cpu %" PRIu64 " ms rate %.1f MB/s", pfx,
                cs.recompress_idle, cs.recomp_passes, cs.hc_blocks, cs.recomp_blocks,
                cs.recomp_tried, cs.recomp_saved, cs.recomp_cpu_ns / 1000000,
                cs.recomp_cpu_ns ? (double) cs.recomp_tried * cs.block_size * 1000.0 /
                                   (double) cs.recomp_cpu_ns : 0.0);
  }
  /* Swap mode's reserve, on a line of its own: the line above is parsed. */
  if (cached && cs.reserve_high)
    log_info ("%scache reserve: level %" PRIu64 " B low %" PRIu64 " B high %" PRIu64
              " B waits %" PRIu64 " mapped %" PRIu64 " B returned %" PRIu64 " B", pfx,
              cs.reserve_bytes, cs.reserve_low, cs.reserve_high, cs.reserve_waits,
              cs.reserve_refills, cs.reserve_returned);
  /* The export's traffic as its clients saw it (NBD and FUSE), as in
   * --stats-file: requests and errors by kind. */
  struct blkio_stats io;
  struct nbd_export_stats es;
  char req[256], err[256];
  size_t rl = 0, el = 0;
  blkio_get_stats (&d->io, &io);
  nbd_export_get_stats (&d->export, &es);
  for (unsigned i = 0; i < BLKIO_NOPS && rl < sizeof req; i++)
    rl += (size_t) snprintf (req + rl, sizeof req - rl, " %s %" PRIu64,
                             blkio_op_name ((enum blkio_op) i), io.requests[i]);
  for (unsigned i = 0; i < BLKIO_NERRS && el < sizeof err; i++)
    el += (size_t) snprintf (err + el, sizeof err - el, " %s %" PRIu64,
                             blkio_error_name ((enum blkio_err) i), io.errors[i]);
  log_info ("export '%s': read %" PRIu64 " B written %" PRIu64 " B connections open %"
            PRIu64 " total %" PRIu64 "; requests%s; errors%s", d->opt->export_name,
            io.bytes_read, io.bytes_written, es.connections_open, es.connections_total,
            req, err);
  log_info ("%sscsi: commands %" PRIu64 " reads %" PRIu64 " writes %" PRIu64
            " syncs %" PRIu64 " unmaps %" PRIu64 " write-sames %" PRIu64
            " errors %" PRIu64, pfx,
            lu.commands, lu.reads, lu.writes, lu.syncs, lu.unmaps,
            lu.write_sames, lu.errors);
  log_info ("%scmd pool: allocated %" PRIu64 " in use %" PRIu64 " cached %"
            PRIu64 " reserve %" PRIu64 "/%" PRIu64 " fallbacks %" PRIu64
            " waits %" PRIu64 " alloc failures %" PRIu64, pfx,
            cp.allocated, cp.in_use, cp.cached, cp.reserve_level,
            cp.reserve_size, cp.fallbacks, cp.waits, cp.alloc_failures);
  log_info ("%ssgv pool: allocated %" PRIu64 " in use %" PRIu64 " cached %"
            PRIu64 " (%" PRIu64 " B) hits %" PRIu64 " misses %" PRIu64
            " flushed %" PRIu64 " trimmed %" PRIu64, pfx,
            sv.allocated, sv.in_use, sv.cached, sv.cached_bytes, sv.hits,
            sv.misses, sv.flushed, sv.trimmed);
  log_info ("%sstore %s: allocated %" PRIu64 " B reads %" PRIu64 " writes %"
            PRIu64 " flushes %" PRIu64 " trims %" PRIu64 " zeroes %" PRIu64, pfx,
            d->store->ops->name, st.bytes_allocated, st.reads, st.writes,
            st.flushes, st.trims, st.zeroes);
}

void
daemon_stats_log (const struct daemon *dm)
{
  struct nbd_server_stats ns;
  bool named = dm->config != NULL;

  for (const struct daemon_stack *d = dm->stacks; d; d = d->next)
    log_stack (d, named);
  nbd_server_get_stats (dm->srv, &ns);
  log_info ("nbd: connections open %" PRIu64 " total %" PRIu64
            " requests %" PRIu64 " errors %" PRIu64 " read %" PRIu64
            " B written %" PRIu64 " B handshake failures %" PRIu64
            " stuck cleanups %" PRIu64 " refused %" PRIu64 " (limit %" PRIu64
            ") closed idle %" PRIu64,
            ns.connections_open, ns.connections_total, ns.requests,
            ns.errors, ns.bytes_read, ns.bytes_written,
            ns.handshake_failures, ns.cleanup_stuck, ns.refused,
            ns.max_connections, ns.idle_closed);
}
