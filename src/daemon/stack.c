/* daemon/stack: build one export's stack of modules from its options,
 * start serving it, and tear it down.
 *
 * struct daemon_stack holds one pointer per layer, filled bottom up by
 * daemon_stack_build: store, pools, logical unit, block-I/O seam, and the
 * NBD export that the daemon's server (daemon.c) lists.
 * daemon_stack_start adds the cache's threads and the FUSE mount.  The
 * invariant that makes teardown safe after any failure: a member is set
 * (or io_ready true) exactly when that layer exists, and every layer
 * above it holds pointers only to layers that exist; daemon_stack_teardown
 * undoes what is set, top down.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "daemon.h"
#ifdef HAVE_FUSE
#include "fusefront.h"
#endif
#include "log.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"
#include "sync.h"

#include "internal.h"


uint64_t
daemon_phys_memory (void)
{
  long pages = sysconf (_SC_PHYS_PAGES), psize = sysconf (_SC_PAGESIZE);
  return pages > 0 && psize > 0 ? (uint64_t) pages * (uint64_t) psize : 0;
}

uint64_t
daemon_default_mem_limit (uint64_t size)
{
  uint64_t half = daemon_phys_memory () / 2;
  return half == 0 || size < half ? size : half;
}

/* The in-memory disk is the compressed block map with nothing behind it;
 * a file gets the map as a cache in front of it (unless --cache-mode off). */
static int
open_store (struct daemon_stack *d)
{
  const struct cli_options *o = d->opt;
  struct cache_config cc = {
    .block_size = o->cache_block,
    .mode = CACHE_MODE_WRITEBACK,
    .recompress_idle = o->recompress_idle,
    .io_flusher = o->swap,
    .defer_threads = true,         /* started by daemon_stack_start, after the fork */
  };
  struct store *file;

  if (o->file && store_rbd_is_spec (o->file)) {
    if ((file = daemon_rbd_open (o)) == NULL)
      return -1;
    goto cache;                    /* what follows is for local files */
  }
  if (o->file == NULL) {
    cc.size = o->size;
    cc.mem_limit = o->mem_limit;
    cc.spill_path = o->spill;
    if (o->spill && cc.mem_limit == 0)
      cc.mem_limit = daemon_default_mem_limit (o->size);
    d->cache = cache_create (&cc);
    if (d->cache == NULL && o->spill) {
      int e = errno;
      if (e == EEXIST)
        FAIL (e, "%s: exists and is not an sgblk spill file; refusing to overwrite it",
              o->spill);
      if (e == EBUSY)
        FAIL (e, "%s: spill file in use by another sgblkd", o->spill);
      if (e == EINVAL)
        FAIL (e, "%s: a spill file must be a regular file", o->spill);
      FAIL (e, "%s: cannot open the spill file: %s", o->spill, strerror (e));
    }
    if (d->cache == NULL)
      FAIL (errno, "cannot create an in-memory disk of %" PRIu64 " bytes: %m",
            o->size);
    d->store = d->cache;
    if (d->store_fault) {         /* nothing is below the map: fail the map */
      struct store *w = store_fault_open (d->cache, d->store_fault);
      if (w == NULL)
        FAIL (errno, "bad store fault spec '%s': %m", d->store_fault);
      d->store = w;
    }
    return 0;
  }

  /* --create makes a missing file; an existing one of another size is
   * somebody's data, and is never resized. */
  struct stat sb;
  if (o->create && stat (o->file, &sb) == 0 && S_ISREG (sb.st_mode) &&
      (uint64_t) sb.st_size != o->size)
    FAIL (EEXIST, "%s: exists with size %" PRIu64 ", not the --size %" PRIu64
          " given with --create; refusing to resize it",
          o->file, (uint64_t) sb.st_size, o->size);

  unsigned flags = 0;
  if (o->read_only) flags |= STORE_FILE_READ_ONLY;
  if (o->create) flags |= STORE_FILE_CREATE;
  if (o->direct) flags |= STORE_FILE_DIRECT;
  file = store_file_open (o->file, flags, o->size);
  if (file == NULL) {
    int e = errno;
    if (e == EACCES && !o->read_only)
      FAIL (e, "%s: cannot open for writing: %s (use --read-only to serve it read-only)",
            o->file, strerror (e));
    else if (e == EINVAL && o->direct)
      FAIL (e, "%s: cannot open with O_DIRECT (the filesystem may not support it; drop --direct)",
            o->file);
    else if (e == EINVAL)
      FAIL (e, "%s: not a regular file or block device, or empty", o->file);
    else
      FAIL (e, "%s: %s", o->file, strerror (e));
  }
cache:
  if (cache_mode_parse (o->cache_mode, &cc.mode) == -1)
    abort ();                   /* cli_parse checked it */
  struct store *bottom = file;
  if (d->store_fault) {
    bottom = store_fault_open (file, d->store_fault);
    if (bottom == NULL) {
      int e = errno;
      store_close (file);
      FAIL (e, "bad store fault spec '%s': %s", d->store_fault, strerror (e));
    }
  }
  cc.backing = bottom;
  cc.mem_limit = o->cache_size;
  d->cache = cache_create (&cc);
  if (d->cache == NULL) {
    int e = errno;
    store_close (bottom);
    errno = e;
    FAIL (e, "%s: cannot create a cache of %" PRIu64 " bytes: %m",
          o->file, o->cache_size);
  }
  d->store = d->cache;
  d->file = file;
  return 0;
}

/* The FUSE mount point is looked at while building, although it is
 * mounted only once serving: what is wrong with it is then said before
 * the daemon announces the file. */
static int
check_mountpoint (const char *mnt)
{
#ifdef HAVE_FUSE
  struct stat st;
  if (stat (mnt, &st) == -1) {
    if (errno == ENOTCONN)
      FAIL (errno, "%s: stale FUSE mount of a daemon that died; clear it with: fusermount3 -u %s",
            mnt, mnt);
    FAIL (errno, "%s: cannot mount: %m", mnt);
  }
  if (!S_ISDIR (st.st_mode))
    FAIL (ENOTDIR, "%s: cannot mount: %s", mnt, strerror (ENOTDIR));
  return 0;
#else
  (void) mnt;
  FAIL (ENOTSUP, "--fuse: this sgblkd was built without libfuse3");
#endif
}

int
daemon_stack_build (struct daemon_stack *d, const struct cli_options *o)
{
  d->opt = o;
  d->threads = o->threads ? o->threads : sync_default_threads ();
  if (open_store (d) == -1)
    return -1;
  if (d->store->size < o->block_size || d->store->size % o->block_size)
    FAIL (EINVAL, "%s: size %" PRIu64 " is not a positive multiple of the block size %" PRIu32,
          o->file ? o->file : "memory", d->store->size, o->block_size);

  struct sgv_pool_config sc = { .name = "sgblkd", .idle_ns = 5000000000ull };
  d->sgv = sgv_pool_create (&sc);
  if (d->sgv == NULL)
    FAIL (errno, "cannot create the I/O pools: %m");
  struct scsi_cmd_pool_config cc = { .reserve = 64, .max_cached = 1024 };
  d->cmds = scsi_cmd_pool_create (&cc);
  if (d->cmds == NULL)
    FAIL (errno, "cannot create the I/O pools: %m");

  struct scsi_lu_config lc = {
    .store = d->store,
    .sgv = d->sgv,
    .block_size = o->block_size,
    .read_only = o->read_only,
    /* WCE: a volatile cache sits between acknowledgement and the medium. */
    .write_cache = (d->store->caps & STORE_CAP_PERSISTENT) != 0 &&
                   strcmp (o->cache_mode, "writethrough") != 0,
    .serial = NULL,
  };
  d->lu = scsi_lu_create (&lc);
  if (d->lu == NULL)
    FAIL (errno, "cannot create the logical unit: %m");

  if (blkio_init (&d->io, d->lu, d->sgv) == -1)
    FAIL (errno, "cannot set up block I/O: %m");
  d->io_ready = true;
  d->export = (struct nbd_export) {
    .name = o->export_name,
    .description = o->description ? o->description
                   : o->file ? o->file : "sgblk in-memory disk",
    .lu = d->lu, .cmds = d->cmds, .sgv = d->sgv, .io = &d->io,
    .read_only = o->read_only,
  };
  if (o->fuse_mount && check_mountpoint (o->fuse_mount) == -1)
    return -1;
  return 0;
}

static int
start_fuse (struct daemon_stack *d)
{
#ifdef HAVE_FUSE
  const struct cli_options *o = d->opt;

  d->fuse = fuse_front_start (o->fuse_mount, &d->export, d->threads,
                              o->fuse_opts);
  if (d->fuse == NULL) {
    if (errno == ENOTCONN)
      FAIL (errno, "%s: stale FUSE mount of a daemon that died; clear it with: fusermount3 -u %s",
            o->fuse_mount, o->fuse_mount);
    FAIL (errno, "%s: cannot mount: %m", o->fuse_mount);
  }
  if (o->swap)
    daemon_swap_fuse_workers (d);
  /* Said last: whoever waits for it finds the file ready and, in swap
   * mode, the daemon's memory all set up. */
  log_info ("serving the disk as %s/%s", o->fuse_mount,
            o->export_name[0] ? o->export_name : "disk");
  return 0;
#else
  FAIL (ENOTSUP, "--fuse: this sgblkd was built without libfuse3");
#endif
}

int
daemon_stack_start (struct daemon_stack *d)
{
  /* The cache's threads (write-back, idle pass, spiller) start here, not
   * when it is built: the daemon forks in between, and a child keeps no
   * thread but the one that forked. */
  if (cache_start_threads (d->cache) == -1)
    FAIL (errno, "cannot start the cache's threads: %m");
  if (d->opt->fuse_mount && start_fuse (d) == -1)
    return -1;
  d->served = true;                /* (a failed mount is a start-up error) */
  return 0;
}

void
daemon_stack_tick (struct daemon_stack *d)
{
  /* In swap mode the vector pool stays as preallocated: what it gave
   * back would have to be allocated again while the machine swaps. */
  if (!d->opt->swap)
    sgv_pool_trim (d->sgv);
  /* Every ten seconds, empty sparse arena chunks: moving objects takes
   * no new memory.  Without --swap their memory goes back now; with it
   * they join the map's reserve, whose refill thread gives back what is
   * above its high watermark. */
  if (++d->ticks % 10 == 0)
    cache_compact (d->cache);
  daemon_rbd_tick (d);
}

void
daemon_stack_stop_fuse (struct daemon_stack *d)
{
#ifdef HAVE_FUSE
  /* Its requests in flight finish, then it unmounts. */
  fuse_front_stop (d->fuse);
  d->fuse = NULL;
#else
  (void) d;
#endif
}

unsigned
daemon_stack_retire_fuse (struct daemon_stack *d)
{
#ifdef HAVE_FUSE
  unsigned opens = fuse_front_retire (d->fuse);

  if (opens == 0)
    daemon_stack_stop_fuse (d);
  return opens;
#else
  (void) d;
  return 0;
#endif
}

int
daemon_stack_teardown (struct daemon_stack *d)
{
  int r = 0, e = 0;

  daemon_stack_stop_fuse (d);
  if (d->io_ready)
    blkio_fini (&d->io);
  if (d->lu) scsi_lu_destroy (d->lu);
  if (d->store && store_flush (d->store) == -1) {
    e = errno;
    log_error ("%s: final flush failed: %m",
               d->opt->file ? d->opt->file : "in-memory disk");
    r = -1;
  }
  if (d->cmds && scsi_cmd_pool_destroy (d->cmds) == -1)
    log_error ("commands still in use at exit");
  if (d->sgv && sgv_pool_destroy (d->sgv) == -1)
    log_error ("vectors still in use at exit");
  uint64_t abandoned = store_rbd_closes_abandoned ();
  store_close (d->store);
  if (store_rbd_closes_abandoned () != abandoned) {
    log_error ("%s: the cluster did not answer the image's close within %u s; "
               "leaving it (its exclusive lock goes when the cluster sees this "
               "client gone)", d->opt->file,
               d->opt->store_timeout ? d->opt->store_timeout : STORE_RBD_TIMEOUT);
    if (r == 0)
      e = ETIMEDOUT;
    r = -1;
  }
  if (r == -1)
    errno = e;
  return r;
}
