/* daemon/metrics: every export's statistics as a Prometheus text file
 * (--stats-file), for node_exporter's textfile collector or any reader
 * of the text exposition format.
 *
 * The file is only ever replaced whole: it is written as PATH.tmp in the
 * same directory, then renamed over PATH, so a reader sees the previous
 * file or the next one, never a part of one.  Figures come from the
 * layers' own snapshots (*_get_stats), the same the SIGUSR1 log lines
 * print, so the file may be written while the stack serves.
 *
 * Layout.  The format wants each metric family together, its # HELP and
 * # TYPE once, before its samples: so one snapshot of every export is
 * taken first, then the families are rendered one by one from the table
 * below, each with one sample per export that has it (label
 * export="NAME"; a cache's figures only for exports with a cache, the
 * spill file's only with one...).  A family no export has is left out
 * whole.  The NBD server's own figures (refused connections, failed
 * handshakes) belong to no export and carry no label.
 *
 * State (struct daemon_metrics): the absolute path, when it was last
 * written and whether the last write failed; the main thread's alone.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "daemon.h"
#include "log.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"

struct daemon_metrics {
  char *path;                  /* absolute: the daemon leaves its directory */
  unsigned interval;           /* seconds between rewrites */
  uint64_t last_ns;            /* CLOCK_MONOTONIC of the last attempt */
  bool failing;                /* the last rewrite failed (and was said) */
};

/* One export's figures, taken together. */
struct snap {
  const char *name;
  uint64_t size;
  struct blkio_stats io;
  struct nbd_export_stats conns;
  struct scsi_lu_stats lu;
  struct scsi_pool_stats cp;
  struct sgv_stats sv;
  struct store_stats st;
  struct cache_stats cs;
  bool cache, spill, recompress, reserve;
};

enum mtype { GAUGE, COUNTER };
/* Which exports have a family: all, or those with that part of a cache. */
enum mpart { ALL, CACHE, SPILL, RECOMPRESS, RESERVE };
/* A family with one sample per export, or one per request kind or error
 * class of each export. */
enum mdim { ONE, BY_OP, BY_KIND };

struct family {
  const char *name;
  enum mtype type;
  enum mpart part;
  enum mdim dim;
  bool ns_as_seconds;          /* the value is nanoseconds, shown in seconds */
  uint64_t (*get) (const struct snap *s, unsigned i);
  const char *help;
};

/* zram counts pages of 4 KiB whatever the block size. */
#define ZRAM_PAGE 4096u
#define PAGES(blocks) ((blocks) * (s->cs.block_size / ZRAM_PAGE))

#define GET(fn, expr) \
  static uint64_t fn (const struct snap *s, unsigned i) { (void) i; return (expr); }
GET (g_size, s->size)
GET (g_requests, s->io.requests[i])
GET (g_errors, s->io.errors[i])
GET (g_bytes_read, s->io.bytes_read)
GET (g_bytes_written, s->io.bytes_written)
GET (g_conns_total, s->conns.connections_total)
GET (g_conns_open, s->conns.connections_open)
GET (g_scsi_commands, s->lu.commands)
GET (g_scsi_errors, s->lu.errors)
GET (g_scsi_store_errors, s->lu.store_errors)
GET (g_cp_allocated, s->cp.allocated)
GET (g_cp_in_use, s->cp.in_use)
GET (g_cp_cached, s->cp.cached)
GET (g_cp_reserve_size, s->cp.reserve_size)
GET (g_cp_reserve_level, s->cp.reserve_level)
GET (g_cp_fallbacks, s->cp.fallbacks)
GET (g_cp_waits, s->cp.waits)
GET (g_cp_alloc_failures, s->cp.alloc_failures)
GET (g_sv_allocated, s->sv.allocated)
GET (g_sv_in_use, s->sv.in_use)
GET (g_sv_cached, s->sv.cached)
GET (g_sv_cached_bytes, s->sv.cached_bytes)
GET (g_sv_hits, s->sv.hits)
GET (g_sv_misses, s->sv.misses)
GET (g_sv_waits, s->sv.waits)
GET (g_sv_failed, s->sv.failed)
GET (g_sv_released, s->sv.flushed + s->sv.trimmed)
GET (g_st_allocated, s->st.bytes_allocated)
GET (g_cs_block, s->cs.block_size)
GET (g_cs_orig, s->cs.orig_bytes - s->cs.spilled_blocks * s->cs.block_size)
GET (g_cs_compr, s->cs.compr_bytes)
GET (g_cs_mem_used, s->cs.mem_used)
GET (g_cs_mem_limit, s->cs.mem_limit)
GET (g_cs_mem_used_max, s->cs.mem_used_max)
GET (g_cs_same_pages, PAGES (s->cs.same_blocks))
GET (g_cs_pages_compacted, s->cs.compacted_bytes / ZRAM_PAGE)
GET (g_cs_huge_pages, PAGES (s->cs.huge_blocks))
GET (g_cs_hits, s->cs.hits)
GET (g_cs_misses, s->cs.misses)
GET (g_cs_dirty, s->cs.dirty_blocks * s->cs.block_size)
GET (g_cs_written_back, s->cs.written_back * s->cs.block_size)
GET (g_cs_evicted, s->cs.evicted * s->cs.block_size)
GET (g_cs_writer_waits, s->cs.writer_waits)
GET (g_cs_corrupt, s->cs.corrupt_blocks)
GET (g_sp_count, PAGES (s->cs.spilled_blocks))
GET (g_sp_reads, PAGES (s->cs.bd_reads))
GET (g_sp_writes, PAGES (s->cs.bd_writes))
GET (g_sp_errors, s->cs.bd_errors)
GET (g_sp_waits, s->cs.spill_waits)
GET (g_rc_passes, s->cs.recomp_passes)
GET (g_rc_hc_blocks, s->cs.hc_blocks)
GET (g_rc_blocks, s->cs.recomp_blocks)
GET (g_rc_tried, s->cs.recomp_tried)
GET (g_rc_saved, s->cs.recomp_saved)
GET (g_rc_cpu, s->cs.recomp_cpu_ns)
GET (g_rv_bytes, s->cs.reserve_bytes)
GET (g_rv_low, s->cs.reserve_low)
GET (g_rv_high, s->cs.reserve_high)
GET (g_rv_waits, s->cs.reserve_waits)
GET (g_rv_refills, s->cs.reserve_refills)
GET (g_rv_returned, s->cs.reserve_returned)

/* Names and meanings here are the man page's METRICS section. */
static const struct family families[] = {
  { "sgblk_export_size_bytes", GAUGE, ALL, ONE, false, g_size,
    "Size of the export." },
  { "sgblk_requests_total", COUNTER, ALL, BY_OP, false, g_requests,
    "Requests answered (NBD and FUSE), failed ones included, by kind." },
  { "sgblk_errors_total", COUNTER, ALL, BY_KIND, false, g_errors,
    "Requests answered with an error, by NBD error class." },
  { "sgblk_read_bytes_total", COUNTER, ALL, ONE, false, g_bytes_read,
    "Bytes read by clients." },
  { "sgblk_written_bytes_total", COUNTER, ALL, ONE, false, g_bytes_written,
    "Bytes written by clients." },
  { "sgblk_connections_total", COUNTER, ALL, ONE, false, g_conns_total,
    "NBD connections that reached transmission on the export." },
  { "sgblk_connections_open", GAUGE, ALL, ONE, false, g_conns_open,
    "NBD connections in transmission on the export now." },
  { "sgblk_scsi_commands_total", COUNTER, ALL, ONE, false, g_scsi_commands,
    "SCSI commands the logical unit ran." },
  { "sgblk_scsi_errors_total", COUNTER, ALL, ONE, false, g_scsi_errors,
    "SCSI commands that ended in CHECK CONDITION." },
  { "sgblk_scsi_store_errors_total", COUNTER, ALL, ONE, false, g_scsi_store_errors,
    "Store failures the unit answered as medium errors (EIO)." },
  { "sgblk_cmd_pool_allocated", GAUGE, ALL, ONE, false, g_cp_allocated,
    "Normal command objects that exist (in use or cached)." },
  { "sgblk_cmd_pool_in_use", GAUGE, ALL, ONE, false, g_cp_in_use,
    "Command objects handed out now, normal and reserve." },
  { "sgblk_cmd_pool_cached", GAUGE, ALL, ONE, false, g_cp_cached,
    "Normal command objects idle for reuse." },
  { "sgblk_cmd_pool_reserve_size", GAUGE, ALL, ONE, false, g_cp_reserve_size,
    "Complete command objects in the reserve." },
  { "sgblk_cmd_pool_reserve_level", GAUGE, ALL, ONE, false, g_cp_reserve_level,
    "Reserve command objects idle now." },
  { "sgblk_cmd_pool_fallbacks_total", COUNTER, ALL, ONE, false, g_cp_fallbacks,
    "Commands served from the reserve." },
  { "sgblk_cmd_pool_waits_total", COUNTER, ALL, ONE, false, g_cp_waits,
    "Commands that waited for one to be put back." },
  { "sgblk_cmd_pool_alloc_failures_total", COUNTER, ALL, ONE, false, g_cp_alloc_failures,
    "Normal command allocations that failed." },
  { "sgblk_vector_pool_allocated", GAUGE, ALL, ONE, false, g_sv_allocated,
    "Data vectors whose memory exists (in use or cached)." },
  { "sgblk_vector_pool_in_use", GAUGE, ALL, ONE, false, g_sv_in_use,
    "Data vectors handed out now." },
  { "sgblk_vector_pool_cached", GAUGE, ALL, ONE, false, g_sv_cached,
    "Data vectors idle for reuse." },
  { "sgblk_vector_pool_cached_bytes", GAUGE, ALL, ONE, false, g_sv_cached_bytes,
    "Memory of the idle data vectors." },
  { "sgblk_vector_pool_hits_total", COUNTER, ALL, ONE, false, g_sv_hits,
    "Vector allocations served from the pool." },
  { "sgblk_vector_pool_misses_total", COUNTER, ALL, ONE, false, g_sv_misses,
    "Vector allocations that allocated memory." },
  { "sgblk_vector_pool_waits_total", COUNTER, ALL, ONE, false, g_sv_waits,
    "Vector allocations that waited for a free (fixed pool)." },
  { "sgblk_vector_pool_failures_total", COUNTER, ALL, ONE, false, g_sv_failed,
    "Vector allocations that failed." },
  { "sgblk_vector_pool_released_total", COUNTER, ALL, ONE, false, g_sv_released,
    "Idle vectors whose memory was given back (trim and flush)." },
  { "sgblk_store_allocated_bytes", GAUGE, ALL, ONE, false, g_st_allocated,
    "Memory or disk space the store uses for data." },
  { "sgblk_cache_block_size_bytes", GAUGE, CACHE, ONE, false, g_cs_block,
    "Cache block size." },
  { "sgblk_cache_orig_data_size_bytes", GAUGE, CACHE, ONE, false, g_cs_orig,
    "Uncompressed data held in memory (zram mm_stat orig_data_size)." },
  { "sgblk_cache_compr_data_size_bytes", GAUGE, CACHE, ONE, false, g_cs_compr,
    "Compressed size of it (zram mm_stat compr_data_size)." },
  { "sgblk_cache_mem_used_bytes", GAUGE, CACHE, ONE, false, g_cs_mem_used,
    "Memory used, metadata and reserve included (zram mm_stat mem_used_total)." },
  { "sgblk_cache_mem_limit_bytes", GAUGE, CACHE, ONE, false, g_cs_mem_limit,
    "Memory limit; 0 none (zram mm_stat mem_limit)." },
  { "sgblk_cache_mem_used_max_bytes", GAUGE, CACHE, ONE, false, g_cs_mem_used_max,
    "The most memory used (zram mm_stat mem_used_max)." },
  { "sgblk_cache_same_pages", GAUGE, CACHE, ONE, false, g_cs_same_pages,
    "4 KiB pages held as one fill word (zram mm_stat same_pages)." },
  { "sgblk_cache_pages_compacted_total", COUNTER, CACHE, ONE, false, g_cs_pages_compacted,
    "4 KiB pages compaction gave back (zram mm_stat pages_compacted)." },
  { "sgblk_cache_huge_pages", GAUGE, CACHE, ONE, false, g_cs_huge_pages,
    "4 KiB pages stored raw, incompressible (zram mm_stat huge_pages)." },
  { "sgblk_cache_hits_total", COUNTER, CACHE, ONE, false, g_cs_hits,
    "Block reads found in the cache." },
  { "sgblk_cache_misses_total", COUNTER, CACHE, ONE, false, g_cs_misses,
    "Block reads not found in the cache." },
  { "sgblk_cache_dirty_bytes", GAUGE, CACHE, ONE, false, g_cs_dirty,
    "Data not yet written back to the file." },
  { "sgblk_cache_written_back_bytes_total", COUNTER, CACHE, ONE, false, g_cs_written_back,
    "Data written back to the file." },
  { "sgblk_cache_evicted_bytes_total", COUNTER, CACHE, ONE, false, g_cs_evicted,
    "Clean data dropped from the cache to make room." },
  { "sgblk_cache_writer_waits_total", COUNTER, CACHE, ONE, false, g_cs_writer_waits,
    "Writes that waited for write-back to make room." },
  { "sgblk_cache_corrupt_blocks_total", COUNTER, CACHE, ONE, false, g_cs_corrupt,
    "Blocks found damaged (failed to decompress)." },
  { "sgblk_cache_spill_pages", GAUGE, SPILL, ONE, false, g_sp_count,
    "4 KiB pages in the spill file (zram bd_stat bd_count)." },
  { "sgblk_cache_spill_read_pages_total", COUNTER, SPILL, ONE, false, g_sp_reads,
    "4 KiB pages read back from the spill file (zram bd_stat bd_reads)." },
  { "sgblk_cache_spill_written_pages_total", COUNTER, SPILL, ONE, false, g_sp_writes,
    "4 KiB pages written to the spill file (zram bd_stat bd_writes)." },
  { "sgblk_cache_spill_errors_total", COUNTER, SPILL, ONE, false, g_sp_errors,
    "Spill file reads and writes that failed." },
  { "sgblk_cache_spill_waits_total", COUNTER, SPILL, ONE, false, g_sp_waits,
    "Writes that waited for the spiller." },
  { "sgblk_cache_recompress_passes_total", COUNTER, RECOMPRESS, ONE, false, g_rc_passes,
    "Idle recompression passes run." },
  { "sgblk_cache_recompressed_blocks", GAUGE, RECOMPRESS, ONE, false, g_rc_hc_blocks,
    "Blocks held as LZ4HC objects." },
  { "sgblk_cache_recompress_shrunk_blocks_total", COUNTER, RECOMPRESS, ONE, false, g_rc_blocks,
    "Blocks the idle pass made smaller." },
  { "sgblk_cache_recompress_tried_blocks_total", COUNTER, RECOMPRESS, ONE, false, g_rc_tried,
    "Blocks the idle pass compressed with LZ4HC, smaller or not." },
  { "sgblk_cache_recompress_saved_bytes_total", COUNTER, RECOMPRESS, ONE, false, g_rc_saved,
    "Compressed bytes the idle pass saved." },
  { "sgblk_cache_recompress_cpu_seconds_total", COUNTER, RECOMPRESS, ONE, true, g_rc_cpu,
    "CPU time of the idle pass." },
  { "sgblk_cache_reserve_bytes", GAUGE, RESERVE, ONE, false, g_rv_bytes,
    "Locked free memory in the swap-mode reserve." },
  { "sgblk_cache_reserve_low_bytes", GAUGE, RESERVE, ONE, false, g_rv_low,
    "The reserve's low watermark." },
  { "sgblk_cache_reserve_high_bytes", GAUGE, RESERVE, ONE, false, g_rv_high,
    "The reserve's high watermark." },
  { "sgblk_cache_reserve_waits_total", COUNTER, RESERVE, ONE, false, g_rv_waits,
    "Allocations that waited for the reserve's refill." },
  { "sgblk_cache_reserve_refilled_bytes_total", COUNTER, RESERVE, ONE, false, g_rv_refills,
    "Memory the refill thread mapped or locked again." },
  { "sgblk_cache_reserve_returned_bytes_total", COUNTER, RESERVE, ONE, false, g_rv_returned,
    "Memory the refill thread gave back to the kernel." },
};

static bool
has_part (const struct snap *s, enum mpart p)
{
  switch (p) {
  case ALL:        return true;
  case CACHE:      return s->cache;
  case SPILL:      return s->spill;
  case RECOMPRESS: return s->recompress;
  case RESERVE:    return s->reserve;
  }
  return false;
}

/* The length of the valid UTF-8 sequence at p (of at most n bytes), 0 if
 * it is not one: overlong forms, surrogates and code points past
 * U+10FFFF are not. */
static size_t
utf8_len (const unsigned char *p, size_t n)
{
  size_t len;
  uint32_t cp;

  if (p[0] < 0x80) return 1;
  else if ((p[0] & 0xe0) == 0xc0) { len = 2; cp = p[0] & 0x1f; }
  else if ((p[0] & 0xf0) == 0xe0) { len = 3; cp = p[0] & 0x0f; }
  else if ((p[0] & 0xf8) == 0xf0) { len = 4; cp = p[0] & 0x07; }
  else return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
  if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

int
daemon_metrics_label_value (FILE *f, const char *value)
{
  const unsigned char *p = (const unsigned char *) value;
  size_t n = strlen (value);

  while (n > 0) {
    size_t len = utf8_len (p, n);
    if (len == 0) {
      /* A reader rejects the whole file for one bad byte: U+FFFD. */
      fputs ("\xef\xbf\xbd", f);
      len = 1;
    }
    else if (*p == '\\')
      fputs ("\\\\", f);
    else if (*p == '"')
      fputs ("\\\"", f);
    else if (*p == '\n')
      fputs ("\\n", f);
    else
      fwrite (p, 1, len, f);
    p += len;
    n -= len;
  }
  return ferror (f) ? -1 : 0;
}

static void
put_value (FILE *f, const struct family *fam, uint64_t v)
{
  if (fam->ns_as_seconds)
    fprintf (f, " %" PRIu64 ".%09" PRIu64 "\n", v / 1000000000u, v % 1000000000u);
  else
    fprintf (f, " %" PRIu64 "\n", v);
}

static void
render_family (FILE *f, const struct family *fam, const struct snap *s, unsigned n)
{
  bool header = false;

  for (unsigned e = 0; e < n; e++) {
    if (!has_part (&s[e], fam->part))
      continue;
    if (!header) {
      fprintf (f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
               fam->type == COUNTER ? "counter" : "gauge");
      header = true;
    }
    unsigned dims = fam->dim == BY_OP ? BLKIO_NOPS : fam->dim == BY_KIND ? BLKIO_NERRS : 1;
    for (unsigned i = 0; i < dims; i++) {
      fprintf (f, "%s{export=\"", fam->name);
      daemon_metrics_label_value (f, s[e].name);
      if (fam->dim == BY_OP)
        fprintf (f, "\",op=\"%s", blkio_op_name ((enum blkio_op) i));
      else if (fam->dim == BY_KIND)
        fprintf (f, "\",kind=\"%s", blkio_error_name ((enum blkio_err) i));
      fputs ("\"}", f);
      put_value (f, fam, fam->get (&s[e], i));
    }
  }
}

static void
take_snapshot (struct daemon_stack *d, struct snap *s)
{
  memset (s, 0, sizeof *s);
  s->name = d->export.name ? d->export.name : "";
  s->size = d->io.size;
  blkio_get_stats (&d->io, &s->io);
  nbd_export_get_stats (&d->export, &s->conns);
  scsi_lu_get_stats (d->lu, &s->lu);
  scsi_cmd_pool_get_stats (d->cmds, &s->cp);
  sgv_pool_get_stats (d->sgv, &s->sv);
  store_get_stats (d->store, &s->st);
  s->cache = cache_get_stats (d->cache, &s->cs) == 0;
  s->spill = s->cache && s->cs.spill;
  s->recompress = s->cache && s->cs.recompress_idle;
  s->reserve = s->cache && s->cs.reserve_high;
}

/* The NBD server's figures of no one export: once for each server. */
static void
render_server (FILE *f, struct daemon_stack *const *stacks, unsigned n)
{
  struct nbd_server_stats t = { 0 }, ns;
  bool any = false;

  for (unsigned i = 0; i < n; i++) {
    bool seen = stacks[i]->srv == NULL;
    for (unsigned j = 0; j < i && !seen; j++)
      seen = stacks[j]->srv == stacks[i]->srv;
    if (seen)
      continue;
    nbd_server_get_stats (stacks[i]->srv, &ns);
    t.connections_total += ns.connections_total;
    t.connections_open += ns.connections_open;
    t.handshake_failures += ns.handshake_failures;
    t.refused += ns.refused;
    t.idle_closed += ns.idle_closed;
    t.cleanup_stuck += ns.cleanup_stuck;
    t.max_connections += ns.max_connections;
    any = true;
  }
  if (!any)
    return;
  const struct { const char *name; enum mtype type; uint64_t v; const char *help; } m[] = {
    { "sgblk_nbd_accepted_connections_total", COUNTER, t.connections_total,
      "NBD connections accepted, whether they reached an export or not." },
    { "sgblk_nbd_connections_open", GAUGE, t.connections_open,
      "NBD connections open now, in handshake or transmission." },
    { "sgblk_nbd_max_connections", GAUGE, t.max_connections,
      "NBD connections served at once; more are refused." },
    { "sgblk_nbd_refused_connections_total", COUNTER, t.refused,
      "NBD connections refused at the limit or for lack of descriptors." },
    { "sgblk_nbd_handshake_failures_total", COUNTER, t.handshake_failures,
      "NBD connections that failed or timed out in the handshake." },
    { "sgblk_nbd_idle_closed_connections_total", COUNTER, t.idle_closed,
      "NBD connections closed by the idle timeout." },
    { "sgblk_nbd_stuck_cleanups_total", COUNTER, t.cleanup_stuck,
      "NBD disconnect cleanups that ended on lack of progress." },
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    fprintf (f, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", m[i].name, m[i].help,
             m[i].name, m[i].type == COUNTER ? "counter" : "gauge", m[i].name, m[i].v);
}

int
daemon_metrics_render (FILE *f, struct daemon_stack *const *stacks, unsigned n)
{
  struct snap *s = calloc (n ? n : 1, sizeof *s);
  unsigned k = 0;

  if (s == NULL)
    return -1;
  for (unsigned i = 0; i < n; i++)
    if (stacks[i]->io_ready)             /* a stack built up to its seam */
      take_snapshot (stacks[i], &s[k++]);
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
    render_family (f, &families[i], s, k);
  render_server (f, stacks, n);
  free (s);
  if (ferror (f)) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int
daemon_metrics_write (const char *path, struct daemon_stack *const *stacks, unsigned n)
{
  char tmp[PATH_MAX];
  int e;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  /* Readable by all: the reader (node_exporter) runs as another user.
   * Not a symbolic link: the directory may be shared. */
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd == -1)
    return -1;
  FILE *f = fdopen (fd, "w");
  if (f == NULL) {
    e = errno;
    close (fd);
    goto fail;
  }
  if (daemon_metrics_render (f, stacks, n) == -1) {
    e = errno;
    fclose (f);
    goto fail;
  }
  /* No fsync: after a crash the figures are stale anyway, and the
   * rename still replaces the file whole. */
  if (fclose (f) == EOF) {
    e = errno;
    goto fail;
  }
  if (rename (tmp, path) == -1) {
    e = errno;
    goto fail;
  }
  return 0;
 fail:
  unlink (tmp);
  errno = e;
  return -1;
}

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

struct daemon_metrics *
daemon_metrics_start (const char *path, unsigned interval,
                      struct daemon_stack *const *stacks, unsigned n)
{
  struct daemon_metrics *m = calloc (1, sizeof *m);
  char cwd[PATH_MAX];

  if (m == NULL) {
    log_error ("%s: cannot write the stats file: %m", path);
    return NULL;
  }
  m->interval = interval;
  if (path[0] == '/')
    m->path = strdup (path);
  else if (getcwd (cwd, sizeof cwd) && asprintf (&m->path, "%s/%s", cwd, path) == -1)
    m->path = NULL;
  if (m->path == NULL || daemon_metrics_write (m->path, stacks, n) == -1) {
    int e = errno;
    log_error ("%s: cannot write the stats file: %s", path, strerror (e));
    free (m->path);
    free (m);
    errno = e;
    return NULL;
  }
  m->last_ns = now_ns ();
  return m;
}

void
daemon_metrics_tick (struct daemon_metrics *m, struct daemon_stack *const *stacks,
                     unsigned n, bool now)
{
  uint64_t t = now_ns ();

  if (m == NULL || (!now && t - m->last_ns < (uint64_t) m->interval * 1000000000u))
    return;
  m->last_ns = t;
  if (daemon_metrics_write (m->path, stacks, n) == -1) {
    /* Said once per streak of failures: the daemon serves on. */
    if (!m->failing)
      log_error ("%s: cannot rewrite the stats file: %m; serving on, and trying "
                 "again every %u s", m->path, m->interval);
    m->failing = true;
  }
  else if (m->failing) {
    log_info ("%s: the stats file is written again", m->path);
    m->failing = false;
  }
}

void
daemon_metrics_stop (struct daemon_metrics *m)
{
  if (m == NULL)
    return;
  /* A stopped daemon's figures would look current to a textfile
   * collector: they go with it (and its log has the last of them). */
  unlink (m->path);
  free (m->path);
  free (m);
}
